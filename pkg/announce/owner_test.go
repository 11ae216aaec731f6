// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// internalPool returns the 127 VIPs of the reference cluster's internal
// pool, 10.20.1.1-10.20.1.127.
func internalPool() []netip.Addr {
	var vips []netip.Addr
	a := netip.MustParseAddr("10.20.1.1")
	for range 127 {
		vips = append(vips, a)
		a = a.Next()
	}
	return vips
}

func nodes(names ...string) []model.Node {
	var ns []model.Node
	for _, n := range names {
		ns = append(ns, model.Node{Name: n})
	}
	return ns
}

func TestOwnerMatchesDocumentedFormula(t *testing.T) {
	// The score is a cross-version contract; recompute it from its
	// definition rather than trusting score().
	cands := []string{"node1", "node2", "node3", "worker-51"}
	for _, vip := range append(internalPool()[:20], netip.MustParseAddr("fd00::a1")) {
		var want string
		var best uint64
		for _, c := range cands {
			sum := sha256.Sum256(append([]byte(c+"#"), vip.AsSlice()...))
			if s := binary.BigEndian.Uint64(sum[:8]); want == "" || s > best {
				want, best = c, s
			}
		}
		got, ok := Owner(vip, cands)
		if !ok || got != want {
			t.Errorf("Owner(%s) = %q, %v; want %q", vip, got, ok, want)
		}
	}
}

func TestOwnerEmptyAndOrderIndependent(t *testing.T) {
	vip := netip.MustParseAddr("10.20.1.1")
	if got, ok := Owner(vip, nil); ok || got != "" {
		t.Errorf("Owner with no candidates = %q, %v; want none", got, ok)
	}
	cands := []string{"a", "b", "c", "d", "e"}
	want, _ := Owner(vip, cands)
	rev := slices.Clone(cands)
	slices.Reverse(rev)
	if got, _ := Owner(vip, rev); got != want {
		t.Errorf("Owner depends on candidate order: %q vs %q", got, want)
	}
	// A v4-mapped v6 form of the same VIP elects the same owner.
	mapped := netip.AddrFrom16(vip.As16())
	if got, _ := Owner(mapped, cands); got != want {
		t.Errorf("Owner(%s) = %q, want %q as for %s", mapped, got, want, vip)
	}
}

func TestOwnerTieBrokenByName(t *testing.T) {
	// Equal scores only happen with duplicate names in practice; a
	// duplicate must not change the answer.
	vip := netip.MustParseAddr("10.20.1.9")
	want, _ := Owner(vip, []string{"x", "y"})
	got, _ := Owner(vip, []string{"x", "y", want, "y"})
	if got != want {
		t.Errorf("Owner with duplicates = %q, want %q", got, want)
	}
}

func TestShouldAnnounceExactlyOneWinner(t *testing.T) {
	st := &model.State{Nodes: nodes("node1", "node2", "node3", "node4", "node5")}
	svc := &model.Service{Key: model.ServiceKey{Namespace: "ns", Name: "svc"}}
	vips := append(internalPool(), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"))
	for _, vip := range vips {
		var winners []string
		for _, n := range st.Nodes {
			ok, reason := ShouldAnnounce(n.Name, st, svc, vip, nil)
			if ok {
				winners = append(winners, n.Name)
				if reason != ReasonOwner {
					t.Errorf("%s: winner %s has reason %q", vip, n.Name, reason)
				}
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%s: winners %v, want exactly one", vip, winners)
		}
		// Losers name the same winner.
		for _, n := range st.Nodes {
			if n.Name == winners[0] {
				continue
			}
			_, reason := ShouldAnnounce(n.Name, st, svc, vip, nil)
			if want := ReasonOwnedByPrefix + winners[0]; reason != want {
				t.Errorf("%s from %s: reason %q, want %q", vip, n.Name, reason, want)
			}
		}
	}
}

func TestOwnerRemovalMovesOnlyOwnedVIPs(t *testing.T) {
	all := []string{"node1", "node2", "node3", "node4", "node5"}
	vips := internalPool()
	before := make(map[netip.Addr]string)
	for _, v := range vips {
		before[v], _ = Owner(v, all)
	}
	for i, gone := range all {
		rest := slices.Delete(slices.Clone(all), i, i+1)
		moved := 0
		for _, v := range vips {
			after, _ := Owner(v, rest)
			if before[v] == gone {
				moved++
				if after == gone {
					t.Errorf("%s still owned by removed %s", v, gone)
				}
				continue
			}
			if after != before[v] {
				t.Errorf("removing %s moved %s from %s to %s", gone, v, before[v], after)
			}
		}
		if moved == 0 {
			t.Errorf("%s owned no VIP of %d; distribution is broken", gone, len(vips))
		}
	}
}

func TestOwnerSpread(t *testing.T) {
	all := []string{"node1", "node2", "node3"}
	count := make(map[string]int)
	for _, v := range internalPool() {
		o, _ := Owner(v, all)
		count[o]++
	}
	// 127/3 ≈ 42.3 each, binomial σ ≈ 5.3: allow about ±3σ.
	for _, n := range all {
		if c := count[n]; c < 26 || c > 58 {
			t.Errorf("%s owns %d of 127 VIPs, want 26..58 (counts %v)", n, c, count)
		}
	}
	t.Logf("spread over 127 VIPs: %v", count)
}

func TestEligible(t *testing.T) {
	st := &model.State{Nodes: []model.Node{
		{Name: "cp1", Excluded: true},
		{Name: "node1"},
		{Name: "node2"},
		{Name: "node3"},
		{Name: "node4"},
	}}
	eps := []model.Endpoint{
		{Addr: netip.MustParseAddr("10.241.1.5"), NodeName: "node1", Ready: true},
		{Addr: netip.MustParseAddr("10.241.2.5"), NodeName: "node2", Ready: false, Serving: true, Terminating: true},
		{Addr: netip.MustParseAddr("10.241.3.5"), NodeName: "node3", Ready: true},
		{Addr: netip.MustParseAddr("10.241.0.5"), NodeName: "cp1", Ready: true},
	}
	deadNode3 := func(n string) bool { return n != "node3" }
	tests := []struct {
		name   string
		policy model.TrafficPolicy
		live   func(string) bool
		want   []string
	}{
		{"cluster all live", model.PolicyCluster, nil, []string{"node1", "node2", "node3", "node4"}},
		{"cluster one dead", model.PolicyCluster, deadNode3, []string{"node1", "node2", "node4"}},
		{"local ready only", model.PolicyLocal, nil, []string{"node1", "node3"}},
		{"local one dead", model.PolicyLocal, deadNode3, []string{"node1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &model.Service{TrafficPolicy: tt.policy, Endpoints: eps}
			if diff := cmp.Diff(tt.want, Eligible(st, svc, netip.MustParseAddr("10.20.1.1"), tt.live)); diff != "" {
				t.Errorf("Eligible (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShouldAnnounceReasons(t *testing.T) {
	st := &model.State{Nodes: []model.Node{
		{Name: "cp1", Excluded: true},
		{Name: "node1"},
		{Name: "node2"},
	}}
	local := &model.Service{TrafficPolicy: model.PolicyLocal, Endpoints: []model.Endpoint{
		{Addr: netip.MustParseAddr("10.241.1.5"), NodeName: "node1", Ready: true},
		{Addr: netip.MustParseAddr("10.241.0.5"), NodeName: "cp1", Ready: true},
	}}
	cluster := &model.Service{}
	vip := netip.MustParseAddr("10.20.1.1")
	clusterOwner, _ := Owner(vip, []string{"node1", "node2"})
	clusterLoser := "node1"
	if clusterOwner == "node1" {
		clusterLoser = "node2"
	}
	tests := []struct {
		name       string
		self       string
		svc        *model.Service
		live       func(string) bool
		want       bool
		wantReason string
	}{
		{"excluded with local endpoint", "cp1", local, nil, false, ReasonExcluded},
		{"local only candidate", "node1", local, nil, true, ReasonOwner},
		{"local without endpoint", "node2", local, nil, false, ReasonNoLocalEps},
		{"local not live", "node1", local, func(n string) bool { return n != "node1" }, false, ReasonNotLive},
		{"unknown node", "ghost", cluster, nil, false, ReasonUnknownNode},
		{"cluster owner", clusterOwner, cluster, nil, true, ReasonOwner},
		{"cluster loser", clusterLoser, cluster, nil, false, ReasonOwnedByPrefix + clusterOwner},
		{"cluster owner dead", clusterLoser, cluster, func(n string) bool { return n != clusterOwner }, true, ReasonOwner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := ShouldAnnounce(tt.self, st, tt.svc, vip, tt.live)
			if got != tt.want || reason != tt.wantReason {
				t.Errorf("ShouldAnnounce = %v, %q; want %v, %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func BenchmarkOwner(b *testing.B) {
	var cands []string
	for i := range 100 {
		cands = append(cands, fmt.Sprintf("worker-%d", i))
	}
	vip := netip.MustParseAddr("10.20.1.1")
	for b.Loop() {
		Owner(vip, cands)
	}
}
