// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbd-project/lbd/internal/testutil"
)

// goBuild builds the main packages pkgs (paths relative to this package)
// and returns the binaries' paths in order. Each package is built once per
// test process (cachedBuild); the binaries must not be modified.
func goBuild(t *testing.T, pkgs ...string) []string {
	t.Helper()
	var out []string
	for _, p := range pkgs {
		bin, err := cachedBuild(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bin)
	}
	return out
}

// newLab builds a lab that is torn down when the test ends (or on Ctrl-C),
// printing process logs if the test failed and checking that no namespace,
// pin dir or temp dir of the lab survives.
func newLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	opts.Logf = t.Logf
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	l, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	stop := l.CloseOnSignal()
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("process logs:%s", l.LogTails(30))
		}
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
		assertGone(t, l)
	})
	return l
}

// assertGone checks that nothing of lab l is left on the machine.
func assertGone(t *testing.T, l *Lab) {
	t.Helper()
	out, err := runIP(context.Background(), "netns", "list")
	if err != nil {
		t.Errorf("list netns: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, l.Prefix+"-") {
			t.Errorf("namespace %s survived teardown", line)
		}
	}
	paths := []string{l.Dir}
	for _, n := range l.Nodes {
		paths = append(paths, n.PinDir)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s survived teardown", p)
		}
	}
}

// TestPrivilegedLabTopology checks the lab's plumbing without lbd: the
// client reaches every pod directly through its node, pods see the client's
// real address, nodes reach each other's pods, ARP on the VLAN resolves to
// the deterministic MACs, and the namespaces are gone afterwards.
func TestPrivilegedLabTopology(t *testing.T) {
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver")
	l := newLab(t, Options{PodServer: bins[0], ClientPodRoutes: true})
	ctx := t.Context()
	client := l.Client()

	// The switch namespace holds the bridge with one port per host.
	out, err := runIP(ctx, "-n", l.Switch, "-o", "link", "show", "master", "br0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Count(out, "\n")+1, len(l.Nodes)+len(l.Clients); got != want {
		t.Errorf("bridge has %d ports, want %d:\n%s", got, want, out)
	}

	for _, p := range l.Pods() {
		target := netip.AddrPortFrom(p.IP, PodHTTPPort)
		if got, err := client.HTTPGet(ctx, target, "/"); err != nil || got != p.Name {
			t.Errorf("GET %s/ from client = %q, %v; want %q", target, got, err, p.Name)
		}
		// Routed, not translated: the pod sees the client itself.
		if got, err := client.HTTPGet(ctx, target, "/clientip"); err != nil || got != client.IP.String() {
			t.Errorf("GET %s/clientip from client = %q, %v; want %s", target, got, err, client.IP)
		}
		ans, err := client.UDPQuery(ctx, netip.AddrPortFrom(p.IP, PodUDPPort))
		if err != nil {
			t.Errorf("UDP query to %s: %v", p.IP, err)
		} else if ans.Pod != p.Name || ans.Client.Addr() != client.IP {
			t.Errorf("UDP answer from %s = %+v, want pod %s seeing %s", p.IP, ans, p.Name, client.IP)
		}
		// Node to node: every other node reaches the pod through the
		// pod routes, with its own address as source.
		for _, n := range l.Nodes {
			if n == p.Node {
				continue
			}
			if got, err := n.HTTPGet(ctx, target, "/clientip"); err != nil || got != n.IP.String() {
				t.Errorf("GET %s/clientip from %s = %q, %v; want %s", target, n.Name, got, err, n.IP)
			}
		}
	}

	// The client talked to every node as a gateway: each node's address
	// resolved to that node's MAC, and to nothing else.
	neigh, err := client.Neighbors()
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Addr]string{}
	for _, n := range neigh {
		got[n.IP] = n.MAC.String()
	}
	want := map[netip.Addr]string{}
	for _, n := range l.Nodes {
		want[n.IP] = n.MAC.String()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("client neighbour table (-want +got):\n%s", diff)
	}

	// Lab clients never send outside the lab's address plan.
	if _, err := client.HTTPGet(ctx, netip.MustParseAddrPort("198.51.100.1:80"), "/"); err == nil {
		t.Error("GET to 198.51.100.1 from the client succeeded; want refusal")
	}
}

// TestPrivilegedLabEndToEnd runs real lbd daemons on every node and checks
// the Cluster-policy path through both VIPs: every request answered, by
// every pod, ARP answered by the owner alone, UDP answered.
func TestPrivilegedLabEndToEnd(t *testing.T) {
	testutil.Privileged(t)
	if m, _ := filepath.Glob("../../cmd/lbd/*.go"); len(m) == 0 {
		t.Skip("cmd/lbd has no sources yet")
	}
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	checkEndToEnd(t, newLab(t, Options{PodServer: bins[0], LBD: bins[1]}))
}

// TestPrivilegedLabFakeLBD runs the end-to-end checks against fakelbd, a
// user-space stand-in with lbd's command line: it tests the harness
// (process management, status parsing, the traffic and ARP checks) apart
// from the daemon, so a failure of TestPrivilegedLabEndToEnd points at lbd.
func TestPrivilegedLabFakeLBD(t *testing.T) {
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver", "./internal/fakelbd")
	l := newLab(t, Options{PodServer: bins[0], LBD: bins[1]})
	checkEndToEnd(t, l)

	// Stop and restart one daemon: the harness must do both cleanly.
	n := l.Nodes[1]
	if err := l.StopLBD(n); err != nil {
		t.Fatal(err)
	}
	if done, err := n.LBD.Exited(); !done || err != nil {
		t.Errorf("lbd on %s after StopLBD: exited=%v, %v; want a clean exit", n.Name, done, err)
	}
	if err := l.StartNodeLBD(t.Context(), n, true); err != nil {
		t.Fatal(err)
	}
}

// checkEndToEnd asserts the Cluster-policy path through both VIPs of a lab
// running lbd (or a stand-in): the VIPs the pools promise, 100/100 HTTP
// requests answered by all six pods, a UDP answer, and the client's ARP
// entry for each VIP naming its owner's MAC.
func checkEndToEnd(t *testing.T, l *Lab) {
	t.Helper()
	ctx := t.Context()
	client := l.Client()

	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	wantVIPs := map[string]string{
		ServiceInternal: InternalRange[0].String() + " " + PoolInternal,
		ServiceExternal: ExternalRange[0].String() + " " + PoolExternal,
	}
	gotVIPs := map[string]string{}
	for _, v := range vips {
		gotVIPs[v.Service] = v.VIP.String() + " " + v.Pool
	}
	if diff := cmp.Diff(wantVIPs, gotVIPs); diff != "" {
		t.Errorf("VIPs from node1's status (-want +got):\n%s", diff)
	}

	var allPods []string
	for _, p := range l.Pods() {
		allPods = append(allPods, p.Name)
	}
	for _, v := range vips {
		owner := l.Node(v.Owner)
		if owner == nil {
			t.Errorf("VIP %s: owner %q is not a lab node", v.VIP, v.Owner)
			continue
		}
		target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
		tally := client.HTTPLoad(ctx, target, 100)
		if tally.OK != 100 {
			t.Errorf("HTTP to %s: %s", target, tally)
		}
		if diff := cmp.Diff(allPods, tally.Pods()); diff != "" {
			t.Errorf("HTTP to %s: pods that answered (-want +got):\n%s", target, diff)
		}

		udp := netip.AddrPortFrom(v.VIP, ServiceUDPPort)
		if ans, err := client.UDPQuery(ctx, udp); err != nil {
			t.Errorf("UDP query to %s: %v", udp, err)
		} else if !contains(allPods, ans.Pod) {
			t.Errorf("UDP answer from %s names %q, not a lab pod", udp, ans.Pod)
		}

		// A fresh ARP request for the VIP gets exactly one answer, from
		// the owner.
		macs, err := client.ARPResponders(ctx, v.VIP, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(macs) != 1 || macs[0].String() != owner.MAC.String() {
			t.Errorf("ARP for VIP %s answered by %v, want only owner %s's %s", v.VIP, macs, owner.Name, owner.MAC)
		}

		// And after traffic, the client's neighbour entry for the VIP
		// is the owner's MAC.
		n, ok, err := client.Neighbor(v.VIP)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("client has no neighbour entry for VIP %s", v.VIP)
		} else if n.MAC.String() != owner.MAC.String() {
			t.Errorf("VIP %s resolves to %s on the client, want owner %s's %s", v.VIP, n.MAC, owner.Name, owner.MAC)
		}
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		for _, n := range l.Nodes {
			if out, err := l.LBDStatus(ctx, n, false); err == nil {
				t.Logf("lbd status on %s:\n%s", n.Name, out)
			}
		}
	}
}

// TestPrivilegedLabClean checks that Clean removes a crashed run's
// leftovers: namespaces with processes still inside, pin and temp dirs.
func TestPrivilegedLabClean(t *testing.T) {
	testutil.Privileged(t)
	ctx := t.Context()
	l, err := claimPrefix()
	if err != nil {
		t.Fatal(err)
	}
	l.opts.Logf = t.Logf
	l.Switch = l.Prefix + "-sw"
	t.Cleanup(func() {
		_ = l.Close() // in case Clean failed
	})
	for _, ns := range []string{l.Switch, l.Prefix + "-n1"} {
		if err := l.addNS(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// A process left behind in a node namespace, as after a crash.
	sleeper, err := startProcess("sleep", l.Prefix+"-n1", filepath.Join(l.Dir, "sleep.log"), []string{"sleep", "60"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ensureBPFFS(); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(bpffsRoot, l.Prefix+"-node1")
	if err := os.Mkdir(pin, 0o700); err != nil {
		t.Fatal(err)
	}

	removed, err := Clean(ctx, l.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"netns " + l.Prefix + "-n1", "netns " + l.Switch, pin, l.Dir}
	if diff := cmp.Diff(want, removed); diff != "" {
		t.Errorf("Clean removed (-want +got):\n%s", diff)
	}
	select {
	case <-sleeper.done:
	case <-time.After(5 * time.Second):
		t.Error("process in a cleaned namespace still runs")
		_ = sleeper.Signal(os.Kill)
	}
	assertGone(t, l)
}
