// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/lbd-project/lbd/pkg/status"
)

// fixture is a node that owns 10.20.1.1 (two Services sharing it, one port
// each, plus a second Service repeating port 80) and sees 10.20.1.128
// owned by node2.
func fixture() status.Status {
	return status.Status{
		Node: "node1", Version: "v1.2.3", Source: "static:/etc/lbd/cluster.yaml",
		Pools: []status.Pool{
			{Name: "internal", Ranges: []string{"10.20.1.1-10.20.1.127"}, Total: 127, Used: 1},
			{Name: "external", Ranges: []string{"10.20.1.128-10.20.1.254"}, Total: 127, Used: 1},
		},
		VIPs: []status.VIP{
			{
				VIP: "10.20.1.1", Pool: "internal", Owner: "node1", Owned: true,
				Ports: []status.Port{
					{
						Port: 80, Protocol: "TCP", Service: "default/web",
						Backends: []status.Backend{
							{Addr: "10.241.1.2:8080", Ready: true},
							{Addr: "10.241.2.2:8080", Ready: true, Terminating: true},
							{Addr: "10.241.3.2:8080"},
						},
						Counters: status.Counters{Packets: 1000, Bytes: 64000, NewFlows: 10, Drops: 2},
					},
					{
						Port: 53, Protocol: "UDP", Service: "default/dns",
						Backends: []status.Backend{{Addr: "10.241.1.3:53", Ready: true}},
						Counters: status.Counters{Packets: 7, Bytes: 700, NewFlows: 7},
					},
				},
			},
			{
				VIP: "10.20.1.128", Pool: "external", Owner: "node2",
				Ports: []status.Port{{Port: 443, Protocol: "TCP", Service: "web/public"}},
			},
		},
		Datapath: status.Datapath{
			Attached:  map[string]string{"eth0": "xdp"},
			Reasons:   map[string]uint64{"fwd": 990, "drop_no_port": 3, "drop_fragment": 0},
			Conntrack: 12,
		},
		Announce: status.AnnounceInfo{Interfaces: []string{"eth0"}, Answered: 5, Gratuitous: 3, Conflicts: 1},
		Members:  []status.Member{{Node: "node2", Healthy: true}, {Node: "node3", Healthy: false}},
		Errors:   []string{"pool external: something"},
		Warnings: []string{"VIP 10.20.1.128 port 443/TCP (web/public) has no ready backend", "another"},
	}
}

const wantFixture = `
# HELP lbd_announce_conflicts_total ARP/NDP answers for one of our VIPs seen from another MAC address.
# TYPE lbd_announce_conflicts_total counter
lbd_announce_conflicts_total 1
# HELP lbd_arp_ndp_answered_total ARP requests and NDP solicitations this node answered for owned VIPs.
# TYPE lbd_arp_ndp_answered_total counter
lbd_arp_ndp_answered_total 5
# HELP lbd_backends Backends of a frontend, ready or not.
# TYPE lbd_backends gauge
lbd_backends{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_backends{port="53",protocol="UDP",vip="10.20.1.1"} 1
lbd_backends{port="80",protocol="TCP",vip="10.20.1.1"} 3
# HELP lbd_backends_ready Ready, non-terminating backends of a frontend.
# TYPE lbd_backends_ready gauge
lbd_backends_ready{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_backends_ready{port="53",protocol="UDP",vip="10.20.1.1"} 1
lbd_backends_ready{port="80",protocol="TCP",vip="10.20.1.1"} 1
# HELP lbd_conntrack_entries Flows in the datapath's connection table.
# TYPE lbd_conntrack_entries gauge
lbd_conntrack_entries 12
# HELP lbd_datapath_attached_info Always 1 per interface the datapath is attached to, with the attach mode.
# TYPE lbd_datapath_attached_info gauge
lbd_datapath_attached_info{interface="eth0",mode="xdp"} 1
# HELP lbd_datapath_bytes_total Bytes the datapath handled for the frontend on this node.
# TYPE lbd_datapath_bytes_total counter
lbd_datapath_bytes_total{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_datapath_bytes_total{port="53",protocol="UDP",vip="10.20.1.1"} 700
lbd_datapath_bytes_total{port="80",protocol="TCP",vip="10.20.1.1"} 64000
# HELP lbd_datapath_drops_total Packets for the frontend the datapath dropped on this node.
# TYPE lbd_datapath_drops_total counter
lbd_datapath_drops_total{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_datapath_drops_total{port="53",protocol="UDP",vip="10.20.1.1"} 0
lbd_datapath_drops_total{port="80",protocol="TCP",vip="10.20.1.1"} 2
# HELP lbd_datapath_new_flows_total Connections the datapath assigned a backend for the frontend on this node.
# TYPE lbd_datapath_new_flows_total counter
lbd_datapath_new_flows_total{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_datapath_new_flows_total{port="53",protocol="UDP",vip="10.20.1.1"} 7
lbd_datapath_new_flows_total{port="80",protocol="TCP",vip="10.20.1.1"} 10
# HELP lbd_datapath_packets_total Packets the datapath handled for the frontend on this node.
# TYPE lbd_datapath_packets_total counter
lbd_datapath_packets_total{port="443",protocol="TCP",vip="10.20.1.128"} 0
lbd_datapath_packets_total{port="53",protocol="UDP",vip="10.20.1.1"} 7
lbd_datapath_packets_total{port="80",protocol="TCP",vip="10.20.1.1"} 1000
# HELP lbd_datapath_reason_packets_total Packets by datapath verdict reason (drops and passes alike).
# TYPE lbd_datapath_reason_packets_total counter
lbd_datapath_reason_packets_total{reason="fwd"} 990
lbd_datapath_reason_packets_total{reason="drop_fragment"} 0
lbd_datapath_reason_packets_total{reason="drop_no_port"} 3
# HELP lbd_errors Errors the daemon reports now (see lbd status).
# TYPE lbd_errors gauge
lbd_errors 1
# HELP lbd_gratuitous_sent_total Gratuitous ARPs and unsolicited neighbour advertisements sent on VIP takeover.
# TYPE lbd_gratuitous_sent_total counter
lbd_gratuitous_sent_total 3
# HELP lbd_members Peer lbd instances known to this node, by health.
# TYPE lbd_members gauge
lbd_members{healthy="false"} 1
lbd_members{healthy="true"} 1
# HELP lbd_pool_addresses Addresses in the pool.
# TYPE lbd_pool_addresses gauge
lbd_pool_addresses{pool="external"} 127
lbd_pool_addresses{pool="internal"} 127
# HELP lbd_pool_addresses_used Addresses of the pool allocated to Services.
# TYPE lbd_pool_addresses_used gauge
lbd_pool_addresses_used{pool="external"} 1
lbd_pool_addresses_used{pool="internal"} 1
# HELP lbd_vip_owner_info Always 1: the node every lbd instance elects to own the VIP (empty owner: no eligible node).
# TYPE lbd_vip_owner_info gauge
lbd_vip_owner_info{owner="node1",vip="10.20.1.1"} 1
lbd_vip_owner_info{owner="node2",vip="10.20.1.128"} 1
# HELP lbd_vips_owned VIPs this node answers ARP/NDP for, and so carries the traffic of.
# TYPE lbd_vips_owned gauge
lbd_vips_owned 1
# HELP lbd_warnings Warnings the daemon reports now (see lbd status).
# TYPE lbd_warnings gauge
lbd_warnings 2
`

// snapshotMetrics are the names that come from a snapshot, compared in
// full; build_info and scrape_duration depend on the runtime and the clock
// and are checked separately.
var snapshotMetrics = []string{
	"lbd_announce_conflicts_total", "lbd_arp_ndp_answered_total", "lbd_backends", "lbd_backends_ready",
	"lbd_conntrack_entries", "lbd_datapath_attached_info", "lbd_datapath_bytes_total", "lbd_datapath_drops_total",
	"lbd_datapath_new_flows_total", "lbd_datapath_packets_total", "lbd_datapath_reason_packets_total",
	"lbd_errors", "lbd_gratuitous_sent_total", "lbd_members", "lbd_pool_addresses", "lbd_pool_addresses_used",
	"lbd_vip_owner_info", "lbd_vips_owned", "lbd_warnings",
}

func TestCollectorFixture(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := NewCollector(fixture, Options{Version: "v1.2.3"})
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantFixture), snapshotMetrics...); err != nil {
		t.Error(err)
	}
	build := `
# HELP lbd_build_info Always 1; labels carry the lbd version and the Go version it was built with.
# TYPE lbd_build_info gauge
lbd_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(build), "lbd_build_info"); err != nil {
		t.Error(err)
	}
	// A successful scrape counts no collection error and reports its
	// snapshot's duration.
	if n, err := testutil.GatherAndCount(reg, "lbd_collection_errors_total"); err != nil || n != 0 {
		t.Errorf("lbd_collection_errors_total series = %d, %v; want 0 (no error yet)", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "lbd_scrape_duration_seconds"); err != nil || n != 1 {
		t.Errorf("lbd_scrape_duration_seconds series = %d, %v; want 1", n, err)
	}
}

// TestCollectorLint runs promlint, the linter Prometheus ships, over a
// scrape: names, suffixes, units and help strings.
func TestCollectorLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(NewCollector(fixture, Options{})); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestCollectorScrapeTime proves that values are read at scrape time: the
// snapshot function runs once per scrape and its new values show.
func TestCollectorScrapeTime(t *testing.T) {
	var calls atomic.Int64
	snap := func() status.Status {
		n := calls.Add(1)
		st := fixture()
		st.Announce.Answered = uint64(100 * n)
		st.Datapath.Conntrack = int(n)
		return st
	}
	c := NewCollector(snap, Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	for want := int64(1); want <= 3; want++ {
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP lbd_arp_ndp_answered_total ARP requests and NDP solicitations this node answered for owned VIPs.
# TYPE lbd_arp_ndp_answered_total counter
lbd_arp_ndp_answered_total `+strconv.FormatInt(100*want, 10)+`
`), "lbd_arp_ndp_answered_total"); err != nil {
			t.Errorf("scrape %d: %v", want, err)
		}
		if got := calls.Load(); got != want {
			t.Errorf("after scrape %d: snapshot called %d times", want, got)
		}
	}
}

// TestCollectorDuplicates: two Services on one VIP declaring the same port
// share one BPF frontend; the pool list could repeat a name. The scrape must
// stay valid (a registry fails on duplicate series) and not double-count.
func TestCollectorDuplicates(t *testing.T) {
	snap := func() status.Status {
		c := status.Counters{Packets: 10, Bytes: 1000, NewFlows: 1}
		return status.Status{
			Source: "static",
			Pools:  []status.Pool{{Name: "p", Total: 4, Used: 1}, {Name: "p", Total: 4, Used: 2}},
			VIPs: []status.VIP{{
				VIP: "10.20.1.5", Owner: "node1", Owned: true,
				Ports: []status.Port{
					{Port: 80, Protocol: "TCP", Service: "a/x", Counters: c, Backends: []status.Backend{{Addr: "10.241.1.2:80", Ready: true}}},
					{Port: 80, Protocol: "TCP", Service: "a/y", Counters: c, Backends: []status.Backend{{Addr: "10.241.1.3:80", Ready: true}}},
				},
			}},
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(snap, Options{}))
	want := `
# HELP lbd_datapath_packets_total Packets the datapath handled for the frontend on this node.
# TYPE lbd_datapath_packets_total counter
lbd_datapath_packets_total{port="80",protocol="TCP",vip="10.20.1.5"} 10
# HELP lbd_backends_ready Ready, non-terminating backends of a frontend.
# TYPE lbd_backends_ready gauge
lbd_backends_ready{port="80",protocol="TCP",vip="10.20.1.5"} 2
# HELP lbd_pool_addresses Addresses in the pool.
# TYPE lbd_pool_addresses gauge
lbd_pool_addresses{pool="p"} 8
# HELP lbd_pool_addresses_used Addresses of the pool allocated to Services.
# TYPE lbd_pool_addresses_used gauge
lbd_pool_addresses_used{pool="p"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"lbd_datapath_packets_total", "lbd_backends_ready", "lbd_pool_addresses", "lbd_pool_addresses_used"); err != nil {
		t.Error(err)
	}
}

// TestCollectorFailures: a snapshot that blocks past the timeout or panics
// yields a scrape with build_info and the error counter only, and the
// daemon keeps running.
func TestCollectorFailures(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := []struct {
		name   string
		snap   func() status.Status
		reason string
	}{
		{"timeout", func() status.Status { <-release; return fixture() }, "timeout"},
		{"panic", func() status.Status { panic("boom") }, "panic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCollector(tt.snap, Options{Timeout: 50 * time.Millisecond})
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(c)
			for range 2 {
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, mf := range mfs {
					names = append(names, mf.GetName())
				}
				if diff := cmp.Diff([]string{"lbd_build_info", "lbd_collection_errors_total"}, names); diff != "" {
					t.Errorf("metric families (-want +got):\n%s", diff)
				}
			}
			if got := testutil.ToFloat64(c.collectionErrors.WithLabelValues(tt.reason)); got != 2 {
				t.Errorf("lbd_collection_errors_total{reason=%q} = %v, want 2", tt.reason, got)
			}
		})
	}
}

// TestCollectorSharesSnapshot: scrapes that overlap share one snapshot,
// and a wedged snapshot is not started again by every later scrape.
func TestCollectorSharesSnapshot(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	snap := func() status.Status {
		calls.Add(1)
		<-release
		return fixture()
	}
	c := NewCollector(snap, Options{Timeout: 5 * time.Second})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)

	// Three concurrent scrapes while the snapshot blocks.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := testutil.GatherAndCount(reg, "lbd_vips_owned")
			errs <- err
		}()
	}
	// Let all three reach the wait, then release the one snapshot.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("3 overlapping scrapes took %d snapshots, want 1", got)
	}

	// A wedged snapshot: scrapes time out, and none starts another.
	wedge := make(chan struct{})
	t.Cleanup(func() { close(wedge) })
	calls.Store(0)
	c2 := NewCollector(func() status.Status { calls.Add(1); <-wedge; return fixture() }, Options{Timeout: 20 * time.Millisecond})
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(c2)
	for range 3 {
		if _, err := reg2.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("3 scrapes of a wedged daemon started %d snapshots, want 1", got)
	}
	if got := testutil.ToFloat64(c2.collectionErrors.WithLabelValues("timeout")); got != 3 {
		t.Errorf("timeouts counted %v, want 3", got)
	}
}
