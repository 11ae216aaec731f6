/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Flow events for `lbd flows`: new VIP flows (client -> VIP -> backend),
 * drops with their reason, affinity hits and, sampled, packets of
 * established flows. The programs write them into a bounded ring buffer that
 * never blocks: when it is full the event is dropped and counted.
 *
 * Emission is off unless the daemon has a subscriber: flow_enabled lives in
 * .bss (mmapped, written from Go at run time; a volatile const would be
 * fixed at load time). With it off, a VIP packet pays one load and one
 * branch at each call site; non-VIP traffic never reaches one.
 *
 * The event struct and enums live here rather than in types.h so that the
 * flow feature stays in one file; bpf2go generates their Go side (-type)
 * like any other shared type. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"
#include "parse.h"

/* lb_flow_type: what an event reports. */
enum lb_flow_type {
	LB_FLOW_NEW = 1,         /* a new flow got a backend */
	LB_FLOW_DROP = 2,        /* a VIP packet was dropped (or answered by a RST) */
	LB_FLOW_ESTABLISHED = 3, /* a sampled packet of an established flow */
};

enum lb_flow_flags {
	LB_FLOW_F_AFFINITY = 1 << 0, /* backend from the client's sessionAffinity entry */
	LB_FLOW_F_SNAT = 1 << 1,     /* source rewritten to the node (remote backend) */
	LB_FLOW_F_NO_SVC = 1 << 2,   /* no frontend for this port: svc_id is meaningless */
};

/* lb_flow_event: one ring buffer record. Addresses in the 16-byte map layout,
 * ports in network order; backend and snat_port are zero for drops. */
struct lb_flow_event {
	__u64 ts; /* bpf_ktime_get_ns() */
	__u8 client[16];
	__u8 vip[16];
	__u8 backend[16];
	__be16 cport;
	__be16 vport;
	__be16 bport;
	__be16 snat_port;
	__u32 svc_id;
	__u8 proto;
	__u8 type;   /* enum lb_flow_type */
	__u8 reason; /* enum lb_reason */
	__u8 flags;  /* enum lb_flow_flags */
};

/* lb_flow_stat indexes lb_flow_stats. */
enum lb_flow_stat {
	LB_FLOW_S_EMITTED = 0, /* events written to the ring buffer */
	LB_FLOW_S_LOST,        /* events dropped because the ring buffer was full */
	LB_FLOW_S_MAX,
};

/* flow_enabled: non-zero while a `lbd flows` subscriber is connected.
 * Written by Go (.bss), read by ingress. */
volatile __u32 flow_enabled = 0;
/* flow_sample: emit one event per flow_sample packets of established flows
 * (chosen at random); 0 emits none. Written by Go with flow_enabled. */
volatile __u32 flow_sample = 0;

/* lb_flow_events: ring buffer of struct lb_flow_event. Written by ingress
 * while flow_enabled, read by the daemon while it has subscribers. Not
 * pinned: a restarted daemon starts with an empty one (and emission off).
 * The size is a placeholder Go may override (a power of two of pages). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} lb_flow_events SEC(".maps");

/* lb_flow_stats: per-CPU u32 enum lb_flow_stat -> u64 count. Written by
 * ingress, read by Go (metrics). Not pinned, like the ring buffer. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LB_FLOW_S_MAX);
} lb_flow_stats SEC(".maps");

static __always_inline void lb_flow_stat(enum lb_flow_stat s)
{
	__u32 k = s;
	__u64 *v = bpf_map_lookup_elem(&lb_flow_stats, &k);
	if (v)
		*v += 1;
}

/* lb_flow_reserve returns a zeroed record of type t, or NULL (counted as
 * lost) when the ring buffer is full. Reserving in place keeps the event
 * off the BPF stack, which the ingress path already uses heavily. */
static __always_inline struct lb_flow_event *lb_flow_reserve(enum lb_flow_type t)
{
	struct lb_flow_event *e = bpf_ringbuf_reserve(&lb_flow_events, sizeof(*e), 0);
	if (!e) {
		lb_flow_stat(LB_FLOW_S_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->type = t;
	return e;
}

/* LB_FLOW_WAKEUP_BYTES: the reader is woken when the pending data crosses
 * this (about 200 events); otherwise it finds the events on its next poll
 * (pkg/datapath polls every 100 ms). A wakeup per event would cost each new
 * flow about a microsecond while someone watches (measured by
 * BenchmarkPrivilegedFlowEvents). A crossing missed by a race between CPUs
 * only delays the events to the next poll. */
#define LB_FLOW_WAKEUP_BYTES (16 * 1024)

static __always_inline void lb_flow_submit(struct lb_flow_event *e)
{
	/* Pending bytes before this record is committed: a record is the
	 * event plus an 8-byte header. */
	__u64 avail = bpf_ringbuf_query(&lb_flow_events, BPF_RB_AVAIL_DATA);
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (avail < LB_FLOW_WAKEUP_BYTES && avail + sizeof(*e) + 8 >= LB_FLOW_WAKEUP_BYTES)
		wake = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, wake);
	lb_flow_stat(LB_FLOW_S_EMITTED);
}

/* lb_flow_ct fills an event from a flow and its connection-table entry. */
static __always_inline void lb_flow_ct(struct lb_flow_event *e, const struct lb_flow_key *fk, const struct lb_ct *ct)
{
	__builtin_memcpy(e->client, fk->saddr, 16);
	__builtin_memcpy(e->vip, fk->daddr, 16);
	__builtin_memcpy(e->backend, ct->baddr, 16);
	e->cport = fk->sport;
	e->vport = fk->dport;
	e->bport = ct->bport;
	e->snat_port = ct->snat_port;
	e->svc_id = ct->svc_id;
	e->proto = fk->proto;
	e->reason = LB_R_FWD;
	if (ct->flags & LB_CT_SNAT)
		e->flags |= LB_FLOW_F_SNAT;
}

/* lb_flow_new reports a new flow and the backend it got; affinity says the
 * backend came from the client's sessionAffinity entry. */
static __always_inline void lb_flow_new(const struct lb_flow_key *fk, const struct lb_ct *ct, int affinity)
{
	if (!flow_enabled)
		return;
	struct lb_flow_event *e = lb_flow_reserve(LB_FLOW_NEW);
	if (!e)
		return;
	lb_flow_ct(e, fk, ct);
	if (affinity)
		e->flags |= LB_FLOW_F_AFFINITY;
	lb_flow_submit(e);
}

/* lb_flow_established reports one in flow_sample packets of established
 * flows. */
static __always_inline void lb_flow_established(const struct lb_flow_key *fk, const struct lb_ct *ct)
{
	if (!flow_enabled)
		return;
	__u32 n = flow_sample;
	if (n == 0 || (n > 1 && bpf_get_prandom_u32() % n))
		return;
	struct lb_flow_event *e = lb_flow_reserve(LB_FLOW_ESTABLISHED);
	if (!e)
		return;
	lb_flow_ct(e, fk, ct);
	lb_flow_submit(e);
}

/* LB_FLOW_NO_SVC is the svc_id of drops no frontend matched (unknown port
 * of a VIP, fragments). */
#define LB_FLOW_NO_SVC 0xffffffff

static __always_inline void lb_flow_drop_fill(struct lb_flow_event *e, const __u8 *client, const __u8 *vip,
					      __be16 cport, __be16 vport, __u8 proto, __u32 svc_id,
					      enum lb_reason r)
{
	__builtin_memcpy(e->client, client, 16);
	__builtin_memcpy(e->vip, vip, 16);
	e->cport = cport;
	e->vport = vport;
	e->svc_id = svc_id;
	e->proto = proto;
	e->reason = r;
	if (svc_id == LB_FLOW_NO_SVC)
		e->flags |= LB_FLOW_F_NO_SVC;
}

/* lb_flow_drop reports a dropped VIP packet, before its flow key exists. */
static __always_inline void lb_flow_drop(const struct lb_pkt *p, __u32 svc_id, enum lb_reason r)
{
	if (!flow_enabled)
		return;
	struct lb_flow_event *e = lb_flow_reserve(LB_FLOW_DROP);
	if (!e)
		return;
	lb_flow_drop_fill(e, p->saddr, p->daddr, p->sport, p->dport, p->proto, svc_id, r);
	lb_flow_submit(e);
}

/* lb_flow_drop_key is lb_flow_drop once the flow key exists: reading it
 * (already on the stack) rather than the packet keeps the new-flow path
 * within the 512-byte BPF stack. */
static __always_inline void lb_flow_drop_key(const struct lb_flow_key *fk, __u32 svc_id, enum lb_reason r)
{
	if (!flow_enabled)
		return;
	struct lb_flow_event *e = lb_flow_reserve(LB_FLOW_DROP);
	if (!e)
		return;
	lb_flow_drop_fill(e, fk->saddr, fk->daddr, fk->sport, fk->dport, fk->proto, svc_id, r);
	lb_flow_submit(e);
}
