// SPDX-License-Identifier: Apache-2.0

// Package metrics exports lbd's state to Prometheus.
//
// The Collector holds no counters of its own: at every scrape it calls the
// agent's Snapshot, which sums the datapath's per-CPU BPF maps and reads the
// announcer's counters, and turns the result into constant metrics (plus,
// through Options.Datapath, the map capacities and flow-event counters the
// snapshot does not carry, and through Options.IPAM the process's
// allocation and refusal counts, see package ipamcount). Nothing
// is polled between scrapes, so a scrape always shows what the maps hold at
// that moment and an idle daemon costs nothing.
//
// Every metric has the lbd_ prefix, counters end in _total and values are in
// base units (bytes, packets). Label cardinality is bounded by configuration,
// never by traffic: vip is bounded by the pools' sizes, {vip, port, protocol}
// by the Services' ports, reason by the datapath's fixed reason enum (and by
// ipamcount's seven refusal reasons), pool by the IPPools. No metric is labelled by client address.
//
// Serve runs the HTTP endpoint: /metrics, /healthz (liveness: 200 while the
// process serves) and /readyz (readiness: 200 once the daemon has attached
// its datapath and reconciled a first State).
package metrics
