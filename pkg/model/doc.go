// SPDX-License-Identifier: Apache-2.0

// Package model holds lbd's desired state: one immutable snapshot of pools,
// services with their VIPs, ports, policies and endpoints, and nodes.
//
// Sources (the static manifest file, the Kubernetes informers) produce a
// State; every subsystem (ipam, announce, datapath) reconciles from the
// previous State to the next one. Nothing in this package knows Kubernetes
// API types, so every subsystem can be tested with plain data.
//
// A State must not be modified after it is published: subsystems share it
// across goroutines without locking.
package model
