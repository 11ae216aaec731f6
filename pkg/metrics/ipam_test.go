// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/status"
)

// TestCollectorIPAM: the allocation counters are scraped as counters, with
// every refusal reason present (zero or not), even when the snapshot fails.
func TestCollectorIPAM(t *testing.T) {
	var counts ipamcount.Counters
	counts.Allocated()
	counts.Allocated()
	counts.Refused(ipamcount.ReasonNoPool)
	for name, snap := range map[string]func() status.Status{
		"snapshot":        fixture,
		"failed snapshot": func() status.Status { panic("boom") },
	} {
		reg := prometheus.NewRegistry()
		reg.MustRegister(NewCollector(snap, Options{IPAM: &counts}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			switch mf.GetName() {
			case "lbd_ipam_allocations_total":
				got["allocations"] = mf.GetMetric()[0].GetCounter().GetValue()
			case "lbd_ipam_refusals_total":
				for _, m := range mf.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		want := map[string]float64{"allocations": 2}
		for _, r := range ipamcount.Reasons() {
			want[r] = 0
		}
		want[ipamcount.ReasonNoPool] = 1
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: IPAM series (-want +got):\n%s", name, diff)
		}
	}

	// Without counters (a collector for another process) nothing is
	// exported rather than misleading zeros.
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(fixture, Options{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "lbd_ipam_allocations_total" || mf.GetName() == "lbd_ipam_refusals_total" {
			t.Errorf("%s exported without counters", mf.GetName())
		}
	}
}
