// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/model"
)

// Reasons returned by ShouldAnnounce. A reason "owned by <node>" is built
// from ReasonOwnedByPrefix.
const (
	ReasonOwner          = "owner"
	ReasonExcluded       = "node excluded"
	ReasonNotLive        = "node not live"
	ReasonUnknownNode    = "node not in state"
	ReasonNoLocalEps     = "no ready local endpoints"
	ReasonNoEligible     = "no eligible node"
	ReasonNotAnnounced   = "no L2Announcement of the pool selects the node"
	ReasonOwnedByPrefix  = "owned by "
	ReasonInvalidAddress = "invalid address"
)

// score is the rendezvous weight of node for vip: the first 8 bytes,
// big-endian, of sha256(node + "#" + vip bytes). The VIP is unmapped first
// so that ::ffff:a.b.c.d and a.b.c.d hash alike. This formula is a wire
// contract between lbd versions, and so is Elect's placement on top of
// it: nodes running different versions during a rolling upgrade must
// elect the same owner, so never change either without a release note
// (versions before zone-aware Elect used this score alone).
func score(node string, vip netip.Addr) uint64 {
	h := sha256.New()
	h.Write([]byte(node))
	h.Write([]byte{'#'})
	h.Write(vip.Unmap().AsSlice())
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0])[:8])
}

// Owner returns the candidate vip prefers by rendezvous
// (highest-random-weight) hashing, which is its owner under Elect unless
// a load bound applies: the candidate with the highest score wins, and
// equal scores go to the lexically smallest name. It returns false when
// there are no candidates. The result does not depend on the order of
// candidates, and removing a candidate only moves the VIPs it preferred.
func Owner(vip netip.Addr, candidates []string) (string, bool) {
	var (
		best      string
		bestScore uint64
		found     bool
	)
	for _, c := range candidates {
		s := score(c, vip)
		if !found || s > bestScore || (s == bestScore && c < best) {
			best, bestScore, found = c, s, true
		}
	}
	return best, found
}

// Eligible returns the names of the nodes of st that may announce vip of
// svc, in the order of st.Nodes: nodes that are not Excluded, are live,
// are selected by an Announcement of vip's pool (see Announced) and, when
// svc's traffic policy is Local, host a Ready endpoint of svc (with Local,
// a node without one would attract traffic it can only drop). A nil live
// treats every node as live.
func Eligible(st *model.State, svc *model.Service, vip netip.Addr, live func(node string) bool) []string {
	var local map[string]bool
	if svc.TrafficPolicy == model.PolicyLocal {
		local = readyNodes(svc)
	}
	pool := PoolOf(st, vip)
	var out []string
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.Excluded || (live != nil && !live(n.Name)) || !Announced(st, pool, n) {
			continue
		}
		if local != nil && !local[n.Name] {
			continue
		}
		out = append(out, n.Name)
	}
	return out
}

func readyNodes(svc *model.Service) map[string]bool {
	m := make(map[string]bool)
	for _, ep := range svc.Endpoints {
		if ep.Ready && ep.NodeName != "" {
			m[ep.NodeName] = true
		}
	}
	return m
}

// ShouldAnnounce reports whether node self must announce vip of svc, with
// a human-readable reason for status output and logs: ReasonOwner when it
// must, otherwise why not (ReasonExcluded, ReasonNotLive,
// ReasonNotAnnounced, ReasonNoLocalEps, ReasonUnknownNode, or "owned by
// <node>"). It runs a whole Elect over st: a caller deciding for many
// VIPs calls Elect once and Why per VIP. A nil live treats every node as
// live.
func ShouldAnnounce(self string, st *model.State, svc *model.Service, vip netip.Addr, live func(string) bool) (bool, string) {
	if !vip.IsValid() {
		return false, ReasonInvalidAddress
	}
	if !slices.ContainsFunc(svc.VIPs, func(v netip.Addr) bool { return v.Unmap() == vip.Unmap() }) {
		// A Service not (yet) carrying vip: elect as if it did.
		c := *svc
		c.VIPs = []netip.Addr{vip}
		s := *st
		s.Services = append(slices.Clone(st.Services), c)
		st = &s
	}
	r := Why(Elect(st, live), self, st, svc, vip, live)
	return r == ReasonOwner, r
}

// Why returns the reason node self does or does not announce vip of svc
// under election e (see ShouldAnnounce for the reasons).
func Why(e *Election, self string, st *model.State, svc *model.Service, vip netip.Addr, live func(string) bool) string {
	// Reasons about self come first: they are the actionable ones for the
	// operator looking at this node.
	n, ok := st.Node(self)
	switch {
	case !vip.IsValid():
		return ReasonInvalidAddress
	case !ok:
		return ReasonUnknownNode
	case n.Excluded:
		return ReasonExcluded
	case live != nil && !live(self):
		return ReasonNotLive
	case !Announced(st, PoolOf(st, vip), n):
		return ReasonNotAnnounced
	case svc.TrafficPolicy == model.PolicyLocal && !readyNodes(svc)[self]:
		return ReasonNoLocalEps
	}
	owner, ok := e.Owner(vip)
	switch {
	case !ok:
		return e.Reason(vip)
	case owner == self:
		return ReasonOwner
	}
	return ReasonOwnedByPrefix + owner
}
