// SPDX-License-Identifier: Apache-2.0

// Package membership detects which lbd instances are alive, without the
// Kubernetes API server on the path, so that the owner of a VIP that dies
// is replaced in well under a second.
//
// # Protocol
//
// Every instance sends a small UDP heartbeat to every peer every Interval
// (default 100 ms), from and to the gossip port (default 7947) on the
// nodes' VLAN addresses. A heartbeat carries the sender's node name, its
// incarnation (a random number drawn at start, so a restarted instance is
// told apart from its previous life), a sequence number, and its view: the
// peers it currently hears. A peer is healthy while its last heartbeat is
// younger than Timeout (default 400 ms); the expiry sweep runs every
// Timeout/8, so a peer that stops is declared dead between Timeout and
// Timeout+Timeout/8 after its last heartbeat reached us, i.e. at most
// about Timeout+Interval after it died. On a graceful stop an instance
// sends a leave message (three copies, against loss) and its peers mark
// it dead at once: a planned handover waits for no timer.
//
// Heartbeats are accepted only from the address the desired state lists
// for the sending node (SetPeers), and from no node outside it. They are
// not authenticated: anyone able to send UDP on the VLAN can forge
// liveness, as anyone there can forge ARP. Each instance sends
// N-1 datagrams per Interval, so the cluster sends N·(N-1) per Interval;
// that is cheap up to about a hundred nodes (a 64-byte datagram, 1,000
// per second per node at 100 nodes).
//
// # Fencing
//
// A node cut off from the VLAN hears nobody, declares every peer dead
// and, if it went on announcing, would claim every VIP while the rest of
// the cluster elects owners among themselves. Fenced reports when this
// node must announce nothing because it cannot show it is on the
// majority side: when at least two peers are configured and it hears
// fewer than half of them (with three nodes: none). It is also fenced
// from start until it has heard every peer or Timeout has passed, so a
// restarting instance does not claim VIPs for the moment before it hears
// the others. With one peer there is no majority to find, and a node
// alone with its peer dead announces everything: a two-node cluster
// prefers availability.
package membership
