/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The load balancer: service lookup, backend choice (connection table, then
 * Maglev), DNAT/SNAT, forwarding and reverse translation. Written once for
 * XDP and TC through the ctx shim; `xdp` is always a compile-time constant. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "types.h"
#include "maps.h"
#include "ctx.h"
#include "parse.h"
#include "csum.h"
#include "stats.h"
#include "reset.h"
#include "flow.h"

#define LB_AF_INET 2
#define LB_AF_INET6 10
#define LB_IPPROTO_ICMPV6 58
#define LB_PULL_LEN (14 + 60 + 20)

/* lb_verdict turns a core action into the hook's return code. For TC, PASS
 * is TC_ACT_UNSPEC (tcx: next program), so programs attached after lbd
 * (a CNI's) still see every packet that lbd does not consume. */
static __always_inline int lb_verdict(void *ctx, const bool xdp, enum lb_action a, __u32 ifindex)
{
	switch (a) {
	case LB_ACT_DROP:
		return xdp ? XDP_DROP : TC_ACT_SHOT;
	case LB_ACT_TX:
		return xdp ? XDP_TX : bpf_redirect(ctx_ifindex(ctx, xdp), 0);
	case LB_ACT_REDIRECT:
		return bpf_redirect(ifindex, 0);
	case LB_ACT_REDIRECT_NEIGH:
		if (xdp)
			return XDP_DROP;
		return bpf_redirect_neigh(ifindex, NULL, 0, 0);
	default:
		return xdp ? XDP_PASS : TC_ACT_UNSPEC;
	}
}

static __always_inline int lb_exit(void *ctx, const bool xdp, enum lb_action a, enum lb_reason r, __u32 ifindex)
{
	lb_count(r);
	return lb_verdict(ctx, xdp, a, ifindex);
}

/* lb_now is the time of flow bookkeeping (last_seen, affinity): the
 * coarse monotonic clock (CLOCK_MONOTONIC as of the last tick), which is a
 * load where bpf_ktime_get_ns reads the clock source; the thresholds it
 * serves are a second or more, the tick a few milliseconds. */
static __always_inline __u64 lb_now(void) { return bpf_ktime_get_coarse_ns(); }

/* lb_since is now - then, or 0 when then is later: an entry stamped by
 * the precise clock (Go, tests) may be ahead of the coarse one. */
static __always_inline __u64 lb_since(__u64 now, __u64 then) { return now > then ? now - then : 0; }

static __always_inline __u32 lb_rol(__u32 w, __u32 s) { return (w << s) | (w >> (32 - s)); }

/* lb_hash mixes a flow (or, for affinity, only the client address) into 32
 * bits; Jenkins' final mix, as in the kernel's jhash_3words. */
static __always_inline __u32 lb_hash3(__u32 a, __u32 b, __u32 c)
{
	c ^= b; c -= lb_rol(b, 14);
	a ^= c; a -= lb_rol(c, 11);
	b ^= a; b -= lb_rol(a, 25);
	c ^= b; c -= lb_rol(b, 16);
	a ^= c; a -= lb_rol(c, 4);
	b ^= a; b -= lb_rol(a, 14);
	c ^= b; c -= lb_rol(b, 24);
	return c;
}

static __always_inline __u32 lb_addr_fold(const __u8 *a)
{
	__u32 w[4];
	__builtin_memcpy(w, a, 16);
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

static __always_inline __u32 lb_flow_hash(const struct lb_flow_key *k)
{
	__u32 ports = ((__u32)k->sport << 16) | k->dport;
	return lb_hash3(lb_addr_fold(k->saddr), lb_addr_fold(k->daddr) ^ k->proto, ports);
}

/* lb_rewrite_addrs4 replaces the IPv4 source and destination with naddr,
 * fixing the header checksum, and returns the old ones in oaddr. */
static __always_inline int lb_rewrite_addrs4(void *ctx, const bool xdp, __be32 oaddr[2], const __be32 naddr[2])
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > data_end)
		return -1;
	oaddr[0] = ip->saddr;
	oaddr[1] = ip->daddr;
	ip->saddr = naddr[0];
	ip->daddr = naddr[1];
	ip->check = lb_csum_update(ip->check, oaddr, (__be32 *)naddr, 8);
	return 0;
}

/* lb_l4_csum fixes the TCP/UDP checksum at csum_off for addresses o -> n
 * (size bytes) and ports op -> np. XDP updates it in place; TC uses
 * bpf_l4_csum_replace, which is correct for CHECKSUM_PARTIAL skbs (only the
 * pseudo-header part is folded into a partial checksum). An IPv4 UDP
 * checksum of 0 (none) stays 0 (v4zero). */
static __always_inline int lb_l4_csum(void *ctx, const bool xdp, __u16 *csum, __u32 csum_off, int udp,
				      int v4zero, __be32 *o, __be32 *n, __u32 size, __be32 *op, __be32 *np)
{
	if (xdp) {
		if (v4zero && *csum == 0)
			return 0;
		__u16 c = lb_csum_update(*csum, o, n, size);
		c = lb_csum_update(c, op, np, 4);
		*csum = (udp && c == 0) ? 0xffff : c;
		return 0;
	}
	__u64 mangled = udp ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 ad = bpf_csum_diff(o, size, n, size, 0);
	__s64 pd = bpf_csum_diff(op, 4, np, 4, 0);
	if (bpf_l4_csum_replace(ctx, csum_off, 0, (__u32)ad, BPF_F_PSEUDO_HDR | mangled))
		return -1;
	if (bpf_l4_csum_replace(ctx, csum_off, 0, (__u32)pd, mangled))
		return -1;
	return 0;
}

/* lb_rewrite4 replaces addresses and ports of an IPv4 TCP/UDP packet and
 * fixes the checksums. */
static __always_inline int lb_rewrite4(void *ctx, const bool xdp, const struct lb_pkt *p,
				       __be32 saddr, __be32 daddr, __be16 sport, __be16 dport)
{
	__be32 oaddr[2], naddr[2] = {saddr, daddr};
	if (lb_rewrite_addrs4(ctx, xdp, oaddr, naddr))
		return -1;
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);

	__u32 off = p->l4_off;
	if (off > sizeof(struct ethhdr) + 60)
		return -1;
	__be16 *ports = data + off;
	if ((void *)(ports + 2) > data_end)
		return -1;
	__be32 oports, nports;
	__builtin_memcpy(&oports, ports, 4);
	ports[0] = sport;
	ports[1] = dport;
	__builtin_memcpy(&nports, ports, 4);

	__u32 csum_off = off + (p->proto == IPPROTO_TCP ? 16 : 6);
	__u16 *csum = data + csum_off;
	if ((void *)(csum + 1) > data_end)
		return -1;
	int udp = p->proto == IPPROTO_UDP;
	return lb_l4_csum(ctx, xdp, csum, csum_off, udp, udp, oaddr, naddr, sizeof(oaddr), &oports, &nports);
}

/* lb_node_addr writes the node's address of family fam (the SNAT source)
 * into out; returns 0 when the node has none. */
static __always_inline int lb_node_addr(__u8 fam, __u8 *out)
{
	if (fam == 6) {
		/* Read through volatile, or clang folds the zero initialiser. */
		__u32 w[4] = {node_ip6[0], node_ip6[1], node_ip6[2], node_ip6[3]};
		if ((w[0] | w[1] | w[2] | w[3]) == 0)
			return 0;
		__builtin_memcpy(out, w, 16);
		return 1;
	}
	if (node_ip4 == 0)
		return 0;
	lb_v4mapped(out, node_ip4);
	return 1;
}

/* lb_addr_eq compares two addresses in the 16-byte map layout. */
static __always_inline int lb_addr_eq(const __u8 *a, const __u8 *b)
{
	__u32 x[4], y[4];
	__builtin_memcpy(x, a, 16);
	__builtin_memcpy(y, b, 16);
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

/* lb_is_node reports whether addr (of family fam) is the node's address. */
static __always_inline int lb_is_node(__u8 fam, const __u8 *addr)
{
	__u8 node[16];
	return lb_node_addr(fam, node) && lb_addr_eq(addr, node);
}

/* lb_rewrite6 is lb_rewrite4 for IPv6 (no header checksum; the L4 checksum
 * is mandatory, also for UDP). */
static __always_inline int lb_rewrite6(void *ctx, const bool xdp, const struct lb_pkt *p,
				       const __u8 *saddr, const __u8 *daddr, __be16 sport, __be16 dport)
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	__be32 o[8], n[8];
	__builtin_memcpy(o, &ip6->saddr, 32);
	__builtin_memcpy(n, saddr, 16);
	__builtin_memcpy(&n[4], daddr, 16);
	__builtin_memcpy(&ip6->saddr, n, 32);

	__be16 *ports = (void *)(ip6 + 1);
	if ((void *)(ports + 2) > data_end)
		return -1;
	__be32 oports, nports;
	__builtin_memcpy(&oports, ports, 4);
	ports[0] = sport;
	ports[1] = dport;
	__builtin_memcpy(&nports, ports, 4);

	int udp = p->proto == IPPROTO_UDP;
	__u32 csum_off = sizeof(struct ethhdr) + sizeof(*ip6) + (udp ? 6 : 16);
	__u16 *csum = data + csum_off;
	if ((void *)(csum + 1) > data_end)
		return -1;
	return lb_l4_csum(ctx, xdp, csum, csum_off, udp, 0, o, n, sizeof(o), &oports, &nports);
}

/* lb_xlate rewrites addresses and ports of a TCP/UDP packet of either
 * family; addresses are in the 16-byte map layout. */
static __always_inline int lb_xlate(void *ctx, const bool xdp, const struct lb_pkt *p,
				    const __u8 *saddr, const __u8 *daddr, __be16 sport, __be16 dport)
{
	if (p->family == 6)
		return lb_rewrite6(ctx, xdp, p, saddr, daddr, sport, dport);
	return lb_rewrite4(ctx, xdp, p, lb_v4(saddr), lb_v4(daddr), sport, dport);
}

/* lb_hop_dec decrements the TTL / hop limit of a packet lbd forwards
 * itself (the stack is bypassed, so it must). */
static __always_inline int lb_hop_dec(void *ctx, const bool xdp, __u8 fam)
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	if (fam == 6) {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		ip6->hop_limit--;
		return 0;
	}
	struct iphdr *ip = data + sizeof(struct ethhdr);
	if ((void *)(ip + 1) > data_end)
		return -1;
	lb_ttl_dec(&ip->ttl, &ip->check);
	return 0;
}

/* lb_fwd_l2 sends a translated packet to a known next hop: hop limit
 * down, MACs rewritten, out of oif (TX when that is the ingress
 * interface). With cache, the next hop is also stored in the flow's
 * connection-table entry (LB_CT_FIB), once the packet is known good. */
static __always_inline int lb_fwd_l2(void *ctx, const bool xdp, __u8 fam, const __u8 *dmac, const __u8 *smac,
				     __u32 oif, enum lb_reason ok, struct lb_ct *cache)
{
	if (lb_hop_dec(ctx, xdp, fam))
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (cache) {
		__builtin_memcpy(cache->dmac, dmac, ETH_ALEN);
		__builtin_memcpy(cache->smac, smac, ETH_ALEN);
		cache->oif = oif;
		cache->flags |= LB_CT_FIB;
	}
	if (oif == ctx_ifindex(ctx, xdp))
		return lb_exit(ctx, xdp, LB_ACT_TX, ok, 0);
	return lb_exit(ctx, xdp, LB_ACT_REDIRECT, ok, oif);
}

/* lb_fwd sends a translated packet on: to the next hop found by
 * bpf_fib_lookup, out of the ingress interface (backend on another node,
 * client) or to the stack (backend on this node, so it passes wherever the
 * CNI enforces policy; fast_local_redirect skips that, opt-in). A packet
 * with the node's own source (SNAT) can never go to the stack: the kernel
 * drops a local source arriving from outside as martian. */
static __always_inline int lb_fwd_cache(void *ctx, const bool xdp, __u8 fam, const __u8 *saddr, const __u8 *daddr,
					__u8 proto, __u16 ip_len, int snat, enum lb_reason ok, struct lb_ct *cache)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *f = (void *)bpf_map_lookup_elem(&lb_scratch, &zero);
	if (!f)
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_FIB, 0);
	__builtin_memset(f, 0, sizeof(*f));
	f->l4_protocol = proto;
	f->tot_len = ip_len;
	if (fam == 6) {
		f->family = LB_AF_INET6;
		__builtin_memcpy(f->ipv6_src, saddr, 16);
		__builtin_memcpy(f->ipv6_dst, daddr, 16);
	} else {
		f->family = LB_AF_INET;
		f->ipv4_src = lb_v4(saddr);
		f->ipv4_dst = lb_v4(daddr);
	}
	__u32 in = ctx_ifindex(ctx, xdp);
	f->ifindex = in;

	long rc = bpf_fib_lookup(ctx, f, sizeof(*f), 0);
	int local = rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ? f->ifindex != in : 0;
	if (local && !fast_local_redirect && !snat)
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_FWD_STACK, 0);

	if (rc == BPF_FIB_LKUP_RET_SUCCESS)
		return lb_fwd_l2(ctx, xdp, fam, f->dmac, f->smac, f->ifindex, ok, cache);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && !xdp) {
		if (lb_hop_dec(ctx, xdp, fam))
			return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
		return lb_exit(ctx, xdp, LB_ACT_REDIRECT_NEIGH, ok, f->ifindex);
	}
	/* XDP without a neighbour entry (XDP has no bpf_redirect_neigh): the
	 * stack forwards the translated packet and resolves the neighbour, so
	 * the next packets take the fast path. Not an IPv4 packet with the
	 * node's own source (SNAT): the kernel drops that as martian; IPv6
	 * forwarding has no such check, and a reply's source is the VIP. TTL
	 * is left to the kernel, which decrements it when forwarding. */
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && (fam == 6 || !snat || !lb_is_node(fam, saddr)))
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_FWD_STACK_NO_NEIGH, 0);
	/* No route: the stack can answer it (ICMP unreachable) for
	 * un-SNATed packets; SNATed ones are dropped and counted. */
	if (!snat)
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_FWD_STACK, 0);
	return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_FIB, 0);
}

static __always_inline int lb_fwd(void *ctx, const bool xdp, __u8 fam, const __u8 *saddr, const __u8 *daddr,
				  __u8 proto, __u16 ip_len, int snat, enum lb_reason ok)
{
	return lb_fwd_cache(ctx, xdp, fam, saddr, daddr, proto, ip_len, snat, ok, NULL);
}

/* lb_fwd_cached sends a translated packet of an established flow to the
 * next hop its connection-table entry cached (LB_CT_FIB): what lb_fwd
 * does after a successful bpf_fib_lookup, without the lookup. */
static __always_inline int lb_fwd_cached(void *ctx, const bool xdp, __u8 fam, const struct lb_ct *ct, enum lb_reason ok)
{
	return lb_fwd_l2(ctx, xdp, fam, ct->dmac, ct->smac, ct->oif, ok, NULL);
}

/* lb_snat_stale reports whether the SNAT port held by the reverse entry old
 * (at rk) belongs to a flow that is gone: its connection-table entry was
 * evicted, moved to another port, closed (FIN/RST seen) more than
 * LB_CT_REUSE_NS ago, or idle (no packet from the client nor reply from
 * the backend) for longer than udp_idle_ns / tcp_idle_ns. Without this,
 * ports of closed connections, and of every UDP flow (which never closes),
 * stay taken until LRU eviction, and a busy backend runs out of them. A
 * flow whose port is taken over while idle notices on its next packet
 * (lb_rev_ensure) and is given a new port. */
static __always_inline int lb_snat_stale(const struct lb_rev *old, const struct lb_flow_key *rk, __u64 now)
{
	struct lb_flow_key ck = {.proto = rk->proto, .sport = old->cport, .dport = old->vport};
	__builtin_memcpy(ck.saddr, old->client, 16);
	__builtin_memcpy(ck.daddr, old->vip, 16);
	struct lb_ct *oc = bpf_map_lookup_elem(&lb_conntrack, &ck);
	if (!oc || oc->snat_port != rk->dport)
		return 1;
	__u64 since = lb_since(now, oc->last_seen);
	if (oc->flags & LB_CT_CLOSING)
		return since > LB_CT_REUSE_NS;
	__u64 idle = rk->proto == IPPROTO_UDP ? udp_idle_ns : tcp_idle_ns;
	if (since <= idle)
		return 0;
	/* last_reply is rounded down, so this overstates the reply's age by
	 * under a tick: the idle timeouts are many ticks long. */
	return lb_since(now, (__u64)old->last_reply << LB_REV_TICK_SHIFT) > idle;
}

enum lb_rev_state {
	LB_REV_OK = 0,   /* the reverse entry is there, or was re-created */
	LB_REV_TAKEN, /* the flow's SNAT port now belongs to another flow */
};

/* lb_rev_ensure checks, for an established flow (fk, ct), that its
 * reverse entry is still in lb_revnat. lb_conntrack and lb_revnat are
 * separate LRU maps, and a full lb_revnat can evict a live flow's entry
 * while lb_conntrack keeps the flow: its replies would no longer be
 * translated and the connection would hang. A missing entry is re-created
 * (BPF_NOEXIST: never over another CPU's) and counted (revnat_evicted).
 * An entry of another flow at the SNAT port means the port was reclaimed
 * from this flow while idle (lb_snat_stale): LB_REV_TAKEN, and the caller
 * treats the packet as a new flow, which claims another port. Called at
 * least once per LB_CT_REFRESH_NS of a flow's activity, with last_seen's
 * refresh: the idle timeouts are not shorter, so a reclaimed flow's first
 * packet after the idle period always gets here. */
static __always_inline enum lb_rev_state lb_rev_ensure(const struct lb_flow_key *fk, const struct lb_ct *ct)
{
	struct lb_flow_key rk = {.proto = fk->proto, .sport = ct->bport};
	__builtin_memcpy(rk.saddr, ct->baddr, 16);
	if (ct->flags & LB_CT_SNAT) {
		if (!lb_node_addr(lb_family(fk->daddr), rk.daddr))
			return LB_REV_OK;
		rk.dport = ct->snat_port;
	} else {
		__builtin_memcpy(rk.daddr, fk->saddr, 16);
		rk.dport = fk->sport;
	}
	struct lb_rev *old = bpf_map_lookup_elem(&lb_revnat, &rk);
	if (old) {
		if (!(ct->flags & LB_CT_SNAT))
			return LB_REV_OK;
		int same = lb_addr_eq(old->client, fk->saddr) && lb_addr_eq(old->vip, fk->daddr) &&
			   old->cport == fk->sport && old->vport == fk->dport;
		return same ? LB_REV_OK : LB_REV_TAKEN;
	}
	struct lb_rev rv = {.vport = fk->dport, .cport = fk->sport, .svc_id = ct->svc_id,
			    .flags = ct->flags & LB_CT_SNAT};
	__builtin_memcpy(rv.vip, fk->daddr, 16);
	__builtin_memcpy(rv.client, fk->saddr, 16);
	if (bpf_map_update_elem(&lb_revnat, &rk, &rv, BPF_NOEXIST) == 0)
		lb_count(LB_R_REVNAT_EVICTED);
	return LB_REV_OK;
}

/* lb_snat_probe is the port (host order) of probe i of a flow with hash h:
 * every probe is a hash of its own, so two flows whose first probes
 * collide do not share the rest of their sequences (with a fixed stride
 * they did, and the busiest ports were probed again and again). Mirrored
 * by snatProbe in pkg/datapath's tests. */
static __always_inline __u16 lb_snat_probe(__u32 h, __u32 i, __u32 span)
{
	return snat_port_min + lb_hash3(h, i, LB_SNAT_SEED) % span;
}

/* lb_snat_claim reserves a node source port for a flow to a remote backend
 * by inserting its reverse entry. Up to LB_SNAT_TRIES probes: a port whose
 * reverse entry is absent is claimed with BPF_NOEXIST (which fails only if
 * another CPU claimed it in between: then the next probe), one whose flow
 * is gone (lb_snat_stale) is taken over. A port is looked up before any
 * insert: an insert into a full LRU map evicts an entry first, even when
 * it then fails with EEXIST, so blind inserts on taken ports would evict
 * the reverse entries of live flows. Returns the port (network order) or
 * 0 (drop_no_snat_port). */
static __always_inline __be16 lb_snat_claim(struct lb_flow_key *rk, struct lb_rev *rv, __u32 h, __u64 now)
{
	__u32 span = (__u32)snat_port_max - snat_port_min + 1;
	if (span == 0 || span > 65536)
		return 0;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < LB_SNAT_TRIES; i++) {
		rk->dport = bpf_htons(lb_snat_probe(h, i, span));
		struct lb_rev *old = bpf_map_lookup_elem(&lb_revnat, rk);
		if (!old) {
			if (bpf_map_update_elem(&lb_revnat, rk, rv, BPF_NOEXIST) == 0)
				return rk->dport;
			continue;
		}
		if (lb_snat_stale(old, rk, now) && bpf_map_update_elem(&lb_revnat, rk, rv, BPF_ANY) == 0)
			return rk->dport;
	}
	return 0;
}

/* lb_pick chooses a backend for a new flow: the client's affinity entry if
 * still fresh, else the service's Maglev table. */
static __always_inline struct lb_backend *lb_pick(const struct lb_svc *svc, const struct lb_flow_key *fk)
{
	__u32 h;
	if (svc->flags & LB_SVC_AFFINITY)
		h = lb_hash3(lb_addr_fold(fk->saddr), svc->id, 0x5eed);
	else
		h = lb_flow_hash(fk);
	__u32 m = maglev_size;
	if (m == 0)
		return NULL;
	__u32 idx = svc->id * m + h % m;
	__u32 *be_id = bpf_map_lookup_elem(&lb_maglev, &idx);
	if (!be_id || *be_id == 0)
		return NULL;
	return bpf_map_lookup_elem(&lb_backends, be_id);
}

static __always_inline int lb_affinity_get(const struct lb_svc *svc, const struct lb_flow_key *fk,
					   struct lb_ct *out, __u8 *local, __u64 now)
{
	struct lb_affinity_key ak = {.svc_id = svc->id};
	__builtin_memcpy(ak.client, fk->saddr, 16);
	struct lb_affinity_entry *a = bpf_map_lookup_elem(&lb_affinity, &ak);
	if (!a)
		return 0;
	if (lb_since(now, a->last_seen) > (__u64)svc->affinity_timeout * 1000000000ULL)
		return 0;
	__builtin_memcpy(out->baddr, a->baddr, 16);
	out->bport = a->bport;
	*local = a->flags & LB_BE_LOCAL;
	return 1;
}

static __always_inline void lb_affinity_put(const struct lb_svc *svc, const struct lb_flow_key *fk,
					    const struct lb_ct *ct, __u8 local, __u64 now)
{
	struct lb_affinity_key ak = {.svc_id = svc->id};
	__builtin_memcpy(ak.client, fk->saddr, 16);
	struct lb_affinity_entry a = {.bport = ct->bport, .flags = local, .last_seen = now};
	__builtin_memcpy(a.baddr, ct->baddr, 16);
	bpf_map_update_elem(&lb_affinity, &ak, &a, BPF_ANY);
}

/* lb_new_flow picks a backend, reserves the reverse entry and stores the
 * connection-table entry. Returns a drop reason, or LB_R_FWD. */
static __always_inline enum lb_reason lb_new_flow(const struct lb_svc *svc, struct lb_flow_key *fk,
						   struct lb_ct *ct, __u64 now)
{
	int have = 0;
	__u8 local = 0;
	/* An affinity hit also says whether its backend is local (stored when
	 * it was picked): a Cluster service's local backend must not turn into
	 * a SNATed one on the client's next flow. */
	if (svc->flags & LB_SVC_AFFINITY)
		have = lb_affinity_get(svc, fk, ct, &local, now);
	if (!have) {
		if (svc->backends == 0)
			return LB_R_DROP_NO_BACKEND;
		struct lb_backend *be = lb_pick(svc, fk);
		if (!be)
			return LB_R_DROP_NO_BACKEND;
		__builtin_memcpy(ct->baddr, be->addr, 16);
		ct->bport = be->port;
		local = be->flags & LB_BE_LOCAL;
	}
	ct->svc_id = svc->id;
	ct->last_seen = now;

	struct lb_flow_key rk = {.proto = fk->proto, .sport = ct->bport};
	struct lb_rev rv = {.vport = fk->dport, .cport = fk->sport, .svc_id = svc->id};
	__builtin_memcpy(rk.saddr, ct->baddr, 16);
	__builtin_memcpy(rv.vip, fk->daddr, 16);
	__builtin_memcpy(rv.client, fk->saddr, 16);

	if (!local && !(svc->flags & LB_SVC_LOCAL)) {
		if (!lb_node_addr(lb_family(fk->daddr), rk.daddr))
			return LB_R_DROP_NO_SNAT_PORT;
		rv.flags = LB_CT_SNAT;
		__be16 port = lb_snat_claim(&rk, &rv, lb_flow_hash(fk), now);
		if (!port)
			return LB_R_DROP_NO_SNAT_PORT;
		ct->snat_port = port;
		ct->flags = LB_CT_SNAT;
	} else {
		__builtin_memcpy(rk.daddr, fk->saddr, 16);
		rk.dport = fk->sport;
		bpf_map_update_elem(&lb_revnat, &rk, &rv, BPF_ANY);
		ct->snat_port = 0;
		ct->flags = 0;
	}
	if (svc->flags & LB_SVC_AFFINITY)
		lb_affinity_put(svc, fk, ct, local, now);
	bpf_map_update_elem(&lb_conntrack, fk, ct, BPF_ANY);
	lb_flow_new(fk, ct, have);
	return LB_R_FWD;
}

static __always_inline void lb_flow_key_of(struct lb_flow_key *k, const struct lb_pkt *p)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
}

static __always_inline int lb_service(void *ctx, const bool xdp, struct lb_pkt *p, const struct lb_svc *svcp)
{
	struct lb_svc svc = *svcp;
	__u32 bytes = ctx_len(ctx, xdp);

	if (svc.flags & LB_SVC_SRC_RANGES) {
		struct lb_src_key sk = {.prefixlen = 32 + 128, .svc_id = svc.id};
		__builtin_memcpy(sk.addr, p->saddr, 16);
		if (!bpf_map_lookup_elem(&lb_src_ranges, &sk)) {
			lb_svc_count(svc.id, bytes, 0, 1);
			lb_flow_drop(p, svc.id, LB_R_DROP_SRC_RANGE);
			return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_SRC_RANGE, 0);
		}
	}
	if (p->ttl <= 1) {
		lb_svc_count(svc.id, bytes, 0, 1);
		lb_flow_drop(p, svc.id, LB_R_DROP_TTL);
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_TTL, 0);
	}

	struct lb_flow_key fk = {};
	lb_flow_key_of(&fk, p);
	__u64 now = lb_now();
	struct lb_ct ct = {};
	int new_flow = 0;
	struct lb_ct *cur = bpf_map_lookup_elem(&lb_conntrack, &fk), *cache = NULL;
	int closing = p->proto == IPPROTO_TCP && (p->tcp_flags & (LB_TCP_FIN | LB_TCP_RST));
	int syn = p->proto == IPPROTO_TCP && (p->tcp_flags & (LB_TCP_SYN | LB_TCP_ACK)) == LB_TCP_SYN;
	/* A SYN on a flow that closed a while ago is a new connection
	 * reusing the client port: choose again. */
	if (cur && syn && (cur->flags & LB_CT_CLOSING) && lb_since(now, cur->last_seen) > LB_CT_REUSE_NS)
		cur = NULL;
	/* Is the reverse entry still there, and still this flow's? Checked
	 * once per LB_CT_REFRESH_NS of activity, on a SYN (a client port
	 * reused while the old flow is in the table) and on every UDP packet:
	 * a UDP flow has no SYN, and a short one (a DNS query) reusing a
	 * client port whose old flow's reverse entry is gone would otherwise
	 * lose its one answer. The lookup also keeps the entry recently used
	 * in the LRU's eyes. TCP's established packets skip it (one hash
	 * lookup, a sixth of their cost). */
	if (cur && cur->svc_id == svc.id &&
	    (p->proto == IPPROTO_UDP || syn || lb_since(now, cur->last_seen) > LB_CT_REFRESH_NS) &&
	    lb_rev_ensure(&fk, cur) == LB_REV_TAKEN)
		cur = NULL;
	if (cur && cur->svc_id == svc.id) {
		if (closing && !(cur->flags & LB_CT_CLOSING)) {
			cur->flags |= LB_CT_CLOSING;
			cur->last_seen = now;
		} else if (lb_since(now, cur->last_seen) > LB_CT_REFRESH_NS) {
			cur->last_seen = now;
			/* Look the next hop up again, so a changed route or
			 * neighbour is followed within LB_CT_REFRESH_NS. */
			cur->flags &= ~LB_CT_FIB;
		}
		ct = *cur;
		cache = cur;
		lb_flow_established(&fk, &ct);
	} else {
		enum lb_reason r = lb_new_flow(&svc, &fk, &ct, now);
		if (r == LB_R_DROP_NO_BACKEND && p->proto == IPPROTO_TCP && lb_tcp_reset(ctx, xdp) == 0) {
			lb_svc_count(svc.id, bytes, 0, 1);
			lb_flow_drop_key(&fk, svc.id, LB_R_RESET_NO_BACKEND);
			return lb_exit(ctx, xdp, LB_ACT_TX, LB_R_RESET_NO_BACKEND, 0);
		}
		if (r != LB_R_FWD) {
			lb_svc_count(svc.id, bytes, 0, 1);
			lb_flow_drop_key(&fk, svc.id, r);
			return lb_exit(ctx, xdp, LB_ACT_DROP, r, 0);
		}
		new_flow = 1;
	}

	int snat = (ct.flags & LB_CT_SNAT) != 0;
	__u8 saddr[16];
	if (!snat || !lb_node_addr(p->family, saddr))
		__builtin_memcpy(saddr, p->saddr, 16);
	__be16 sport = snat ? ct.snat_port : p->sport;
	if (lb_xlate(ctx, xdp, p, saddr, ct.baddr, sport, ct.bport)) {
		lb_svc_count(svc.id, bytes, new_flow, 1);
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	}
	lb_svc_count(svc.id, bytes, new_flow, 0);
	if (ct.flags & LB_CT_FIB)
		return lb_fwd_cached(ctx, xdp, p->family, &ct, LB_R_FWD);
	return lb_fwd_cache(ctx, xdp, p->family, saddr, ct.baddr, p->proto, p->ip_len, snat, LB_R_FWD, cache);
}

/* lb_revnat_snat translates a backend's reply to a SNATed flow back to
 * VIP -> client and sends it to the client. */
static __always_inline int lb_revnat_snat(void *ctx, const bool xdp, struct lb_pkt *p)
{
	struct lb_flow_key rk = {};
	lb_flow_key_of(&rk, p);
	struct lb_rev *rvp = bpf_map_lookup_elem(&lb_revnat, &rk);
	if (!rvp || !(rvp->flags & LB_CT_SNAT))
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_PASS, 0);
	/* Replies keep the flow from going idle (lb_snat_stale); written
	 * once per tick, not per packet, to spare the shared cache line. */
	__u32 tick = lb_now() >> LB_REV_TICK_SHIFT;
	if (rvp->last_reply != tick)
		rvp->last_reply = tick;
	struct lb_rev rv = *rvp;
	if (lb_xlate(ctx, xdp, p, rv.vip, rv.client, rv.vport, rv.cport))
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	lb_svc_count(rv.svc_id, ctx_len(ctx, xdp), 0, 0);
	return lb_fwd(ctx, xdp, p->family, rv.vip, rv.client, p->proto, p->ip_len, 1, LB_R_REVNAT);
}

#include "icmp.h"

/* lb_ingress is the whole ingress datapath, on the VLAN-facing interface. */
static __always_inline int lb_ingress(void *ctx, const bool xdp)
{
	ctx_pull(ctx, LB_PULL_LEN, xdp);
	struct lb_pkt p = {};
	int pr = lb_parse(ctx_data(ctx, xdp), ctx_data_end(ctx, xdp), &p);
	if (pr == LB_PARSE_NOT_IP)
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_PASS, 0);
	if (pr == LB_PARSE_MALFORMED)
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_PASS_MALFORMED, 0);

	struct lb_svc_key sk = {};
	__builtin_memcpy(sk.addr, p.daddr, 16);
	if (pr == LB_PARSE_OK) {
		sk.port = p.dport;
		sk.proto = p.proto;
		struct lb_svc *svc = bpf_map_lookup_elem(&lb_services, &sk);
		if (svc)
			return lb_service(ctx, xdp, &p, svc);
		sk.port = 0;
		sk.proto = 0;
	}
	/* ICMPv6: an error quoting a VIP flow is translated like the IPv4
	 * ones; anything else (neighbour discovery, unicast NUD probes to a
	 * VIP, errors of other flows) is the stack's. */
	if (p.family == 6 && p.proto == LB_IPPROTO_ICMPV6) {
		if (p.icmp_err) {
			int mine = 0;
			int r = lb_icmp_err6(ctx, xdp, &p, &mine);
			if (mine)
				return r;
		}
		return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_PASS, 0);
	}
	if (p.icmp_err) {
		int mine = 0;
		int r = lb_icmp_err(ctx, xdp, &p, &mine);
		if (mine)
			return r;
	}
	if (bpf_map_lookup_elem(&lb_services, &sk)) {
		/* A VIP, but no service behind this port or protocol. */
		enum lb_reason r = LB_R_DROP_NO_PORT;
		if (p.frag)
			r = LB_R_DROP_FRAGMENT;
		else if (pr == LB_PARSE_NO_L4 && (p.proto == IPPROTO_TCP || p.proto == IPPROTO_UDP))
			r = LB_R_DROP_MALFORMED;
		lb_flow_drop(&p, LB_FLOW_NO_SVC, r);
		return lb_exit(ctx, xdp, LB_ACT_DROP, r, 0);
	}
	if (pr == LB_PARSE_OK && lb_is_node(p.family, p.daddr))
		return lb_revnat_snat(ctx, xdp, &p);
	return lb_exit(ctx, xdp, LB_ACT_PASS, LB_R_PASS, 0);
}

/* lb_egress reverse-translates replies of flows delivered to local backends
 * without SNAT (pod -> client becomes VIP -> client), TC egress only. */
static __always_inline int lb_egress(struct __sk_buff *skb)
{
	ctx_pull(skb, LB_PULL_LEN, false);
	struct lb_pkt p = {};
	if (lb_parse(ctx_data(skb, false), ctx_data_end(skb, false), &p) != LB_PARSE_OK)
		return TC_ACT_UNSPEC;
	struct lb_flow_key rk = {};
	lb_flow_key_of(&rk, &p);
	struct lb_rev *rvp = bpf_map_lookup_elem(&lb_revnat, &rk);
	if (!rvp || (rvp->flags & LB_CT_SNAT))
		return TC_ACT_UNSPEC;
	struct lb_rev rv = *rvp;
	if (lb_xlate(skb, false, &p, rv.vip, p.daddr, rv.vport, p.dport))
		return lb_exit(skb, false, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	lb_svc_count(rv.svc_id, skb->len, 0, 0);
	lb_count(LB_R_REVNAT);
	return TC_ACT_UNSPEC;
}
