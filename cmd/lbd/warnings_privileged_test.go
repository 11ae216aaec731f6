// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/status"
)

// warningsManifests adds to metricsManifests a Service whose only endpoint
// is not ready, and a one-address pool "tiny" that its one Service fills.
const warningsManifests = metricsManifests + `apiVersion: v1
kind: Service
metadata:
  name: down
  namespace: default
spec:
  type: LoadBalancer
  ports:
    - name: http
      port: 80
      protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: down-1
  namespace: default
  labels:
    kubernetes.io/service-name: down
addressType: IPv4
ports:
  - name: http
    port: 8080
    protocol: TCP
endpoints:
  - addresses: ["10.241.1.11"]
    nodeName: node-1
    conditions:
      ready: false
---
apiVersion: v1
kind: Service
metadata:
  name: tiny
  namespace: default
  labels:
    lb-type: tiny
spec:
  type: LoadBalancer
  ports:
    - name: http
      port: 80
      protocol: TCP
---
apiVersion: lbd.dev/v1alpha1
kind: IPPool
metadata:
  name: tiny
spec:
  addresses:
    - 10.20.2.1-10.20.2.1
  serviceSelector:
    matchLabels:
      lb-type: tiny
  priority: 20
---
`

// waitFindings polls the daemon until every kind in want is among its
// findings, and returns the status.
func (n *testNode) waitFindings(t *testing.T, want ...string) *status.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := status.Fetch(context.Background(), n.socket)
		if err == nil && !slices.ContainsFunc(want, func(k string) bool {
			return !slices.ContainsFunc(st.Findings, func(f status.Finding) bool { return f.Kind == k })
		}) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("findings %v never all reported; last status %+v, error %v", want, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func lbdStatus(t *testing.T, n *testNode, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(n.bin, append([]string{"status", "--socket=" + n.socket}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestPrivilegedStatusWarnings drives a real daemon into the states behind
// the warnings: a Service with no ready endpoint, a pool with its only
// address taken, the datapath in generic XDP, and another MAC claiming an
// owned VIP (a gratuitous ARP from the client namespace: a split brain).
// lbd status reports each and exits 3; lbd status VIP keeps the node's
// warnings and those about that VIP only.
func TestPrivilegedStatusWarnings(t *testing.T) {
	testutil.Privileged(t)
	n := startNodeWith(t, warningsManifests, "--attach-mode=xdpgeneric")
	st := n.waitFindings(t, status.KindNoReadyBackend, status.KindPoolNearlyFull, status.KindGenericXDP)
	var web, down string
	for _, v := range st.VIPs {
		switch v.Service {
		case "default/web":
			web = v.VIP
		case "default/down":
			down = v.VIP
		}
	}
	if web == "" || down == "" {
		t.Fatalf("VIPs of web and down not found in %+v", st.VIPs)
	}
	for _, f := range st.Findings {
		// tiny has no endpoints at all: no ready backend either.
		if f.Kind == status.KindNoReadyBackend && f.VIP != down && f.VIP != "10.20.2.1" {
			t.Errorf("no-ready-backend reported for %s, want only %s (down) and 10.20.2.1 (tiny)", f.VIP, down)
		}
		if f.Kind == status.KindPoolNearlyFull && f.Pool != "tiny" {
			t.Errorf("pool-nearly-full reported for %s, want only tiny", f.Pool)
		}
	}

	// Another host claims web's VIP with a gratuitous ARP.
	if err := n.client.Do(func() error {
		ifi, err := net.InterfaceByName("veth1")
		if err != nil {
			return err
		}
		c, err := arp.Dial(ifi)
		if err != nil {
			return err
		}
		defer c.Close()
		ip := netip.MustParseAddr(web)
		p, err := arp.NewPacket(arp.OperationReply, ifi.HardwareAddr, ip, ethernet.Broadcast, ip)
		if err != nil {
			return err
		}
		return c.WriteTo(p, ethernet.Broadcast)
	}); err != nil {
		t.Fatal(err)
	}
	n.waitFindings(t, status.KindSplitBrain)

	code, out := lbdStatus(t, n)
	t.Logf("lbd status (exit %d):\n%s", code, out)
	for _, want := range []string{
		"warning: VIP " + down + " port 80/TCP (default/down) has no ready backend",
		"warning: pool tiny is 100% full",
		"warning: datapath on veth0 runs in generic XDP mode",
		"warning: split brain: another MAC answered ARP/NDP for a VIP this node owns",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lbd status lacks %q:\n%s", want, out)
		}
	}
	if code != exitWarnings {
		t.Errorf("lbd status exit %d, want %d", code, exitWarnings)
	}
	code, out = lbdStatus(t, n, web)
	t.Logf("lbd status %s (exit %d):\n%s", web, code, out)
	if code != exitWarnings || !strings.Contains(out, "generic XDP") || !strings.Contains(out, "split brain") ||
		strings.Contains(out, "no ready backend") || strings.Contains(out, "pool tiny") {
		t.Errorf("lbd status %s: exit %d, want 3 with the node's warnings only:\n%s", web, code, out)
	}
	if !strings.Contains(out, "10.241.1.10:8080  node-1  ready  local") {
		t.Errorf("lbd status %s lacks its backend line:\n%s", web, out)
	}
}

// TestPrivilegedStatusPeerDown: a second Node whose lbd never answers
// heartbeats is reported down.
func TestPrivilegedStatusPeerDown(t *testing.T) {
	testutil.Privileged(t)
	n := startNodeWith(t, metricsManifests+`apiVersion: v1
kind: Node
metadata:
  name: node-2
status:
  addresses:
    - type: InternalIP
      address: 10.20.0.52
---
`)
	st := n.waitFindings(t, status.KindPeerDown)
	for _, f := range st.Findings {
		if f.Kind == status.KindPeerDown && f.Node != "node-2" {
			t.Errorf("peer-down for %s, want node-2", f.Node)
		}
	}
	code, out := lbdStatus(t, n)
	if code != exitWarnings || !strings.Contains(out, "warning: membership: peer node-2 (10.20.0.52) is down") ||
		!strings.Contains(out, "node-2 DOWN") {
		t.Errorf("lbd status: exit %d, want 3 and node-2 down:\n%s", code, out)
	}
}
