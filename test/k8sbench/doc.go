// SPDX-License-Identifier: Apache-2.0

// Command k8sbench measures lbd's Kubernetes control plane against a real
// kube-apiserver and etcd (internal/kubetest's binaries):
//
//   - allocation: N LoadBalancer Services exist when the IPAM controller
//     (pkg/controller, with lbd's RBAC identity) starts; the time until every
//     one has its VIP in status, and the API requests the controller made
//     (counted by a RoundTripper wrapped around its client), by kind.
//   - change to datapath: one Service or EndpointSlice change at a time
//     (alternately a backend address and a port), from the API call to the
//     moment the node's datapath holds it: lbd's Kubernetes source
//     (pkg/source/kube, its informers and coalescing) publishes a State and
//     datapath.Sync writes it into a real, loaded pkg/datapath (BPF maps,
//     programs not attached anywhere), as the agent's reconcile does. With
//     -datapath=false (or without root), the State handed to sync is the end
//     point instead.
//
// Output lines start with "bench: " so make bench can collect them.
package main
