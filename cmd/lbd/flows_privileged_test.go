// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/flows"
)

// flowsUntil runs `lbd flows -o json -n 1 args...` and, while it runs,
// dials the VIP's port from the client namespace every 200 ms (each dial is
// a new flow), so the event comes whenever the stream is subscribed. It
// returns the event printed.
func (n *testNode) flowsUntil(t *testing.T, vip string, port string, args ...string) flows.Event {
	t.Helper()
	cmd := exec.Command(n.bin, append([]string{"flows", "--socket=" + n.socket, "-o", "json", "-n", "1"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("lbd flows: %v\n%s", err, errb.String())
			}
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var e flows.Event
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("lbd flows printed %q: %v", sc.Text(), err)
				}
				if e.Verdict != flows.VerdictLost {
					return e
				}
			}
			t.Fatalf("lbd flows printed no event:\n%s", out.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("no flow event within 30s; lbd flows stderr:\n%s", errb.String())
		case <-time.After(200 * time.Millisecond):
			n.client.Do(func() error {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, port), 100*time.Millisecond)
				if err == nil {
					c.Close()
				}
				return nil
			})
		}
	}
}

// TestPrivilegedFlowsEndToEnd runs the real daemon in a node namespace and
// `lbd flows` over its status socket while a client namespace connects to
// the VIP over a veth (real ARP, real TCP): the new flow and a drop arrive
// with client, VIP, Service, backend and node filled in, and filters hold.
func TestPrivilegedFlowsEndToEnd(t *testing.T) {
	testutil.Privileged(t)
	n := startNode(t)
	vip := n.waitVIP(t)
	client := netip.MustParseAddr("10.20.0.200")

	e := n.flowsUntil(t, vip, "80", "--vip="+vip, "--verdict=new", "--service=web", "--client=10.20.0.0/24")
	if e.Verdict != flows.VerdictNew || e.VIP != netip.AddrPortFrom(netip.MustParseAddr(vip), 80) ||
		e.Client.Addr() != client || e.Service != "default/web" || e.Protocol != "TCP" ||
		e.Backend != netip.MustParseAddrPort("10.241.1.10:8080") || e.Node != "node-1" || e.Reason != "fwd" {
		t.Errorf("new flow event = %+v, want client %s -> %s:80 default/web -> 10.241.1.10:8080 on node-1", e, client, vip)
	}
	if time.Since(e.Time) > time.Minute || time.Until(e.Time) > time.Second {
		t.Errorf("event time %v is not about now", e.Time)
	}

	// Port 81 of the VIP has no Service: a drop with its reason; the
	// verdict filter keeps the port-80 flows out.
	e = n.flowsUntil(t, vip, "81", "--verdict=drop")
	if e.Verdict != flows.VerdictDrop || e.Reason != "drop_no_port" || e.VIP.Port() != 81 || e.Service != "" || e.Backend.IsValid() {
		t.Errorf("drop event = %+v, want drop_no_port to %s:81", e, vip)
	}

	// A client filter that excludes the client sees nothing.
	cmd := exec.Command(n.bin, "flows", "--socket="+n.socket, "-o", "json", "--client=192.168.0.0/16")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let it subscribe
	n.client.Do(func() error {
		for range 3 {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "80"), 100*time.Millisecond); err == nil {
				c.Close()
			}
		}
		return nil
	})
	cmd.Process.Kill()
	cmd.Wait()
	if out.Len() != 0 {
		t.Errorf("lbd flows --client=192.168.0.0/16 printed events of 10.20.0.200:\n%s", out.String())
	}
}

// TestPrivilegedFlowsNoDaemon: lbd flows and lbd status exit 4 with a
// clear message when no daemon serves the socket.
func TestPrivilegedFlowsNoDaemon(t *testing.T) {
	testutil.Privileged(t)
	dir := t.TempDir()
	bin := dir + "/lbd"
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sub := range []string{"flows", "status"} {
		out, err := exec.Command(bin, sub, "--socket="+dir+"/none.sock").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitNoDaemon || !bytes.Contains(out, []byte("lbd is not running")) {
			t.Errorf("lbd %s without a daemon: %v, output %q; want exit %d and \"lbd is not running\"", sub, err, out, exitNoDaemon)
		}
	}
}
