// SPDX-License-Identifier: Apache-2.0

// Package datapath owns lbd's BPF objects: it loads them (bpf/lb.c, compiled
// by bpf2go), pins their maps under a directory of bpffs so a restart of lbd
// keeps the connection table and traffic flowing, attaches the programs to
// the VLAN-facing interface with bpf_link (driver-mode XDP, or tcx where a
// device has no native XDP), and syncs the maps from model.State with
// minimal writes.
//
// Everything here needs CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN to mount
// bpffs). The Datapath type is safe for concurrent use: Sync and the readers
// (Stats, Frontends) serialise on one mutex.
package datapath
