// SPDX-License-Identifier: Apache-2.0

// Package announce makes exactly one node answer for each VIP on the L2
// segment.
//
// Ownership is a pure function of the desired state and liveness: every
// node filters the nodes that may announce each VIP (Eligible: not
// excluded, live, selected by an L2Announcement of the VIP's pool, with a
// local endpoint under externalTrafficPolicy Local) and runs the same
// election over them (Elect: rendezvous hashing, with a bound that keeps
// any one zone from holding every VIP), so all nodes agree on a single
// owner per VIP without talking to each other, and a change in the node
// set moves the VIPs of the nodes that came or went (and, rarely, one the
// zone bound displaces). Plan turns an election into the VIPs to answer
// for per interface (Interfaces).
//
// The Announcer turns "this node owns these VIPs on this interface" into
// wire behaviour: it answers ARP requests (IPv4) and Neighbor
// Solicitations (IPv6) for owned VIPs with the interface's MAC, sends
// gratuitous ARP / unsolicited Neighbor Advertisements when it takes a VIP
// over so that neighbours update their caches at once, and counts replies
// from other MACs for owned VIPs as conflicts (a split brain).
//
// Raw sockets need CAP_NET_RAW; joining multicast groups needs no extra
// capability.
package announce
