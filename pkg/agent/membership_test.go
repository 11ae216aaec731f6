// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

func TestPeerAddrs(t *testing.T) {
	a := netip.MustParseAddr
	st := &model.State{Nodes: []model.Node{
		{Name: "node1", Addrs: []netip.Addr{a("10.20.0.51")}},
		{Name: "node2", Addrs: []netip.Addr{a("fd00::52"), a("10.20.0.52"), a("10.20.9.52")}},
		{Name: "node3", Addrs: []netip.Addr{a("::ffff:10.20.0.53")}},
		{Name: "node4", Addrs: []netip.Addr{a("fd00::54")}}, // no IPv4: unreachable by heartbeats
	}}
	got := peerAddrs(st, "node1", a("10.20.0.51"))
	want := map[string]netip.Addr{"node2": a("10.20.0.52"), "node3": a("10.20.0.53")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("peerAddrs (-want +got):\n%s", diff)
	}
}

// Without membership every node is live; this keeps --gossip-port 0 at
// the behaviour before failure detection.
func TestLiveWithoutMembership(t *testing.T) {
	ag, err := New(Config{NodeName: "node1", Interface: "eth0", Membership: MembershipConfig{Disabled: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := ag.liveFunc()
	for _, n := range []string{"node1", "node2", "unknown"} {
		if !live(n) {
			t.Errorf("live(%q) = false without membership", n)
		}
	}
	if ag.fenced() {
		t.Error("fenced without membership")
	}
}
