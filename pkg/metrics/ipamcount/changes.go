// SPDX-License-Identifier: Apache-2.0

package ipamcount

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/model"
)

// ChangeCounter counts, from full recomputations (the static source runs
// ipam.Allocate over every Service at every reconcile), only what changed
// since the previous one, so that the counts mean what the IPAM
// controller's do: a Service counts as allocated when its addresses
// change to a non-empty set, and as refused when its error message
// changes. The first Observe only records the allocations as they are,
// the way a new IPAM leader restores the Services' addresses without
// counting them: a restart does not count every Service again. Safe for
// concurrent use.
type ChangeCounter struct {
	c *Counters

	mu      sync.Mutex
	started bool
	vips    map[model.ServiceKey][]netip.Addr
	refused map[model.ServiceKey]string
}

// NewChangeCounter counts into c (nil: counts nothing).
func NewChangeCounter(c *Counters) *ChangeCounter {
	return &ChangeCounter{c: c, vips: map[model.ServiceKey][]netip.Addr{}, refused: map[model.ServiceKey]string{}}
}

// Observe counts the changes from the previous results to res, which must
// hold every Service (one missing is forgotten: counted again if it
// returns).
func (t *ChangeCounter) Observe(res map[model.ServiceKey]ipam.Result) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	first := !t.started
	t.started = true
	for key, r := range res {
		if r.Err != nil {
			delete(t.vips, key)
			if msg := r.Err.Error(); t.refused[key] != msg {
				t.refused[key] = msg
				t.c.Refused(ReasonOf(r.Err))
			}
			continue
		}
		delete(t.refused, key)
		if len(r.VIPs) == 0 || sameAddrs(t.vips[key], r.VIPs) {
			continue
		}
		t.vips[key] = slices.Clone(r.VIPs)
		if !first {
			t.c.Allocated()
		}
	}
	for key := range t.vips {
		if _, ok := res[key]; !ok {
			delete(t.vips, key)
		}
	}
	for key := range t.refused {
		if _, ok := res[key]; !ok {
			delete(t.refused, key)
		}
	}
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}
