// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/status"
)

// DefaultTimeout bounds one snapshot. A scrape that would take longer (a
// wedged agent lock, a huge connection table) is answered with only the
// metrics that need no snapshot, and counted as a collection error, rather
// than piling up blocked scrapes.
const DefaultTimeout = 10 * time.Second

// Options configure a Collector.
type Options struct {
	// Version is reported by lbd_build_info.
	Version string
	// Timeout bounds one snapshot; zero means DefaultTimeout.
	Timeout time.Duration
	// Datapath, if set, is read at scrape time for what the snapshot does
	// not carry: map capacities and flow-event counters. It returns nil
	// while no datapath is loaded.
	Datapath func() DatapathReader
	// IPAM, if set, are the allocation and refusal counts of this
	// process (lbd_ipam_allocations_total, lbd_ipam_refusals_total).
	IPAM *ipamcount.Counters
}

// DatapathReader is the part of *datapath.Datapath the Collector reads.
type DatapathReader interface {
	MapFill() []datapath.MapFill
	FlowStats() (emitted, lost uint64, err error)
}

// Collector is a prometheus.Collector that calls a snapshot function at
// scrape time. It is safe for concurrent use (concurrent scrapes each take
// their own snapshot).
type Collector struct {
	snapshot func() status.Status
	datapath func() DatapathReader
	ipam     *ipamcount.Counters
	version  string
	timeout  time.Duration

	mu       sync.Mutex
	inflight *call // the running snapshot, nil when none

	collectionErrors *prometheus.CounterVec

	buildInfo          *prometheus.Desc
	poolAddresses      *prometheus.Desc
	poolAddressesUsed  *prometheus.Desc
	vipsOwned          *prometheus.Desc
	vipOwnerInfo       *prometheus.Desc
	backendsReady      *prometheus.Desc
	backends           *prometheus.Desc
	answered           *prometheus.Desc
	gratuitous         *prometheus.Desc
	conflicts          *prometheus.Desc
	ownerChanges       *prometheus.Desc
	packets            *prometheus.Desc
	bytes              *prometheus.Desc
	newFlows           *prometheus.Desc
	drops              *prometheus.Desc
	reasonPackets      *prometheus.Desc
	conntrackEntries   *prometheus.Desc
	attachedInfo       *prometheus.Desc
	errorsGauge        *prometheus.Desc
	warningsGauge      *prometheus.Desc
	membersGauge       *prometheus.Desc
	lastScrapeDuration *prometheus.Desc
	mapEntries         *prometheus.Desc
	reconciles         *prometheus.Desc
	syncErrors         *prometheus.Desc
	mapCapacity        *prometheus.Desc
	flowEvents         *prometheus.Desc
	flowEventsLost     *prometheus.Desc
	ipamAllocations    *prometheus.Desc
	ipamRefusals       *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// frontendLabels label every per-frontend metric: one series per
// {VIP, port, protocol} that a Service declares.
var frontendLabels = []string{"vip", "port", "protocol"}

// NewCollector returns a Collector that calls snapshot at every scrape.
// snapshot must not be nil.
func NewCollector(snapshot func() status.Status, opts Options) *Collector {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("lbd_"+name, help, labels, nil)
	}
	return &Collector{
		snapshot: snapshot,
		datapath: opts.Datapath,
		ipam:     opts.IPAM,
		version:  opts.Version,
		timeout:  opts.Timeout,
		collectionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lbd_collection_errors_total",
			Help: "Scrapes that could not read the daemon's state, by reason (timeout, panic).",
		}, []string{"reason"}),
		buildInfo:         d("build_info", "Always 1; labels carry the lbd version and the Go version it was built with.", "version", "goversion"),
		poolAddresses:     d("pool_addresses", "Addresses in the pool.", "pool"),
		poolAddressesUsed: d("pool_addresses_used", "Addresses of the pool allocated to Services.", "pool"),
		vipsOwned:         d("vips_owned", "VIPs this node answers ARP/NDP for, and so carries the traffic of."),
		vipOwnerInfo:      d("vip_owner_info", "Always 1: the node every lbd instance elects to own the VIP (empty owner: no eligible node).", "vip", "owner"),
		backendsReady:     d("backends_ready", "Ready, non-terminating backends of a frontend.", frontendLabels...),
		backends:          d("backends", "Backends of a frontend, ready or not.", frontendLabels...),
		answered:          d("arp_ndp_answered_total", "ARP requests and NDP solicitations this node answered for owned VIPs."),
		gratuitous:        d("gratuitous_sent_total", "Gratuitous ARPs and unsolicited neighbour advertisements sent on VIP takeover."),
		conflicts:         d("announce_conflicts_total", "ARP/NDP answers for one of our VIPs seen from another MAC address."),
		ownerChanges:      d("announce_owner_changes_total", "VIPs whose elected owner changed, as this node saw it (not counted while fenced)."),
		packets:           d("datapath_packets_total", "Packets the datapath handled for the frontend on this node.", frontendLabels...),
		bytes:             d("datapath_bytes_total", "Bytes the datapath handled for the frontend on this node.", frontendLabels...),
		newFlows:          d("datapath_new_flows_total", "Connections the datapath assigned a backend for the frontend on this node.", frontendLabels...),
		drops:             d("datapath_drops_total", "Packets for the frontend the datapath dropped on this node.", frontendLabels...),
		reasonPackets:     d("datapath_reason_packets_total", "Packets by datapath verdict reason (drops and passes alike).", "reason"),
		conntrackEntries:  d("conntrack_entries", "Flows in the datapath's connection table."),
		attachedInfo:      d("datapath_attached_info", "Always 1 per interface the datapath is attached to, with the attach mode.", "interface", "mode"),
		errorsGauge:       d("errors", "Errors the daemon reports now (see lbd status)."),
		warningsGauge:     d("warnings", "Warnings the daemon reports now (see lbd status)."),
		membersGauge:      d("members", "Peer lbd instances known to this node, by health.", "healthy"),
		lastScrapeDuration: d("scrape_duration_seconds",
			"Time the snapshot behind this scrape took (reading the BPF maps)."),
		reconciles:     d("reconciles_total", "Reconcile passes: a new State (or the periodic resync) applied to IPAM, the announcer and the datapath."),
		syncErrors:     d("sync_errors_total", "Reconcile passes in which applying the State failed (datapath map writes or ARP/NDP announcement); lbd_errors says why."),
		mapEntries:     d("datapath_map_entries", "Entries in a datapath BPF map (lb_services counts frontends and VIP markers).", "map"),
		mapCapacity:    d("datapath_map_capacity", "Capacity of a datapath BPF map, as configured (--max-services, --conntrack-size).", "map"),
		flowEvents:     d("flow_events_total", "Flow events the datapath wrote to its ring buffer for lbd flows (only while a stream is open)."),
		flowEventsLost: d("flow_events_lost_total", "Flow events the datapath dropped because the ring buffer was full."),
		ipamAllocations: d("ipam_allocations_total",
			"Services this process gave new addresses (Kubernetes mode: only while it leads the IPAM controller; static mode: every node)."),
		ipamRefusals: d("ipam_refusals_total",
			"Services this process left without an address, once per distinct cause, by reason (pool_exhausted, no_pool, not_allowed, address_in_use, invalid_request, invalid_service, other).", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.collectionErrors.Describe(ch)
	for _, d := range []*prometheus.Desc{
		c.buildInfo, c.poolAddresses, c.poolAddressesUsed, c.vipsOwned, c.vipOwnerInfo,
		c.backendsReady, c.backends, c.answered, c.gratuitous, c.conflicts, c.ownerChanges,
		c.packets, c.bytes, c.newFlows, c.drops, c.reasonPackets, c.conntrackEntries,
		c.attachedInfo, c.errorsGauge, c.warningsGauge, c.membersGauge, c.lastScrapeDuration,
		c.mapEntries, c.mapCapacity, c.flowEvents, c.flowEventsLost, c.reconciles, c.syncErrors,
		c.ipamAllocations, c.ipamRefusals,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it takes one snapshot and emits
// every metric from it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, c.version, runtime.Version())
	c.emitIPAM(ch)
	start := time.Now()
	st, err := c.take()
	if err == nil {
		ch <- prometheus.MustNewConstMetric(c.lastScrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
		c.emit(ch, st)
		c.emitDatapath(ch, st)
	}
	c.collectionErrors.Collect(ch)
}

// collectErr values are the collection error reasons.
type collectErr string

func (e collectErr) Error() string { return string(e) }

const (
	errTimeout collectErr = "timeout"
	errPanic   collectErr = "panic"
)

// call is one snapshot in flight, shared by the scrapes that arrive while
// it runs.
type call struct {
	done chan struct{}
	st   status.Status
	err  error
}

// take returns a snapshot, waiting at most the timeout. Scrapes that
// arrive while a snapshot runs share it (two Prometheus replicas scraping
// at once cost one walk of the maps), and a snapshot that outlives its
// scrape's deadline is still the one later scrapes wait for, so a wedged
// daemon costs one goroutine, not one per scrape. A snapshot that panics
// (a bug) must not take the daemon down through its metrics endpoint.
// Failures are counted by reason.
func (c *Collector) take() (status.Status, error) {
	c.mu.Lock()
	cl := c.inflight
	if cl == nil {
		cl = &call{done: make(chan struct{})}
		c.inflight = cl
		go c.run(cl)
	}
	c.mu.Unlock()

	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case <-cl.done:
		if cl.err != nil {
			c.collectionErrors.WithLabelValues(string(errPanic)).Inc()
		}
		return cl.st, cl.err
	case <-timer.C:
		c.collectionErrors.WithLabelValues(string(errTimeout)).Inc()
		return status.Status{}, errTimeout
	}
}

func (c *Collector) run(cl *call) {
	defer func() {
		if r := recover(); r != nil {
			cl.err = fmt.Errorf("%w: %v", errPanic, r)
		}
		c.mu.Lock()
		c.inflight = nil
		c.mu.Unlock()
		close(cl.done)
	}()
	cl.st = c.snapshot()
}

type frontend struct {
	vip, port, protocol string
}

func (c *Collector) emit(ch chan<- prometheus.Metric, st status.Status) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	// A registry rejects a scrape with two series of one label set, so
	// anything that could repeat (a pool listed twice, a port declared by
	// two Services sharing a VIP) is merged first.
	type poolUse struct{ total, used uint64 }
	pools := map[string]poolUse{}
	for _, p := range st.Pools {
		u := pools[p.Name]
		pools[p.Name] = poolUse{u.total + p.Total, u.used + p.Used}
	}
	for _, name := range sortedKeys(pools) {
		gauge(c.poolAddresses, float64(pools[name].total), name)
		gauge(c.poolAddressesUsed, float64(pools[name].used), name)
	}

	type feStats struct {
		counters        status.Counters
		backends, ready int
	}
	fes := map[frontend]*feStats{}
	owners := map[[2]string]bool{}
	owned := 0
	for _, v := range st.VIPs {
		if v.Owned {
			owned++
		}
		owners[[2]string{v.VIP, v.Owner}] = true
		for _, p := range v.Ports {
			k := frontend{v.VIP, strconv.Itoa(int(p.Port)), p.Protocol}
			s := fes[k]
			if s == nil {
				s = &feStats{}
				fes[k] = s
			}
			// Two Services declaring the same {VIP, port, protocol} share
			// one BPF frontend, so its counters are the same numbers
			// listed twice: take them once.
			s.counters = p.Counters
			for _, b := range p.Backends {
				s.backends++
				if b.Ready && !b.Terminating {
					s.ready++
				}
			}
		}
	}
	gauge(c.vipsOwned, float64(owned))
	for _, k := range sortedKeysFunc(owners, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		gauge(c.vipOwnerInfo, 1, k[0], k[1])
	}
	for _, k := range sortedKeysFunc(fes, func(a, b frontend) int {
		return cmp.Or(cmp.Compare(a.vip, b.vip), cmp.Compare(a.port, b.port), cmp.Compare(a.protocol, b.protocol))
	}) {
		s := fes[k]
		l := []string{k.vip, k.port, k.protocol}
		counter(c.packets, s.counters.Packets, l...)
		counter(c.bytes, s.counters.Bytes, l...)
		counter(c.newFlows, s.counters.NewFlows, l...)
		counter(c.drops, s.counters.Drops, l...)
		gauge(c.backends, float64(s.backends), l...)
		gauge(c.backendsReady, float64(s.ready), l...)
	}

	counter(c.answered, st.Announce.Answered)
	counter(c.gratuitous, st.Announce.Gratuitous)
	counter(c.conflicts, st.Announce.Conflicts)
	counter(c.ownerChanges, st.Announce.OwnerChanges)

	for _, r := range sortedKeys(st.Datapath.Reasons) {
		counter(c.reasonPackets, st.Datapath.Reasons[r], r)
	}
	gauge(c.conntrackEntries, float64(st.Datapath.Conntrack))
	for _, i := range sortedKeys(st.Datapath.Attached) {
		gauge(c.attachedInfo, 1, i, st.Datapath.Attached[i])
	}

	counter(c.reconciles, st.Reconcile.Runs)
	counter(c.syncErrors, st.Reconcile.SyncErrors)
	gauge(c.errorsGauge, float64(len(st.Errors)))
	gauge(c.warningsGauge, float64(len(st.Warnings)))
	members := map[string]int{"true": 0, "false": 0}
	for _, m := range st.Members {
		members[strconv.FormatBool(m.Healthy)]++
	}
	for _, h := range sortedKeys(members) {
		gauge(c.membersGauge, float64(members[h]), h)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	return sortedKeysFunc(m, cmp.Compare[string])
}

func sortedKeysFunc[K comparable, V any](m map[K]V, less func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, less)
	return keys
}

// emitDatapath emits what the Datapath reader adds to the snapshot: map
// fill levels (lb_conntrack's entries from the snapshot's count, the walk
// it already did) and the flow-event counters. A failed read costs these
// series, not the scrape.
func (c *Collector) emitDatapath(ch chan<- prometheus.Metric, st status.Status) {
	if c.datapath == nil {
		return
	}
	dp := c.datapath()
	if dp == nil {
		return
	}
	for _, m := range dp.MapFill() {
		entries := m.Entries
		if m.Map == "lb_conntrack" {
			entries = int64(st.Datapath.Conntrack)
		}
		if entries >= 0 {
			ch <- prometheus.MustNewConstMetric(c.mapEntries, prometheus.GaugeValue, float64(entries), m.Map)
		}
		ch <- prometheus.MustNewConstMetric(c.mapCapacity, prometheus.GaugeValue, float64(m.Capacity), m.Map)
	}
	if emitted, lost, err := dp.FlowStats(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.flowEvents, prometheus.CounterValue, float64(emitted))
		ch <- prometheus.MustNewConstMetric(c.flowEventsLost, prometheus.CounterValue, float64(lost))
	}
}

// emitIPAM emits the allocation counters, which need no snapshot (they
// are the controller's in Kubernetes mode, not the agent's). Every reason
// is emitted, zero or not.
func (c *Collector) emitIPAM(ch chan<- prometheus.Metric) {
	if c.ipam == nil {
		return
	}
	s := c.ipam.Stats()
	ch <- prometheus.MustNewConstMetric(c.ipamAllocations, prometheus.CounterValue, float64(s.Allocations))
	for _, r := range sortedKeys(s.Refusals) {
		ch <- prometheus.MustNewConstMetric(c.ipamRefusals, prometheus.CounterValue, float64(s.Refusals[r]), r)
	}
}
