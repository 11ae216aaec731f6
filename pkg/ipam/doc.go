// SPDX-License-Identifier: Apache-2.0

// Package ipam allocates load-balancer VIPs from address pools.
//
// It is pure Go on [model] types and [net/netip]: no Kubernetes types, no
// netlink. In Kubernetes mode one elected instance runs an [Allocator] and
// writes the result to Service status; every other node reads the VIPs back
// from status. In static mode every node calls [Allocate] on the same inputs
// and gets the same answer; a running node passes its previous answer as the
// Services' existing VIPs, so that nothing moves when others are added.
//
// # Pools and selection
//
// A pool selects a service when its ServiceSelector matches the service's
// labels and its NamespaceSelector matches the labels of the service's
// namespace (a nil selector matches everything). Pool selection is a security
// boundary: a service is never given an address from a pool that does not
// select it, whether the address is auto-assigned, requested by IP, requested
// by pool or restored from status. Requests that would break this are refused
// with an error wrapping [ErrNotAllowed] whose message names the address, the
// pool, the selector and the service.
//
// Automatic assignment picks, among the pools with AutoAssign that select the
// service and have a range for every family it wants, the one with the highest
// Priority (ties broken by name), and within it the lowest free address
// (ranges walked in address order). All families of one automatic assignment
// come from the same pool, so a dual-stack service gets its IPv4 and IPv6 VIP
// from one dual-stack pool.
//
// # Restarts and pool changes
//
// An allocator holds no persistent state. After a restart, or whenever the
// pools change (build a new Allocator with [New]), the caller must [Allocator.Restore]
// every existing allocation, read back from Service status, before it calls
// [Allocator.Assign] for anything: otherwise a new service could be handed a
// VIP that is still in use. Restore never moves an address; it only records it,
// or refuses it with an error:
//
//   - [ErrNoPool]: the address is no longer in any pool (the pool was removed
//     or shrunk). The caller decides: keep serving the old VIP and report the
//     problem (an Event, a status condition), or call Assign to move the
//     service into a current pool. Until it is restored or released the
//     address is simply unknown to the allocator, which cannot hand it out
//     because it is in no pool.
//   - [ErrNotAllowed]: the address's pool no longer selects the service (its
//     labels or the pool's selectors changed). Assign will give it an address
//     from a pool that does select it.
//   - [ErrInUse]: another service restored earlier holds the address and the
//     two cannot share it. The first one restored keeps it.
//
// Restore records every address of a service that passes these checks, so a
// dual-stack service whose IPv6 pool was removed keeps its IPv4 VIP.
//
// Assign keeps a service's current addresses as long as they stay valid:
// still in a pool that selects the service, consistent with RequestedIPs and
// RequestedPool, of a family the service wants and shareable with the other
// holders. A pool that newly sets AvoidBuggyIPs does not move a VIP that is
// already in use on a .0 or .255 address; only new assignments skip them.
//
// # IP sharing
//
// Services with the same non-empty SharingKey may hold the same address when
// no two of them use the same port and protocol. A service without a sharing
// key never shares. When it auto-assigns a service with a sharing key, Assign
// prefers the lowest address already used under that key (if the ports fit)
// over a fresh one, because grouping services onto one VIP is the point of the
// key. Sharing does not check that services with externalTrafficPolicy Local
// have the same endpoints; the model carries no pod selector to compare.
//
// # Large pools
//
// Addresses are never materialised: allocations live in maps keyed by
// [netip.Addr], and the lowest free address is found by walking a range from
// a per-range cursor below which every address is known to be taken. So an
// IPv6 /64 costs nothing until used. One search probes at most 65536
// addresses of a range (only taken addresses, and .0/.255 ones with
// AvoidBuggyIPs, are probed before a free one is found, so this can only bind
// when 65536 consecutive addresses are taken); a search that reaches the cap
// reports the range exhausted for that call and resumes from there on the next
// one. [PoolStats] counts saturate at [math.MaxUint64].
//
// # Concurrency
//
// An Allocator is not safe for concurrent use; the caller serialises calls
// (the leader's reconcile loop does).
package ipam
