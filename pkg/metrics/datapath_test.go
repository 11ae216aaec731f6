// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/status"
)

// fakeDatapath stands in for *datapath.Datapath (the real one is scraped
// in cmd/lbd's TestPrivilegedMetricsEndToEnd).
type fakeDatapath struct{ flowErr error }

func (fakeDatapath) MapFill() []datapath.MapFill {
	return []datapath.MapFill{
		{Map: "lb_services", Entries: 3, Capacity: 8192},
		{Map: "lb_backends", Entries: 4, Capacity: 65535},
		{Map: "lb_conntrack", Entries: -1, Capacity: 262144},
		{Map: "lb_revnat", Entries: -1, Capacity: 262144},
	}
}

func (f fakeDatapath) FlowStats() (uint64, uint64, error) { return 120, 7, f.flowErr }

func withDatapath(f fakeDatapath) Options {
	return Options{Datapath: func() DatapathReader { return f }}
}

// TestDatapathMetrics: map fill levels (conntrack entries from the
// snapshot's count, uncounted maps without an entries series) and the
// flow-event counters.
func TestDatapathMetrics(t *testing.T) {
	c := NewCollector(fixture, withDatapath(fakeDatapath{}))
	want := `
# HELP lbd_datapath_map_capacity Capacity of a datapath BPF map, as configured (--max-services, --conntrack-size).
# TYPE lbd_datapath_map_capacity gauge
lbd_datapath_map_capacity{map="lb_backends"} 65535
lbd_datapath_map_capacity{map="lb_conntrack"} 262144
lbd_datapath_map_capacity{map="lb_revnat"} 262144
lbd_datapath_map_capacity{map="lb_services"} 8192
# HELP lbd_datapath_map_entries Entries in a datapath BPF map (lb_services counts frontends and VIP markers).
# TYPE lbd_datapath_map_entries gauge
lbd_datapath_map_entries{map="lb_backends"} 4
lbd_datapath_map_entries{map="lb_conntrack"} 12
lbd_datapath_map_entries{map="lb_services"} 3
# HELP lbd_flow_events_lost_total Flow events the datapath dropped because the ring buffer was full.
# TYPE lbd_flow_events_lost_total counter
lbd_flow_events_lost_total 7
# HELP lbd_flow_events_total Flow events the datapath wrote to its ring buffer for lbd flows (only while a stream is open).
# TYPE lbd_flow_events_total counter
lbd_flow_events_total 120
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"lbd_datapath_map_capacity", "lbd_datapath_map_entries", "lbd_flow_events_total", "lbd_flow_events_lost_total"); err != nil {
		t.Error(err)
	}

	// A failed counter read drops those series only.
	c = NewCollector(fixture, withDatapath(fakeDatapath{flowErr: errors.New("boom")}))
	if n := testutil.CollectAndCount(c, "lbd_flow_events_total"); n != 0 {
		t.Errorf("lbd_flow_events_total series after a failed read: %d", n)
	}
	// No datapath loaded yet: no series, no panic.
	c = NewCollector(fixture, Options{Datapath: func() DatapathReader { return nil }})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if n := testutil.CollectAndCount(c, "lbd_datapath_map_capacity"); n != 0 {
		t.Errorf("map capacity series without a datapath: %d", n)
	}
}

// TestReconcileMetrics: the reconcile counters of the snapshot.
func TestReconcileMetrics(t *testing.T) {
	c := NewCollector(func() status.Status {
		st := fixture()
		st.Reconcile = status.ReconcileInfo{Runs: 42, SyncErrors: 3}
		return st
	}, Options{})
	want := `
# HELP lbd_reconciles_total Reconcile passes: a new State (or the periodic resync) applied to IPAM, the announcer and the datapath.
# TYPE lbd_reconciles_total counter
lbd_reconciles_total 42
# HELP lbd_sync_errors_total Reconcile passes in which applying the State failed (datapath map writes or ARP/NDP announcement); lbd_errors says why.
# TYPE lbd_sync_errors_total counter
lbd_sync_errors_total 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "lbd_reconciles_total", "lbd_sync_errors_total"); err != nil {
		t.Error(err)
	}
}
