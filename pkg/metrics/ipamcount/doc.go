// SPDX-License-Identifier: Apache-2.0

// Package ipamcount counts IPAM decisions for lbd_ipam_allocations_total
// and lbd_ipam_refusals_total{reason}.
//
// Both allocation modes count with it, with one meaning: an allocation is
// a Service given addresses it did not have (a new Service, or one moved
// to other addresses), a refusal is a Service left without an address, once
// per distinct cause (a refusal that persists over many passes counts
// once, like its Kubernetes Event). In Kubernetes mode the IPAM controller
// counts, and only in the process that holds the Lease; in static mode
// every node recomputes the allocations itself and counts their changes
// (ChangeCounter; the first computation after start is the baseline, as a
// new leader's restore is). The counters live in the process: they restart from
// zero with it, and a leader change moves the counting to another node, so
// sum them over the nodes (sum without(instance)) to see the cluster's.
//
// The reasons are a fixed set (Reasons()), one per ipam sentinel error plus
// invalid_service and other, so the label's cardinality is bounded.
package ipamcount
