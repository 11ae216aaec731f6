/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map, and nothing else. Capacities are placeholders that Go overrides
 * through MapSpec.MaxEntries before load. All maps are pinned by name so a
 * restart of lbd keeps the state (and the connection table) in place. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

/* lb_services: {vip, port, proto} -> lb_svc. Written by Go (sync), read by
 * the ingress programs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_services SEC(".maps");

/* lb_maglev: u32 (svc id * maglev_size + slot) -> u32 backend id. Written by
 * Go (one Maglev table per service) through a memory mapping, a copy per
 * slot where a batch update costs a syscall's work per slot; read by
 * ingress on new flows. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096 * 1021);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_maglev SEC(".maps");

/* lb_backends: u32 backend id -> lb_backend. Written by Go, read by ingress
 * on new flows. Id 0 is never used. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backends SEC(".maps");

/* lb_conntrack: client 5-tuple to the VIP -> lb_ct. Written and read by ingress;
 * read by Go for status. LRU: the oldest flows go first when full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_ct);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_conntrack SEC(".maps");

/* lb_revnat: reply 5-tuple from the backend -> lb_rev. Written by ingress on a
 * new flow, read by ingress (SNATed replies) and egress (local replies). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_flow_key);
	__type(value, struct lb_rev);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_revnat SEC(".maps");

/* lb_affinity: {client, svc id} -> backend, for sessionAffinity: ClientIP.
 * Written and read by ingress. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity_entry);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_affinity SEC(".maps");

/* lb_src_ranges: {svc id, client prefix} -> 1, loadBalancerSourceRanges.
 * Written by Go, read by ingress for services with LB_SVC_SRC_RANGES. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lb_src_key);
	__type(value, __u8);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_src_ranges SEC(".maps");

/* lb_stats: per-CPU u32 svc id -> lb_svc_stats. Written by ingress, read
 * by Go (status, metrics) at read time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_svc_stats);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_stats SEC(".maps");

/* lb_reasons: per-CPU u32 enum lb_reason -> packet count. Written by every
 * program on exit, read by Go. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LB_R_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_reasons SEC(".maps");

/* Opaque to bpf2go, which cannot render bpf_fib_lookup's unions. */
struct lb_scratch {
	__u64 w[8];
};
_Static_assert(sizeof(struct lb_scratch) == sizeof(struct bpf_fib_lookup), "lb_scratch holds a bpf_fib_lookup");

/* lb_scratch: one per-CPU slot for bpf_fib_lookup's 64-byte parameter
 * block, which does not fit on the BPF stack beside the rest of the
 * ingress path (512 bytes). A program run never sleeps, so its CPU's slot
 * is its own. Not pinned: it holds nothing between packets. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct lb_scratch);
	__uint(max_entries, 1);
} lb_scratch SEC(".maps");
