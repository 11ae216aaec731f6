// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/model"
)

// TestStaticIPAMCounts: static mode recomputes every allocation at every
// reconcile, and counts only the changes, as the IPAM controller does.
func TestStaticIPAMCounts(t *testing.T) {
	var c ipamcount.Counters
	a, err := New(Config{NodeName: "node1", Interface: "eth0", StaticIPAM: true, IPAM: &c}, fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	st := testState()
	web := st.Services[0]
	st.Services = st.Services[1:]
	// The first reconcile after start is the baseline, not counted.
	if _, errs := a.allocate(st); len(errs) > 0 {
		t.Fatal(errs)
	}
	st.Services = append(st.Services, web)
	for range 3 {
		if _, errs := a.allocate(st); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	if s := c.Stats(); s.Allocations != 1 {
		t.Errorf("one Service added, then 3 reconciles: %d allocations, want 1", s.Allocations)
	}
	// Two addresses for three Services: the one sorting last is refused.
	st.Pools[0].Ranges[0].Last = netip.MustParseAddr("10.20.1.2")
	st.Services = append(st.Services, model.Service{Key: model.ServiceKey{Namespace: "default", Name: "zzz"},
		Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}}})
	for range 2 {
		if _, errs := a.allocate(st); len(errs) != 1 {
			t.Fatalf("want one refusal, got %v", errs)
		}
	}
	if s := c.Stats(); s.Allocations != 1 || s.Refusals[ipamcount.ReasonPoolExhausted] != 1 {
		t.Errorf("pool full, twice: %+v, want 1 allocation and 1 pool_exhausted refusal", s)
	}
}
