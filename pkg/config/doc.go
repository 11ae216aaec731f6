// SPDX-License-Identifier: Apache-2.0

// Package config is the one place where Kubernetes API objects become lbd's
// model.State. For takes the objects a source collected (Nodes, Services,
// EndpointSlices, Namespaces, IPPools, L2Announcements), validates each of
// them once, and returns a State whose slices are sorted (pools, nodes and
// announcements by name, services by namespace/name, endpoints by address)
// so that every node computes the same answers from the same objects,
// whatever order the objects arrived in.
//
// # Errors
//
// For returns the State built from every valid object together with the
// errors.Join of one *FieldError per problem found in the invalid ones. An
// invalid object is left out of the State as a whole; the others are kept.
// This lets each caller choose:
//
//   - the static manifest source (pkg/source/static) rejects the whole file
//     on any error and keeps serving the last good State, because a file is
//     edited as one unit and a half-applied edit is worse than none;
//   - a Kubernetes source may serve the valid part and report the errors
//     per object (Events, logs), because one bad object in a cluster must not
//     take every other Service down.
//
// Each error names the kind, namespace/name and field path, for example
//
//	IPPool "external": spec.addresses[1]: "10.20.1.300-10.20.1.254": invalid IP address
//
// and can be inspected with errors.As(err, &*FieldError).
//
// Two pools whose ranges overlap are a conflict between objects rather than
// a fault of one: the pool whose name sorts first keeps its addresses and
// the other is reported and left out, so the outcome does not depend on the
// order the objects were listed in. Leaving out an invalid L2Announcement can
// widen what is announced (with no announcement at all, every pool is
// announced everywhere); callers that serve a partial State should take that
// into account.
//
// # Services
//
// Only Services of type LoadBalancer whose spec.loadBalancerClass is unset or
// equal to Options.LoadBalancerClass are converted; others are skipped
// silently, as are EndpointSlices that belong to no converted Service.
// Requested addresses, pool and sharing key are read from lbd's annotations
// (lbd.dev/...) first, then MetalLB's (metallb.io/...), then
// spec.loadBalancerIP; two sources that disagree are an error rather than a
// silent choice, because the range a Service lands in is a security
// boundary.
package config
