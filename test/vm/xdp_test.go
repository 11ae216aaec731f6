// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// xdpArgs runs lbd's datapath in generic XDP: the lab's veths would
// otherwise get tcx ("auto"), whose bpf_redirect_neigh hides what XDP
// cannot do, resolve a neighbour.
var xdpArgs = []string{"--attach-mode", "xdpgeneric"}

// requireXDP fails the test unless n's datapath is attached in XDP mode.
func requireXDP(ctx context.Context, t *testing.T, l *Lab, n *Node) *DPStatus {
	t.Helper()
	ds, err := l.DatapathStatus(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ds.Attached["eth0"], "xdp") {
		t.Fatalf("%s: eth0 attached as %q, want XDP", n.Name, ds.Attached["eth0"])
	}
	return ds
}

// reasonsMoved returns how much each counter of the node's datapath grew
// since before.
func reasonsMoved(ctx context.Context, t *testing.T, l *Lab, n *Node, before map[string]uint64) map[string]uint64 {
	t.Helper()
	ds, err := l.DatapathStatus(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string]uint64{}
	for k, v := range ds.Reasons {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// TestPrivilegedLabXDPRemoteBackends: in XDP mode, a Cluster Service whose
// only backend is on another node than the VIP's owner. The owner never
// resolved the client (the client's ARP asks for the VIP, answered by
// lbd, not the kernel), so the first reply finds no neighbour: it is
// handed, translated, to the owner's stack, which forwards it and
// resolves the client; the replies after go the XDP fast path. Before the
// fix every reply was dropped (0/5 requests, drop_fib).
func TestPrivilegedLabXDPRemoteBackends(t *testing.T) {
	l := labWithLBD(t, Options{Nodes: 2, PodsPerNode: 1, LBDArgs: xdpArgs})
	ctx := t.Context()
	client := l.Client()

	// One pod's node ends up the owner or not; if it is, the Service moves
	// to the other node's pod so the backend is remote.
	svc := ExtraService{Name: "xdp-remote", Endpoints: l.Nodes[0].Pods}
	if err := l.ApplyServices(svc); err != nil {
		t.Fatal(err)
	}
	_, owner, err := l.WaitService(ctx, svc.Key(), svc.Endpoints, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if owner == l.Nodes[0] {
		svc.Endpoints = l.Nodes[1].Pods
		if err := l.ApplyServices(svc); err != nil {
			t.Fatal(err)
		}
	}
	v, owner, err := l.WaitService(ctx, svc.Key(), svc.Endpoints, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if owner == svc.Endpoints[0].Node {
		t.Fatalf("%s owned by %s, its backend's node: want a remote backend", v.VIP, owner.Name)
	}
	ds := requireXDP(ctx, t, l, owner)

	// Make sure the owner starts without the client's neighbour entry.
	if _, ok, err := owner.Neighbor(client.IP); err != nil {
		t.Fatal(err)
	} else if ok {
		if err := ipIn(ctx, owner.NetNS, "neigh", "del", client.IP.String(), "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
	}

	tally := client.HTTPLoad(ctx, netip.AddrPortFrom(v.VIP, ServiceHTTPPort), 10)
	moved := reasonsMoved(ctx, t, l, owner, ds.Reasons)
	t.Logf("%s via %s (owner %s, backend on %s): %s; owner's counters moved %v",
		svc.Key(), v.VIP, owner.Name, svc.Endpoints[0].Node.Name, tally, moved)
	if tally.OK != tally.Sent {
		t.Errorf("HTTP to %s: %s; want every request answered", v.VIP, tally)
	}
	if moved["drop_fib"] != 0 || moved["fwd_stack_no_neigh"] == 0 || moved["revnat"] == 0 {
		t.Errorf("owner's counters moved %v: want drop_fib 0, fwd_stack_no_neigh > 0 (replies to the stack while the client was unresolved), revnat > 0 (the fast path after)", moved)
	}
	if nb, ok, err := owner.Neighbor(client.IP); err != nil {
		t.Fatal(err)
	} else if !ok || nb.MAC.String() != client.MAC.String() {
		t.Errorf("owner's neighbour entry for the client %s = %+v (found %v), want %s, resolved by the stack", client.IP, nb, ok, client.MAC)
	}
}

// TestPrivilegedLabXDPIPv6: in XDP mode, the dual-stack Cluster Service's
// IPv6 VIP with a pod on each node. Nothing resolved the other node's
// IPv6 address on the owner (the membership heartbeats are IPv4) nor the
// client's, so the first SNATed request to the other node's pod and the
// first reply to the client find no neighbour and go through the owner's
// stack; before the fix they were dropped (3/10 ok, all from the owner's
// own pod).
func TestPrivilegedLabXDPIPv6(t *testing.T) {
	l := labWithLBD(t, Options{Nodes: 2, PodsPerNode: 1, IPv6: true, LBDArgs: xdpArgs})
	ctx := t.Context()
	client := l.Client()
	_, v6, owner := dualVIPs(ctx, t, l, ServiceDual)
	other := l.Nodes[0]
	if other == owner {
		other = l.Nodes[1]
	}
	ds := requireXDP(ctx, t, l, owner)
	if nb, ok, err := owner.Neighbor6(other.IP6()); err != nil {
		t.Fatal(err)
	} else if ok {
		t.Logf("%s already has a neighbour entry for %s: %+v", owner.Name, other.IP6(), nb)
	}

	tally := client.HTTPLoad(ctx, netip.AddrPortFrom(v6, ServiceHTTPPort), 20)
	moved := reasonsMoved(ctx, t, l, owner, ds.Reasons)
	t.Logf("%s via [%s] (owner %s): %s; owner's counters moved %v", ServiceDual, v6, owner.Name, tally, moved)
	if tally.OK != tally.Sent || len(tally.Pods()) != 2 {
		t.Errorf("HTTP to [%s]: %s; want every request answered, by both nodes' pods", v6, tally)
	}
	if moved["drop_fib"] != 0 || moved["fwd_stack_no_neigh"] == 0 || moved["fwd"] == 0 {
		t.Errorf("owner's counters moved %v: want drop_fib 0, fwd_stack_no_neigh > 0, fwd > 0", moved)
	}
	for _, h := range []*Host{&other.Host, client} {
		if nb, ok, err := owner.Neighbor6(h.IP6()); err != nil {
			t.Fatal(err)
		} else if !ok || nb.MAC.String() != h.MAC.String() {
			t.Errorf("owner's neighbour entry for %s %s = %+v (found %v), want %s, resolved by the stack", h.Name, h.IP6(), nb, ok, h.MAC)
		}
	}
}
