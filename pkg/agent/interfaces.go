// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lbd-project/lbd/pkg/model"
)

// attachRetry is how often the agent checks the interfaces the datapath
// must be attached to: one that did not exist yet is attached within this
// long of appearing, one deleted and created again is re-attached.
const attachRetry = 2 * time.Second

// ifaceSet is the datapath's part of the per-interface plans: which
// interfaces carry lbd's programs. Run attaches --interface before
// anything else; every other interface follows the Announcements.
type ifaceSet struct {
	mu   sync.Mutex // serialises SetAttached calls (reconcile, retry)
	want []string   // nil until the first State
	// failed maps the interfaces of want that are not attached to why;
	// written under both mu and Agent.mu, read under either.
	failed map[string]string
	// appeared signals the reconcile loop that an interface that could
	// not be attached now is: its ARP/NDP answers, held back until now
	// (holdUnattached), can start (see Agent.loop).
	appeared chan struct{}
}

// attachInterfaces returns the interfaces node self's datapath must be
// attached to under st, sorted: def (the daemon's --interface, where
// Interfaces without Announcements answers) and every interface named by
// an Announcement that selects self. It goes by the Announcements, not by
// this node's current ownership, so that an election or failover moving a
// VIP here never waits for an attach and never detaches anything.
func attachInterfaces(st *model.State, self, def string) []string {
	out := []string{def}
	n, ok := st.Node(self)
	if ok {
		for i := range st.Announcements {
			an := &st.Announcements[i]
			if an.NodeSelector == nil || an.NodeSelector.Matches(n.Labels) {
				out = append(out, an.Interfaces...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// syncAttached attaches the datapath to the interfaces st announces on and
// detaches it from those it no longer does (only lbd's own links). An
// interface that cannot be attached (most often: it does not exist yet)
// is a status warning and retried by attachLoop; it never stops the
// reconcile. st nil re-applies the last set.
func (a *Agent) syncAttached(st *model.State) {
	s := &a.ifaces
	s.mu.Lock()
	defer s.mu.Unlock()
	if st != nil {
		s.want = attachInterfaces(st, a.cfg.NodeName, a.cfg.Interface)
	}
	if s.want == nil || a.dp == nil {
		return
	}
	failed := map[string]string{}
	for iface, err := range a.dp.SetAttached(s.want, a.cfg.AttachMode) {
		failed[iface] = err.Error()
		if s.failed[iface] != err.Error() { // once per distinct problem, not per retry
			a.log.Warn("attach datapath", "interface", iface, "err", err)
		}
	}
	recovered := false
	for iface := range s.failed {
		if _, still := failed[iface]; !still {
			a.log.Info("datapath attached", "interface", iface, "mode", a.dp.Attached()[iface])
			recovered = true
		}
	}
	a.mu.Lock()
	s.failed = failed
	a.mu.Unlock()
	// Only after failed is updated: the announce the signal starts must
	// not hold the interface back again (holdUnattached).
	if recovered {
		select {
		case s.appeared <- struct{}{}:
		default: // one pending signal is enough
		}
	}
}

// holdUnattached empties the lists of plan on interfaces the datapath could
// not be attached to: answering ARP/NDP there would draw VIP traffic that
// nothing balances. Once attached, syncAttached signals the loop, which
// announces there (Agent.loop).
func (a *Agent) holdUnattached(plan map[string][]netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for iface := range plan {
		if _, failed := a.ifaces.failed[iface]; failed {
			plan[iface] = nil
		}
	}
}

// attachLoop re-applies the interface set every attachRetry until ctx
// ends.
func (a *Agent) attachLoop(ctx context.Context) error {
	t := time.NewTicker(attachRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.syncAttached(nil)
		}
	}
}

// attachWarnings are the status warnings of interfaces the datapath
// should be attached to but is not.
func (a *Agent) attachWarnings() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, iface := range slices.Sorted(maps.Keys(a.ifaces.failed)) {
		out = append(out, fmt.Sprintf("datapath not attached to announced interface %s, retrying every %s: %s",
			iface, attachRetry, a.ifaces.failed[iface]))
	}
	return out
}
