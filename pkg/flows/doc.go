// SPDX-License-Identifier: Apache-2.0

// Package flows streams the datapath's flow events to `lbd flows`: what
// Hubble is to Cilium, for VIP traffic.
//
// The BPF programs write events (a new flow and the backend it got, a drop
// and its reason, an affinity hit, sampled packets of established flows)
// into a bounded ring buffer, but only while flow events are enabled. A Hub
// enables them when its first subscriber arrives and disables them when the
// last one leaves, so a node nobody watches pays one branch per VIP packet.
// While enabled, one goroutine reads the ring buffer, names the service and
// the backend's node from the last reconciled State, and fans each event out
// to the subscribers whose Filter matches. A slow subscriber loses events
// (counted and reported to it) rather than slowing the others; a full ring
// buffer loses events in the kernel (counted too) rather than blocking a
// packet.
//
// Handler serves a Hub as newline-delimited JSON on the status socket
// (GET /v1/flows, filters as query parameters); Stream is its client.
package flows
