// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/announce"
	"github.com/lbd-project/lbd/pkg/model"
)

// OwnershipEvents receives this node's ownership transitions, to record
// them where operators look (Kubernetes Events on the Service). It is
// called from the reconcile loop, once per Service sharing the VIP:
// implementations must not block.
type OwnershipEvents interface {
	// OwnershipChanged says this node took (owned) or released (!owned)
	// vip of svc, and why (an announce.Reason* string).
	OwnershipChanged(svc model.ServiceKey, vip netip.Addr, owned bool, reason string)
}

// observeElection counts owner changes and reports this node's takeovers
// and releases, comparing e with the previous election.
//
// An owner change is a VIP whose elected owner differs from the previous
// election's (a VIP gaining or losing its last owner counts too). The
// first election after start is the baseline, not a change, and elections
// made while this node is fenced do not count: cut off, its view of the
// other nodes is not the cluster's.
func (a *Agent) observeElection(st *model.State, e *announce.Election) {
	self := a.cfg.NodeName
	next := e.Owners()
	fenced := a.fenced()

	a.mu.Lock()
	prev, first := a.owners, a.election == nil
	a.election = e
	var changes uint64
	if !fenced {
		if !first {
			for vip := range union(prev, next) {
				if prev[vip] != next[vip] {
					changes++
				}
			}
		}
		a.owners = next
	}
	a.ownerChanges += changes
	wasOwned := a.ownedBy
	a.ownedBy = map[netip.Addr]bool{}
	for vip, o := range next {
		if o == self {
			a.ownedBy[vip] = true
		}
	}
	nowOwned := a.ownedBy
	a.mu.Unlock()

	live := a.liveFunc()
	report := func(vip netip.Addr, owned bool) {
		for i := range st.Services {
			svc := &st.Services[i]
			if !slices.ContainsFunc(svc.VIPs, func(v netip.Addr) bool { return v.Unmap() == vip }) {
				continue
			}
			reason := announce.Why(e, self, st, svc, vip, live)
			if owned {
				a.log.Info("took VIP over", "op", "announce", "ip", vip, "svc", svc.Key.String(), "reason", reason)
			} else {
				a.log.Info("released VIP", "op", "withdraw", "ip", vip, "svc", svc.Key.String(), "reason", reason)
			}
			if a.cfg.Events != nil {
				a.cfg.Events.OwnershipChanged(svc.Key, vip, owned, reason)
			}
		}
	}
	for _, vip := range sortedAddrs(nowOwned) {
		if !wasOwned[vip] {
			report(vip, true)
		}
	}
	for _, vip := range sortedAddrs(wasOwned) {
		if !nowOwned[vip] {
			report(vip, false)
		}
	}
}

// OwnerChanges returns the owner changes counted since start (see
// observeElection).
func (a *Agent) OwnerChanges() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ownerChanges
}

func union(a, b map[netip.Addr]string) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func sortedAddrs(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
