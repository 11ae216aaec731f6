// SPDX-License-Identifier: Apache-2.0

package ipamcount

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/model"
)

func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("assigning a/b: %w", ipam.ErrPoolExhausted), ReasonPoolExhausted},
		{fmt.Errorf("assigning a/b: %w", ipam.ErrNoPool), ReasonNoPool},
		{fmt.Errorf("x: %w", ipam.ErrNotAllowed), ReasonNotAllowed},
		{fmt.Errorf("x: %w", ipam.ErrInUse), ReasonAddressInUse},
		{fmt.Errorf("x: %w", ipam.ErrInvalid), ReasonInvalidRequest},
		{errors.New("something else"), ReasonOther},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestCountersBoundedReasons(t *testing.T) {
	var c Counters
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c.Allocated()
			c.Refused(ReasonPoolExhausted)
			c.Refused("made-up") // an unknown reason must not add a series
		})
	}
	wg.Wait()
	s := c.Stats()
	want := map[string]uint64{}
	for _, r := range Reasons() {
		want[r] = 0
	}
	want[ReasonPoolExhausted], want[ReasonOther] = 8, 8
	if diff := cmp.Diff(Stats{Allocations: 8, Refusals: want}, s); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	var nilc *Counters
	nilc.Allocated()
	nilc.Refused(ReasonNoPool)
	if got := nilc.Stats(); got.Allocations != 0 || len(got.Refusals) != len(Reasons()) {
		t.Errorf("nil counters: %+v", got)
	}
}

func svc(name string) model.Service {
	return model.Service{Key: model.ServiceKey{Namespace: "default", Name: name},
		Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}}}
}

// TestChangeCounterStatic runs the real static allocation (ipam.Allocate)
// pass after pass, as the agent does, and checks that only changes count.
func TestChangeCounterStatic(t *testing.T) {
	pools := []model.Pool{{Name: "tiny", AutoAssign: true, Ranges: []model.AddrRange{{
		First: netip.MustParseAddr("10.20.1.1"), Last: netip.MustParseAddr("10.20.1.2")}}}}
	var c Counters
	cc := NewChangeCounter(&c)
	pass := func(svcs ...model.Service) {
		t.Helper()
		res, err := ipam.Allocate(pools, svcs)
		if err != nil {
			t.Fatal(err)
		}
		cc.Observe(res)
	}
	check := func(step string, allocs, exhausted, noPool uint64) {
		t.Helper()
		s := c.Stats()
		if s.Allocations != allocs || s.Refusals[ReasonPoolExhausted] != exhausted || s.Refusals[ReasonNoPool] != noPool {
			t.Errorf("%s: allocations %d, pool_exhausted %d, no_pool %d; want %d, %d, %d",
				step, s.Allocations, s.Refusals[ReasonPoolExhausted], s.Refusals[ReasonNoPool], allocs, exhausted, noPool)
		}
	}
	pass(svc("a"))
	check("first pass after start: the baseline", 0, 0, 0)
	pass(svc("a"), svc("b"))
	check("second Service", 1, 0, 0)
	pass(svc("a"), svc("b"))
	check("same input again (every reconcile recomputes)", 1, 0, 0)
	pass(svc("a"), svc("b"), svc("c"))
	check("third Service, pool full", 1, 1, 0)
	pass(svc("a"), svc("b"), svc("c"))
	check("refusal persists", 1, 1, 0)
	pass(svc("a"), svc("c"))
	check("b deleted: c gets its address", 2, 1, 0)
	pass(svc("b"), svc("c"))
	// c keeps .2 (the allocation only depends on the Services present,
	// and c still sorts after the one holding .1): only b counts.
	check("a deleted, b back with a's address", 3, 1, 0)
	d := svc("d")
	d.RequestedPool = "nonexistent"
	pass(svc("b"), svc("c"), d)
	check("d asks for a pool that does not exist", 3, 1, 1)
	pass(svc("b"), svc("c"))
	pass(svc("b"), svc("c"), d)
	check("d deleted and recreated: refused again", 3, 1, 2)
}
