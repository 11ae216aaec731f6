/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every struct and enum shared with Go. Go bindings are generated from these
 * by bpf2go (-type); never mirror them by hand.
 *
 * Address layout: every address is 16 bytes in network order; IPv4 is stored
 * v4-mapped (::ffff:a.b.c.d), so one map serves both families. Ports are in
 * network order. */
#pragma once

#include <linux/types.h>

/* lb_svc_key: a frontend, {VIP, port, protocol}. {VIP, 0, 0} is the VIP marker
 * entry: it says "this address is a VIP" so traffic to an unknown port of a
 * VIP is dropped instead of forwarded by the stack. */
struct lb_svc_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

enum lb_svc_flags {
	LB_SVC_LOCAL = 1 << 0,      /* externalTrafficPolicy: Local */
	LB_SVC_AFFINITY = 1 << 1,   /* sessionAffinity: ClientIP */
	LB_SVC_SRC_RANGES = 1 << 2, /* loadBalancerSourceRanges set */
	LB_SVC_VIP_MARKER = 1 << 3, /* {vip,0,0} marker entry */
};

/* lb_svc: what a frontend maps to. id indexes the Maglev table and the
 * per-service counters; backends == 0 means no ready backend. */
struct lb_svc {
	__u32 id;
	__u32 flags;
	__u32 backends;
	__u32 affinity_timeout; /* seconds */
};

enum lb_backend_flags {
	LB_BE_LOCAL = 1 << 0, /* on this node: no SNAT needed */
};

/* lb_backend: a backend address and port, indexed by backend id. */
struct lb_backend {
	__u8 addr[16];
	__be16 port;
	__u8 flags;
	__u8 pad;
};

/* lb_flow_key: a 5-tuple as seen on the wire. */
struct lb_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

enum lb_ct_flags {
	LB_CT_SNAT = 1 << 0,    /* source rewritten to the node's address */
	LB_CT_CLOSING = 1 << 1, /* FIN or RST seen from the client */
	LB_CT_FIB = 1 << 2,     /* next hop cached in the entry (see lb_ct) */
};

/* lb_ct: a connection-table entry, keyed by the client's 5-tuple to the VIP.
 * It stores the backend itself, not its id, so a flow survives the backend's
 * removal from the service and id reuse. */
struct lb_ct {
	__u8 baddr[16];
	__be16 bport;
	__be16 snat_port;
	__u32 svc_id;
	__u32 flags;
	__u32 pad;
	__u64 last_seen; /* lb_now(): CLOCK_MONOTONIC, coarse */
	/* The next hop towards the backend, cached by an established packet's
	 * bpf_fib_lookup (valid with LB_CT_FIB) and looked up again when
	 * last_seen is refreshed (every LB_CT_REFRESH_NS of activity): the
	 * lookup is the costliest step of an established packet. */
	__u8 dmac[6];
	__u8 smac[6];
	__u32 oif;
};

/* lb_rev: reverse translation, keyed by the reply's 5-tuple as the backend
 * sends it. */
struct lb_rev {
	__u8 vip[16];
	__u8 client[16];
	__be16 vport;
	__be16 cport;
	__u32 svc_id;
	__u32 flags;
	/* When the backend last replied, in LB_REV_TICK_SHIFT ticks of
	 * lb_now() (about a second; written at most once per tick): a
	 * flow whose replies still come is not idle (lb_snat_stale),
	 * even when its client has been silent. */
	__u32 last_reply;
};

/* lb_affinity_key / lb_affinity_entry: sessionAffinity: ClientIP. */
struct lb_affinity_key {
	__u8 client[16];
	__u32 svc_id;
};

struct lb_affinity_entry {
	__u8 baddr[16];
	__be16 bport;
	__u8 flags; /* the backend's lb_backend_flags (LB_BE_LOCAL) */
	__u8 pad;
	__u32 pad2;
	__u64 last_seen;
};

/* lb_src_key: LPM key for loadBalancerSourceRanges. prefixlen counts the 32
 * bits of svc_id plus the address prefix (v4 prefixes as v4-mapped /96+N). */
struct lb_src_key {
	__u32 prefixlen;
	__u32 svc_id;
	__u8 addr[16];
};

/* lb_svc_stats: per-service, per-CPU counters. */
struct lb_svc_stats {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 drops;
};

/* LB_R_SLOTS is the size of the lb_reasons map: fixed, with room for new
 * reasons, so adding one does not change the pinned map's layout. */
#define LB_R_SLOTS 64

/* lb_reason: why the datapath let a packet go the way it did. Indexes the
 * per-CPU lb_reasons counters. */
enum lb_reason {
	LB_R_PASS = 0,          /* not VIP traffic: untouched */
	LB_R_FWD,               /* VIP traffic translated and forwarded */
	LB_R_FWD_STACK,         /* translated, handed to the stack (local pod) */
	LB_R_REVNAT,            /* reply reverse-translated */
	LB_R_DROP_NO_BACKEND,   /* service has no ready backend */
	LB_R_DROP_NO_PORT,      /* VIP hit on a port no service uses */
	LB_R_DROP_FRAGMENT,     /* IP fragment to a VIP */
	LB_R_DROP_SRC_RANGE,    /* client outside loadBalancerSourceRanges */
	LB_R_DROP_MALFORMED,    /* truncated or bogus header on VIP traffic */
	LB_R_DROP_NO_SNAT_PORT, /* no free SNAT port for this backend */
	LB_R_DROP_FIB,          /* no route to the backend or client */
	LB_R_DROP_TTL,          /* TTL expired on a forwarded packet */
	LB_R_PASS_MALFORMED,    /* unparsable non-VIP packet: left to the stack */
	LB_R_RESET_NO_BACKEND,  /* TCP to a service with no ready backend: RST sent */
	LB_R_ICMP_FWD,          /* ICMP error of a VIP flow translated and sent on */
	LB_R_FWD_STACK_NO_NEIGH, /* XDP, next hop unresolved: translated, to the stack to forward */
	/* Not a verdict but an event, counted beside the packet's verdict:
	 * an established flow's reverse entry was found missing (evicted by
	 * the LRU while its connection-table entry stayed) and re-created. */
	LB_R_REVNAT_EVICTED,
	LB_R_MAX,
};
