// SPDX-License-Identifier: Apache-2.0

package status

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Kinds of findings. Each has an entry in docs/troubleshooting.md saying
// what to do about it.
const (
	KindNoReadyBackend = "no-ready-backend"
	KindPoolNearlyFull = "pool-nearly-full"
	KindSplitBrain     = "split-brain"
	KindPeerDown       = "peer-down"
	KindFenced         = "fenced"
	KindGenericXDP     = "generic-xdp"
)

// PoolNearlyFullPercent is the use of a pool from which it is reported.
const PoolNearlyFullPercent = 90

// SplitBrainWindow is how long a conflicting ARP/NDP answer keeps the
// split-brain warning up after it was last noticed.
const SplitBrainWindow = 10 * time.Minute

// Finding is a warning with what it is about, so that `lbd status VIP`
// can keep the ones about that VIP and its pool.
type Finding struct {
	Kind    string `json:"kind"`
	VIP     string `json:"vip,omitempty"`
	Pool    string `json:"pool,omitempty"`
	Node    string `json:"node,omitempty"`
	Message string `json:"message"`
}

// Check derives the findings from st's data alone (now decides whether a
// conflict is recent).
func Check(st *Status, now time.Time) []Finding {
	var out []Finding
	for _, v := range st.VIPs {
		for _, p := range v.Ports {
			if !slices.ContainsFunc(p.Backends, func(b Backend) bool { return b.Ready }) {
				out = append(out, Finding{Kind: KindNoReadyBackend, VIP: v.VIP, Pool: v.Pool,
					Message: fmt.Sprintf("VIP %s port %d/%s (%s) has no ready backend", v.VIP, p.Port, p.Protocol, p.Service)})
			}
		}
	}
	for _, p := range st.Pools {
		if p.Total > 0 && p.Used*100 >= p.Total*PoolNearlyFullPercent {
			out = append(out, Finding{Kind: KindPoolNearlyFull, Pool: p.Name,
				Message: fmt.Sprintf("pool %s is %d%% full", p.Name, p.Used*100/p.Total)})
		}
	}
	if t := st.Announce.LastConflict; st.Announce.Conflicts > 0 && t != nil && now.Sub(*t) < SplitBrainWindow {
		out = append(out, Finding{Kind: KindSplitBrain, Node: st.Node,
			Message: fmt.Sprintf("split brain: another MAC answered ARP/NDP for a VIP this node owns (%d conflicting answers since lbd started, the last noticed %s ago)",
				st.Announce.Conflicts, now.Sub(*t).Round(time.Second))})
	}
	healthy, peers := 0, 0
	selfFenced := false
	for _, m := range st.Members {
		if m.Node == st.Node {
			selfFenced = !m.Healthy
			continue
		}
		peers++
		if m.Healthy {
			healthy++
			continue
		}
		out = append(out, Finding{Kind: KindPeerDown, Node: m.Node,
			Message: fmt.Sprintf("membership: peer %s (%s) is down: its VIPs moved to the live nodes", m.Node, m.Addr)})
	}
	if selfFenced {
		out = append(out, Finding{Kind: KindFenced, Node: st.Node,
			Message: fmt.Sprintf("fenced: this node hears %d of %d peers and announces nothing", healthy, peers)})
	}
	for _, iface := range sortedKeys(st.Datapath.Attached) {
		if st.Datapath.Attached[iface] == "xdpgeneric" {
			out = append(out, Finding{Kind: KindGenericXDP, Node: st.Node,
				Message: fmt.Sprintf("datapath on %s runs in generic XDP mode, slower than driver XDP and tcx: use --attach-mode=auto", iface)})
		}
	}
	return out
}

// Annotate sets st.Findings and adds their messages to st.Warnings, once
// each (the agent may have reported some already).
func Annotate(st *Status, now time.Time) {
	st.Findings = Check(st, now)
	for _, f := range st.Findings {
		if !slices.Contains(st.Warnings, f.Message) {
			st.Warnings = append(st.Warnings, f.Message)
		}
	}
}

// Checker wraps the daemon's snapshot: it notices when the conflict
// counter moves (a snapshot has only totals), keeps the previous counters
// to show rates (see RateInfo), and annotates every snapshot with
// findings. The status socket and the metrics both use it, so they
// agree. Safe for concurrent use.
type Checker struct {
	snapshot func() Status
	now      func() time.Time

	mu         sync.Mutex
	conflicts  uint64
	conflictAt time.Time
	rates      rateTracker
}

// NewChecker returns a Checker over snapshot.
func NewChecker(snapshot func() Status) *Checker {
	return &Checker{snapshot: snapshot, now: time.Now}
}

// Snapshot returns an annotated snapshot.
func (c *Checker) Snapshot() Status {
	st := c.snapshot()
	now := c.now()
	c.mu.Lock()
	if n := st.Announce.Conflicts; n != c.conflicts {
		if n > c.conflicts {
			c.conflictAt = now
		}
		c.conflicts = n // a lower count: the announcer restarted
	}
	if !c.conflictAt.IsZero() && st.Announce.LastConflict == nil {
		t := c.conflictAt
		st.Announce.LastConflict = &t
	}
	c.rates.observe(&st, now)
	c.mu.Unlock()
	Annotate(&st, now)
	return st
}

// ForVIP narrows st to one VIP: its entry, its pool, and the findings
// about it, its pool or the whole node. It reports false when st has no
// such VIP.
func ForVIP(st *Status, vip string) bool {
	i := slices.IndexFunc(st.VIPs, func(v VIP) bool { return v.VIP == vip })
	if i < 0 {
		return false
	}
	v := st.VIPs[i]
	st.VIPs = []VIP{v}
	st.Pools = slices.DeleteFunc(st.Pools, func(p Pool) bool { return p.Name != v.Pool })
	var drop []string
	st.Findings = slices.DeleteFunc(st.Findings, func(f Finding) bool {
		other := (f.VIP != "" && f.VIP != vip) || (f.VIP == "" && f.Pool != "" && f.Pool != v.Pool)
		if other {
			drop = append(drop, f.Message)
		}
		return other
	})
	st.Warnings = slices.DeleteFunc(st.Warnings, func(w string) bool { return slices.Contains(drop, w) })
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
