// SPDX-License-Identifier: Apache-2.0

// Package v1alpha1 holds lbd's own API types, group lbd.dev, version
// v1alpha1, shaped to be served as CustomResourceDefinitions:
//
//   - IPPool: a cluster-scoped pool of addresses that LoadBalancer VIPs are
//     allocated from, and the Services and namespaces allowed to use it.
//   - L2Announcement: a cluster-scoped rule saying which pools are announced
//     (ARP/NDP) on which interfaces of which nodes.
//
// The types are plain structs with JSON tags. Their DeepCopy methods are
// written by hand (there are few of them) so that they satisfy
// runtime.Object and can be used with client-go and a runtime.Scheme.
//
// Nothing outside pkg/config should read these types: pkg/config.For turns
// them, validated, into model.Pool and model.Announcement.
package v1alpha1
