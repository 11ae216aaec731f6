// SPDX-License-Identifier: Apache-2.0

// Package static is the manifest-file source of lbd's desired state, used
// by the lab and the demo instead of the Kubernetes API.
//
// The file is a multi-document YAML stream of the objects a cluster would
// hold: v1 Node, Service and Namespace, discovery.k8s.io/v1 EndpointSlice,
// lbd.dev/v1alpha1 IPPool and L2Announcement. Documents are decoded strictly
// (an unknown or duplicated field is an error, so a typo cannot silently
// disable a selector) and converted by config.For.
//
// A Source serves the file: it loads it at start, then reloads it on SIGHUP
// and when its modification time, size or content changes. A file with any
// error is rejected as a whole and the last good State keeps serving; the
// error is logged in full. Namespaced objects without a namespace are put in
// "default", as kubectl would. Each Service carries its place in the file
// and its creationTimestamp (model.Service.Order and CreatedAt), which
// static allocation from scratch follows, first come first served.
package static
