// SPDX-License-Identifier: Apache-2.0

// Package controller is lbd's IPAM controller: the one elected instance
// (a coordination.k8s.io Lease) that allocates LoadBalancer VIPs with
// pkg/ipam and publishes them in status.loadBalancer.ingress, from which
// every node's agent reads them back (pkg/source/kube).
//
// # Leadership
//
// Every lbd runs a Controller; client-go leader election picks one. Each term
// starts from nothing: fresh informer caches and a new ipam.Allocator into
// which every Service's current status is restored before anything is
// assigned, so a new leader, or a restarted one, never hands out a VIP that
// is in use. The Lease is released on a clean stop, so a restart hands over
// at once instead of waiting for the lease to expire.
//
// # Reconciling
//
// The controller is level-triggered: every change (coalesced for 10 ms)
// runs one pass over all Services. A pass first releases the addresses of
// Services that are gone, changed type or class, or became invalid, and then
// assigns every remaining Service of lbd's class; so an address freed in
// a pass is available to a Service that was refused for lack of one in the
// same pass, and pool exhaustion resolves itself as soon as an address
// frees. Assign keeps every valid current address, so a pass that changes
// nothing writes nothing.
//
// A pass works from the informer cache, which lags the controller's own
// status writes by a few milliseconds. The controller therefore remembers
// what it last wrote for each Service and trusts that over the cache.
//
// # What users see
//
// A refused Service gets no address, its stale status is cleared, and an
// Event with reason AllocationFailed carries the ipam error (which names the
// address, the pool and the selector that refused it); it is not repeated
// while the reason stays the same. A Service that gets an address gets an
// Event with reason IPAllocated.
//
// Each IPPool's status carries its usage (addressesTotal, addressesUsed)
// and three conditions: Valid (False with reason InvalidSpec or Conflict,
// and the field at fault, when lbd cannot use the pool), Exhausted (True
// while Services wait for an address the pool has no more of; it turns
// False by itself once they got one) and Stranded (see below).
//
// # Pool shrink and removal
//
// When a pool shrinks, is removed, or becomes invalid, Services holding
// addresses outside every pool keep them and keep being served: moving a
// live VIP breaks every client, and an address in no pool can never be
// handed to anyone else, so keeping it is safe. Each such Service gets a
// Warning Event AddressOutsidePool, and a pool that still exists gets
// Stranded=True naming them. Nothing is reassigned silently: the operator
// deletes the Service or requests another address (spec.loadBalancerIP or
// the loadBalancerIPs annotations) to move it, or restores the pool, which
// takes the addresses back. A controller restart keeps them too, as it
// restores from Service status (the Stranded condition is then rebuilt
// only for pools that change again).
package controller
