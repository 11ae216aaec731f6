// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/model"
)

// PoolOf returns the name of the pool of st whose ranges hold vip, or ""
// when none does (a VIP a Service kept after its pool was deleted).
func PoolOf(st *model.State, vip netip.Addr) string {
	vip = vip.Unmap()
	for i := range st.Pools {
		for _, r := range st.Pools[i].Ranges {
			if r.Contains(vip) {
				return st.Pools[i].Name
			}
		}
	}
	return ""
}

// covers reports whether announcement a announces pool (an empty Pools
// list announces every pool, also a VIP outside every pool).
func covers(a *model.Announcement, pool string) bool {
	return len(a.Pools) == 0 || slices.Contains(a.Pools, pool)
}

// selects reports whether announcement a applies to node n.
func selects(a *model.Announcement, n *model.Node) bool {
	return a.NodeSelector == nil || a.NodeSelector.Matches(n.Labels)
}

// Announced reports whether node n may announce the VIPs of pool: always
// when st has no Announcement (the default: every pool on every node),
// otherwise when an Announcement covering the pool selects n. With
// Announcements present, a pool none of them covers is announced by no
// node, as in MetalLB: announcing is opted into per pool.
func Announced(st *model.State, pool string, n *model.Node) bool {
	if len(st.Announcements) == 0 {
		return true
	}
	for i := range st.Announcements {
		a := &st.Announcements[i]
		if covers(a, pool) && selects(a, n) {
			return true
		}
	}
	return false
}

// Interfaces returns the interfaces node self answers ARP/NDP for vip on,
// sorted: the union of the Interfaces of the Announcements that cover
// vip's pool and select self, where an Announcement without Interfaces
// (and a State without Announcements) stands for def, the daemon's
// --interface. It returns nil when no Announcement applies.
func Interfaces(st *model.State, self string, vip netip.Addr, def string) []string {
	if len(st.Announcements) == 0 {
		return []string{def}
	}
	n, ok := st.Node(self)
	if !ok {
		return nil
	}
	pool := PoolOf(st, vip)
	var out []string
	for i := range st.Announcements {
		a := &st.Announcements[i]
		if !covers(a, pool) || !selects(a, n) {
			continue
		}
		if len(a.Interfaces) == 0 {
			out = append(out, def)
		}
		out = append(out, a.Interfaces...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Plan is what node self answers for: owned VIPs by interface. Every
// interface in prev (the previous Plan's keys) that owns nothing now maps
// to an empty list, so that applying the Plan with Announcer.Set closes
// its responders.
func Plan(st *model.State, e *Election, self, def string, prev []string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for _, iface := range prev {
		out[iface] = nil
	}
	for _, vip := range e.Owned(self) {
		for _, iface := range Interfaces(st, self, vip, def) {
			out[iface] = append(out[iface], vip)
		}
	}
	return out
}
