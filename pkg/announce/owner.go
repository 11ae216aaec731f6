// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"

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
	ReasonOwnedByPrefix  = "owned by "
	ReasonInvalidAddress = "invalid address"
)

// score is the rendezvous weight of node for vip: the first 8 bytes,
// big-endian, of sha256(node + "#" + vip bytes). The VIP is unmapped first
// so that ::ffff:a.b.c.d and a.b.c.d hash alike. This formula is a wire
// contract between lbd versions: nodes running different versions during
// a rolling upgrade must elect the same owner, so never change it.
func score(node string, vip netip.Addr) uint64 {
	h := sha256.New()
	h.Write([]byte(node))
	h.Write([]byte{'#'})
	h.Write(vip.Unmap().AsSlice())
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0])[:8])
}

// Owner returns the candidate that owns vip by rendezvous
// (highest-random-weight) hashing: the candidate with the highest score
// wins, and equal scores go to the lexically smallest name. It returns
// false when there are no candidates. The result does not depend on the
// order of candidates, and removing a candidate only moves the VIPs it
// owned.
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

// Eligible returns the names of the nodes of st that may announce svc, in
// the order of st.Nodes: nodes that are not Excluded, are live, and, when
// svc's traffic policy is Local, host a Ready endpoint of svc (with Local,
// a node without one would attract traffic it can only drop). A nil live
// treats every node as live.
func Eligible(st *model.State, svc *model.Service, live func(node string) bool) []string {
	var local map[string]bool
	if svc.TrafficPolicy == model.PolicyLocal {
		local = readyNodes(svc)
	}
	var out []string
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.Excluded || (live != nil && !live(n.Name)) {
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
// ReasonNoLocalEps, ReasonUnknownNode, or "owned by <node>"). Every node
// evaluating the same inputs computes the same owner. A nil live treats
// every node as live.
func ShouldAnnounce(self string, st *model.State, svc *model.Service, vip netip.Addr, live func(string) bool) (bool, string) {
	if !vip.IsValid() {
		return false, ReasonInvalidAddress
	}
	// Reasons about self come first: they are the actionable ones for the
	// operator looking at this node.
	n, ok := st.Node(self)
	switch {
	case !ok:
		return false, ReasonUnknownNode
	case n.Excluded:
		return false, ReasonExcluded
	case live != nil && !live(self):
		return false, ReasonNotLive
	case svc.TrafficPolicy == model.PolicyLocal && !readyNodes(svc)[self]:
		return false, ReasonNoLocalEps
	}
	owner, ok := Owner(vip, Eligible(st, svc, live))
	switch {
	case !ok:
		return false, ReasonNoEligible
	case owner == self:
		return true, ReasonOwner
	}
	return false, ReasonOwnedByPrefix + owner
}
