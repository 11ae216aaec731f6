// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/model"
)

// Election is the owner of every VIP of one State, as every node computes
// it from the same State and the same liveness. Create it with Elect; it
// is immutable and safe for concurrent use.
type Election struct {
	owners  map[netip.Addr]string // unmapped VIP -> owner
	reasons map[netip.Addr]string // unmapped VIP -> why it has no owner
}

// Owner returns the owner of vip, or false with the reason it has none
// (ReasonNoEligible, or a VIP not in the State).
func (e *Election) Owner(vip netip.Addr) (string, bool) {
	o, ok := e.owners[vip.Unmap()]
	return o, ok
}

// Reason returns why vip has no owner, or ReasonOwner when it has one.
func (e *Election) Reason(vip netip.Addr) string {
	if _, ok := e.owners[vip.Unmap()]; ok {
		return ReasonOwner
	}
	if r, ok := e.reasons[vip.Unmap()]; ok {
		return r
	}
	return ReasonNoEligible
}

// Owned returns the VIPs node owns, sorted.
func (e *Election) Owned(node string) []netip.Addr {
	var out []netip.Addr
	for v, o := range e.owners {
		if o == node {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Owners returns a copy of the VIP to owner map; VIPs without an owner
// are absent.
func (e *Election) Owners() map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(e.owners))
	for v, o := range e.owners {
		out[v] = o
	}
	return out
}

// Elect elects the owner of every VIP of st among its eligible nodes (see
// Eligible; a VIP shared by several Services may go only to a node
// eligible for all of them). A nil live treats every node as live.
//
// The election is rendezvous hashing with one zone bound:
//
//   - Each VIP ranks its candidates by the rendezvous score (see Owner)
//     and goes to the first one, so a VIP's owner does not depend on
//     any other VIP, every node gets an equal share in expectation
//     (127 VIPs over 3 nodes: 42 ± 5 each), and every zone
//     (topology.kubernetes.io/zone) a share proportional to its nodes.
//   - VIPs are placed in address order, and when candidates span two
//     zones or more, no zone may take all of them: the VIP that would
//     complete a zone goes to its best candidate in another zone.
//     Plain rendezvous puts both of two VIPs in one of three equal
//     zones a third of the time, and losing that zone would take every
//     VIP; the bound makes "not every VIP" a guarantee.
//   - When every candidate of a VIP is in the full zone (narrow
//     candidate sets, as with externalTrafficPolicy Local), the bound
//     gives way: every VIP with a candidate gets an owner.
//
// Why not bound node and zone loads to their exact shares (consistent
// hashing with bounded loads)? The bounds depend on the number of nodes,
// so removing one node changes them and reshuffles VIPs of surviving
// nodes: measured over 3 zones of 2–10 nodes and 30–127 VIPs, each node
// removal moved about as many extra VIPs as the node owned, up to 13
// times as many. With the zone bound alone, a removal moves only the
// removed node's VIPs, except where the bound has to split the VIPs
// anew (two or three VIPs: one extra VIP in some removals, possibly one
// owned in a surviving zone), and an added node takes only VIPs that now
// prefer it.
func Elect(st *model.State, live func(string) bool) *Election {
	e := &Election{owners: map[netip.Addr]string{}, reasons: map[netip.Addr]string{}}
	cands := map[netip.Addr][]string{}
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			if !vip.IsValid() {
				continue
			}
			vip = vip.Unmap()
			el := Eligible(st, svc, vip, live)
			if prev, ok := cands[vip]; ok {
				el = slices.DeleteFunc(slices.Clone(prev), func(n string) bool { return !slices.Contains(el, n) })
			}
			cands[vip] = el
		}
	}
	var items []item
	for vip, c := range cands {
		if len(c) == 0 {
			e.reasons[vip] = ReasonNoEligible
			continue
		}
		items = append(items, item{vip: vip, cands: c})
	}
	zone := func(n string) string {
		if nd, ok := st.Node(n); ok {
			return nd.Zone()
		}
		return ""
	}
	for vip, o := range assign(items, zone) {
		e.owners[vip] = o
	}
	return e
}

// item is one VIP to place with its candidate nodes.
type item struct {
	vip   netip.Addr
	cands []string
}

// assign places items by rendezvous with the zone bound (see Elect). It
// depends only on its arguments' contents, not their order.
func assign(items []item, zoneOf func(string) string) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(items))
	if len(items) == 0 {
		return out
	}
	slices.SortFunc(items, func(a, b item) int { return a.vip.Compare(b.vip) })
	nodeZone := map[string]string{}
	for _, it := range items {
		for _, c := range it.cands {
			nodeZone[c] = zoneOf(c)
		}
	}
	perZone := map[string]int{}
	for _, z := range nodeZone {
		perZone[z]++
	}
	// The one bound: no zone may hold every VIP while candidates span
	// two zones or more. It depends on the number of VIPs and of zones,
	// not of nodes, so a node coming or going changes it only when it
	// empties or opens a zone.
	zoneCap := len(items)
	if len(perZone) >= 2 && len(items) >= 2 {
		zoneCap = len(items) - 1
	}
	zoneLoad := map[string]int{}
	for _, it := range items {
		ranked := rank(it.vip, it.cands)
		pick := ranked[0]
		for _, c := range ranked {
			if zoneLoad[nodeZone[c]] < zoneCap {
				pick = c
				break
			}
		}
		zoneLoad[nodeZone[pick]]++
		out[it.vip] = pick
	}
	return out
}

// rank returns the distinct candidates of vip by descending rendezvous
// score, equal scores by name: rank(vip, c)[0] is Owner(vip, c).
func rank(vip netip.Addr, cands []string) []string {
	type scored struct {
		name  string
		score uint64
	}
	s := make([]scored, 0, len(cands))
	for _, c := range cands {
		if !slices.ContainsFunc(s, func(x scored) bool { return x.name == c }) {
			s = append(s, scored{c, score(c, vip)})
		}
	}
	slices.SortFunc(s, func(a, b scored) int {
		return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.name, b.name))
	})
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = x.name
	}
	return out
}
