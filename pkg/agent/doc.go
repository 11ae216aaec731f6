// SPDX-License-Identifier: Apache-2.0

// Package agent is the node daemon behind `lbd run`: it wires a state source
// (the static manifest file, or Kubernetes) to the reconcilers — ipam,
// announce and datapath — and serves the status socket. None of the
// reconcilers knows which source it runs from.
package agent
