// SPDX-License-Identifier: Apache-2.0

// Package kube is the Kubernetes source of model.States: informers on
// Services, EndpointSlices, Nodes, Namespaces and lbd's IPPools and
// L2Announcements feed pkg/config.For, and every change is published as one
// new State.
//
// Informer handlers only signal; a single loop rebuilds the State from the
// caches, so a burst of changes (a rollout touching many EndpointSlices)
// becomes one State. The coalescing window is short (20 ms by default)
// because the whole path from an API change to the datapath has a 100 ms
// p99 budget. Nothing is published before every cache has synced, so the
// agent never prunes what a partial view would miss.
//
// VIPs come from Service status (status.loadBalancer.ingress), written by
// the elected IPAM controller (pkg/controller); this source never allocates.
//
// [Informers] is exported for pkg/controller, which builds its own, smaller
// set from the same code.
package kube
