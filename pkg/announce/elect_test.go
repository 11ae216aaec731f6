// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

const zoneLabel = "topology.kubernetes.io/zone"

// zonedState returns a State with zones × perZone nodes named
// "<zone>-n<i>" in zones "zone-a", "zone-b", … and one Cluster-policy
// Service per VIP.
func zonedState(zones, perZone int, vips []netip.Addr) *model.State {
	st := &model.State{}
	for z := range zones {
		for i := range perZone {
			zn := fmt.Sprintf("zone-%c", 'a'+z)
			st.Nodes = append(st.Nodes, model.Node{
				Name:   fmt.Sprintf("%s-n%d", zn, i),
				Labels: map[string]string{zoneLabel: zn},
			})
		}
	}
	for i, v := range vips {
		st.Services = append(st.Services, model.Service{
			Key:  model.ServiceKey{Namespace: "ns", Name: fmt.Sprintf("svc%d", i)},
			VIPs: []netip.Addr{v},
		})
	}
	return st
}

func zoneOf(st *model.State, node string) string {
	n, _ := st.Node(node)
	return n.Zone()
}

func without(node string) func(string) bool {
	return func(n string) bool { return n != node }
}

// Losing any one zone never takes every VIP: over 3 zones of 1–10 nodes
// and 2–127 VIPs, some VIP is always owned outside each zone, and once the
// zone is gone every VIP has an owner again.
func TestElectZoneLossKeepsAVIP(t *testing.T) {
	for _, perZone := range []int{1, 2, 3, 4, 10} {
		for _, nv := range []int{2, 3, 5, 30, 127} {
			st := zonedState(3, perZone, internalPool()[:nv])
			e := Elect(st, nil)
			perZoneLoad := map[string]int{}
			for _, o := range e.Owners() {
				perZoneLoad[zoneOf(st, o)]++
			}
			for z := range 3 {
				zn := fmt.Sprintf("zone-%c", 'a'+z)
				if perZoneLoad[zn] == nv {
					t.Errorf("%d nodes per zone, %d VIPs: zone %s owns every VIP", perZone, nv, zn)
				}
				// The zone goes down: every VIP gets an owner outside it.
				after := Elect(st, func(n string) bool { return zoneOf(st, n) != zn })
				for _, v := range internalPool()[:nv] {
					if o, ok := after.Owner(v); !ok || zoneOf(st, o) == zn {
						t.Errorf("%d×%d, %d VIPs, %s lost: %s owned by %q", 3, perZone, nv, zn, v, o)
					}
				}
			}
		}
	}
}

// Plain rendezvous hashing puts two VIPs in one zone about a third of the
// time with three equal zones; Elect never does.
func TestElectSplitsPairsPlainRendezvousWouldNot(t *testing.T) {
	st := zonedState(3, 2, nil)
	var names []string
	for _, n := range st.Nodes {
		names = append(names, n.Name)
	}
	pool := internalPool()
	sameZone := 0
	for i := 0; i+1 < len(pool); i += 2 {
		pair := pool[i : i+2]
		a, _ := Owner(pair[0], names)
		b, _ := Owner(pair[1], names)
		if zoneOf(st, a) != zoneOf(st, b) {
			continue
		}
		sameZone++
		e := Elect(zonedState(3, 2, pair), nil)
		ea, _ := e.Owner(pair[0])
		eb, _ := e.Owner(pair[1])
		if zoneOf(st, ea) == zoneOf(st, eb) {
			t.Errorf("VIPs %v both in %s (%s, %s)", pair, zoneOf(st, ea), ea, eb)
		}
		// Only the second VIP of the pair gives way.
		if ea != a {
			t.Errorf("%s moved from its first choice %s to %s", pair[0], a, ea)
		}
	}
	if sameZone < 10 {
		t.Fatalf("plain rendezvous put only %d of 63 pairs in one zone; the test proves nothing", sameZone)
	}
	t.Logf("plain rendezvous: %d of 63 VIP pairs in one zone; Elect: none", sameZone)
}

// VIPs spread evenly over nodes and zones: 127 VIPs over 3 zones × 4
// nodes, about 10.6 per node (binomial σ ≈ 3.1) and 42.3 per zone (σ ≈
// 5.3).
func TestElectSpread(t *testing.T) {
	st := zonedState(3, 4, internalPool())
	perNode, perZone := map[string]int{}, map[string]int{}
	for _, o := range Elect(st, nil).Owners() {
		perNode[o]++
		perZone[zoneOf(st, o)]++
	}
	for _, n := range st.Nodes {
		if c := perNode[n.Name]; c < 2 || c > 20 {
			t.Errorf("%s owns %d VIPs, want 2..20 (%v)", n.Name, c, perNode)
		}
	}
	for z, c := range perZone {
		if c < 26 || c > 58 {
			t.Errorf("zone %s owns %d VIPs, want 26..58 (%v)", z, c, perZone)
		}
	}
	t.Logf("per node %v, per zone %v", perNode, perZone)
}

// Removing a node moves only the VIPs it owned, plus at most one VIP the
// zone bound displaces, and those to nodes that remain.
func TestElectChurnOnNodeRemoval(t *testing.T) {
	for _, tc := range []struct{ perZone, vips, maxExtra int }{
		{4, 127, 0}, {10, 127, 0}, {3, 30, 0}, {2, 3, 1}, {2, 2, 1}, {1, 5, 1},
	} {
		st := zonedState(3, tc.perZone, internalPool()[:tc.vips])
		before := Elect(st, nil).Owners()
		for _, gone := range st.Nodes {
			after := Elect(st, without(gone.Name)).Owners()
			extra, owned := 0, 0
			for v, o := range before {
				switch {
				case after[v] == gone.Name || after[v] == "":
					t.Errorf("%+v: %s owned by %q after %s left", tc, v, after[v], gone.Name)
				case o == gone.Name:
					owned++
				case after[v] != o:
					extra++
				}
			}
			if extra > tc.maxExtra {
				t.Errorf("3×%d nodes, %d VIPs: removing %s (owner of %d) moved %d other VIPs, want ≤ %d",
					tc.perZone, tc.vips, gone.Name, owned, extra, tc.maxExtra)
			}
		}
	}
}

// Adding a node moves only VIPs to the new node (no reshuffle among the
// others), about 1/(N+1) of them.
func TestElectChurnOnNodeAddition(t *testing.T) {
	st := zonedState(3, 3, internalPool())
	before := Elect(st, nil).Owners()
	st.Nodes = append(st.Nodes, model.Node{Name: "zone-b-new", Labels: map[string]string{zoneLabel: "zone-b"}})
	after := Elect(st, nil).Owners()
	moved := 0
	for v, o := range before {
		if after[v] == o {
			continue
		}
		moved++
		if after[v] != "zone-b-new" {
			t.Errorf("%s moved %s -> %s, not to the new node", v, o, after[v])
		}
	}
	// 127/10 ≈ 12.7 expected.
	if moved < 3 || moved > 25 {
		t.Errorf("adding a tenth node moved %d of 127 VIPs, want about 13", moved)
	}
}

// Every node computes the same owners from the same State, whatever the
// order of its slices, and from every node's own perspective exactly one
// node owns each VIP.
func TestElectDeterministic(t *testing.T) {
	st := zonedState(3, 3, internalPool()[:40])
	// Two Services share a VIP; an IPv6 VIP and a v4-mapped one join.
	st.Services = append(st.Services,
		model.Service{Key: model.ServiceKey{Namespace: "ns", Name: "shared"}, VIPs: []netip.Addr{internalPool()[0]}},
		model.Service{Key: model.ServiceKey{Namespace: "ns", Name: "v6"}, VIPs: []netip.Addr{netip.MustParseAddr("fd00::1")}},
		model.Service{Key: model.ServiceKey{Namespace: "ns", Name: "mapped"}, VIPs: []netip.Addr{netip.MustParseAddr("::ffff:10.20.1.200")}},
	)
	want := Elect(st, nil).Owners()
	if len(want) != 42 {
		t.Fatalf("elected %d VIPs, want 42", len(want))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		sh := *st
		sh.Nodes = slices.Clone(st.Nodes)
		sh.Services = slices.Clone(st.Services)
		r.Shuffle(len(sh.Nodes), func(i, j int) { sh.Nodes[i], sh.Nodes[j] = sh.Nodes[j], sh.Nodes[i] })
		r.Shuffle(len(sh.Services), func(i, j int) { sh.Services[i], sh.Services[j] = sh.Services[j], sh.Services[i] })
		if diff := cmp.Diff(want, Elect(&sh, nil).Owners()); diff != "" {
			t.Fatalf("owners depend on input order (-want +got):\n%s", diff)
		}
	}
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			e := Elect(st, nil)
			var winners []string
			for _, n := range st.Nodes {
				if Why(e, n.Name, st, svc, vip, nil) == ReasonOwner {
					winners = append(winners, n.Name)
				}
			}
			if len(winners) != 1 || winners[0] != want[vip.Unmap()] {
				t.Errorf("%s: winners %v, want only %s", vip, winners, want[vip.Unmap()])
			}
		}
	}
}

// A VIP shared by a Cluster and a Local Service goes only to a node that
// suits both: one with a ready local endpoint of the Local one.
func TestElectSharedVIPIntersectsCandidates(t *testing.T) {
	vip := netip.MustParseAddr("10.20.1.7")
	st := zonedState(3, 2, nil)
	st.Services = []model.Service{
		{Key: model.ServiceKey{Namespace: "ns", Name: "cluster"}, VIPs: []netip.Addr{vip}},
		{Key: model.ServiceKey{Namespace: "ns", Name: "local"}, VIPs: []netip.Addr{vip}, TrafficPolicy: model.PolicyLocal,
			Endpoints: []model.Endpoint{{Addr: netip.MustParseAddr("10.241.3.9"), NodeName: "zone-c-n1", Ready: true}}},
	}
	if o, ok := Elect(st, nil).Owner(vip); !ok || o != "zone-c-n1" {
		t.Errorf("owner %q, %v; want zone-c-n1, the only node with the Local endpoint", o, ok)
	}
	// Without it, nobody: the Local Service would drop traffic.
	st.Services[1].Endpoints[0].Ready = false
	e := Elect(st, nil)
	if o, ok := e.Owner(vip); ok {
		t.Errorf("owner %q without a ready Local endpoint, want none", o)
	}
	if r := e.Reason(vip); r != ReasonNoEligible {
		t.Errorf("reason %q, want %q", r, ReasonNoEligible)
	}
}

func BenchmarkElect(b *testing.B) {
	st := zonedState(3, 33, internalPool())
	for b.Loop() {
		Elect(st, nil)
	}
}
