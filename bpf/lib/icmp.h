/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ICMP errors that belong to VIP flows (fragmentation needed above all, so
 * path-MTU discovery works through lbd): the outer and the embedded packet
 * are translated like the flow they quote, and sent on. */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include "lb.h"

/* lb_rewrite_icmp4 rewrites the outer addresses and the embedded packet's
 * addresses and ports, fixing the outer IPv4, embedded IPv4 and ICMP
 * checksums (the embedded L4 checksum is left alone: it covers data that
 * ICMP truncates, and stacks do not check it). */
static __always_inline int lb_rewrite_icmp4(void *ctx, const bool xdp, const struct lb_pkt *p,
					    __be32 osaddr, __be32 odaddr, __be32 isaddr, __be32 idaddr,
					    __be16 isport, __be16 idport)
{
	__be32 oo[2], on[2] = {osaddr, odaddr};
	if (lb_rewrite_addrs4(ctx, xdp, oo, on))
		return -1;
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);

	__u32 off = p->l4_off;
	if (off > sizeof(struct ethhdr) + 60)
		return -1;
	__u8 *icmp = data + off;
	if ((void *)(icmp + 8 + 20 + 8) > data_end)
		return -1;
	struct iphdr *in = (void *)(icmp + 8);
	__be16 *ports = (void *)(in + 1);

	__be32 io[4], inew[4];
	io[0] = in->saddr;
	io[1] = in->daddr;
	__builtin_memcpy(&io[2], ports, 4);
	__builtin_memcpy(&io[3], (__u8 *)in + 8, 4); /* ttl, protocol, check */

	__be32 iaddr_o[2] = {in->saddr, in->daddr};
	__be32 iaddr_n[2] = {isaddr, idaddr};
	in->saddr = isaddr;
	in->daddr = idaddr;
	in->check = lb_csum_update(in->check, iaddr_o, iaddr_n, sizeof(iaddr_o));
	ports[0] = isport;
	ports[1] = idport;

	inew[0] = in->saddr;
	inew[1] = in->daddr;
	__builtin_memcpy(&inew[2], ports, 4);
	__builtin_memcpy(&inew[3], (__u8 *)in + 8, 4);

	__u16 *csum = (__u16 *)(icmp + 2);
	*csum = lb_csum_update(*csum, io, inew, sizeof(io));
	return 0;
}

/* lb_icmp_err handles an ICMP error on the VLAN interface. Two shapes
 * belong to lbd:
 *  - toward a VIP, quoting VIP -> client (the client side could not take a
 *    reply, e.g. fragmentation needed): sent to the flow's backend, as if
 *    the backend's own packet had caused it;
 *  - toward the node, quoting node:snat -> backend (the backend side could
 *    not take a SNATed packet): sent to the client, quoting client -> VIP.
 * Sets *mine to 0 when the error is not lbd's (a return code cannot say
 * it: TC_ACT_UNSPEC is -1). */
static __always_inline int lb_icmp_err(void *ctx, const bool xdp, struct lb_pkt *p, int *mine)
{
	*mine = 1;
	struct lb_flow_key k = {.proto = p->in_proto};
	/* Shape 1: the quoted packet is a reply VIP -> client; its flow is
	 * client -> VIP in the connection table. */
	__builtin_memcpy(k.saddr, p->in_daddr, 16);
	__builtin_memcpy(k.daddr, p->in_saddr, 16);
	k.sport = p->in_dport;
	k.dport = p->in_sport;
	struct lb_ct *ctp = bpf_map_lookup_elem(&lb_conntrack, &k);
	if (ctp && lb_v4(p->daddr) == lb_v4(p->in_saddr)) {
		struct lb_ct ct = *ctp;
		int snat = (ct.flags & LB_CT_SNAT) != 0;
		__be32 be = lb_v4(ct.baddr);
		__be32 src = snat ? node_ip4 : lb_v4(p->saddr);
		__be32 to = snat ? node_ip4 : lb_v4(p->in_daddr);
		__be16 toport = snat ? ct.snat_port : p->in_dport;
		if (lb_rewrite_icmp4(ctx, xdp, p, src, be, be, to, ct.bport, toport))
			return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
		__u8 s16[16];
		lb_v4mapped(s16, src);
		return lb_fwd(ctx, xdp, 4, s16, ct.baddr, IPPROTO_ICMP, p->ip_len, snat, LB_R_ICMP_FWD);
	}
	/* Shape 2: toward the node, quoting a SNATed packet to a backend; the
	 * reply tuple of that packet is the reverse-NAT key. */
	if (node_ip4 == 0 || lb_v4(p->daddr) != node_ip4 || lb_v4(p->in_saddr) != node_ip4)
		return *mine = 0;
	__builtin_memcpy(k.saddr, p->in_daddr, 16);
	__builtin_memcpy(k.daddr, p->in_saddr, 16);
	k.sport = p->in_dport;
	k.dport = p->in_sport;
	struct lb_rev *rvp = bpf_map_lookup_elem(&lb_revnat, &k);
	if (!rvp || !(rvp->flags & LB_CT_SNAT))
		return *mine = 0;
	struct lb_rev rv = *rvp;
	__be32 client = lb_v4(rv.client);
	if (lb_rewrite_icmp4(ctx, xdp, p, lb_v4(p->saddr), client, client, lb_v4(rv.vip), rv.cport, rv.vport))
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	return lb_fwd(ctx, xdp, 4, p->saddr, rv.client, IPPROTO_ICMP, p->ip_len, 0, LB_R_ICMP_FWD);
}

/* lb_rewrite_icmp6 is lb_rewrite_icmp4 for ICMPv6: no IP header checksum,
 * but the ICMPv6 checksum covers the outer addresses (pseudo-header) as well
 * as the quoted packet, so both changes are folded into it. The quoted L4
 * checksum is left alone, as for IPv4. */
static __always_inline int lb_rewrite_icmp6(void *ctx, const bool xdp, const __u8 *osaddr, const __u8 *odaddr,
					    const __u8 *isaddr, const __u8 *idaddr, __be16 isport, __be16 idport)
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u8 *icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 8 + 40 + 8) > data_end)
		return -1;
	struct ipv6hdr *in = (void *)(icmp + 8);
	__be16 *ports = (void *)(in + 1);
	__u16 *csum = (__u16 *)(icmp + 2);

	__be32 o[8], n[8];
	__builtin_memcpy(o, &ip6->saddr, 32);
	__builtin_memcpy(n, osaddr, 16);
	__builtin_memcpy(&n[4], odaddr, 16);
	__builtin_memcpy(&ip6->saddr, n, 32);
	__u16 c = lb_csum_update(*csum, o, n, 32);

	__builtin_memcpy(o, &in->saddr, 32);
	__builtin_memcpy(n, isaddr, 16);
	__builtin_memcpy(&n[4], idaddr, 16);
	__builtin_memcpy(&in->saddr, n, 32);
	c = lb_csum_update(c, o, n, 32);

	__be32 op, np;
	__builtin_memcpy(&op, ports, 4);
	ports[0] = isport;
	ports[1] = idport;
	__builtin_memcpy(&np, ports, 4);
	*csum = lb_csum_update(c, &op, &np, 4);
	return 0;
}

/* lb_icmp_err6 is lb_icmp_err for ICMPv6 errors (packet too big above all:
 * IPv6 routers never fragment, so path-MTU discovery of a VIP flow depends
 * on it), the same two shapes:
 *  - toward a VIP, quoting VIP -> client: sent to the flow's backend, as if
 *    the backend's own packet had caused it;
 *  - toward the node, quoting node:snat -> backend: sent to the client,
 *    quoting client -> VIP. */
static __always_inline int lb_icmp_err6(void *ctx, const bool xdp, struct lb_pkt *p, int *mine)
{
	*mine = 1;
	/* Both shapes quote a packet whose reverse is the key: the client's
	 * flow (shape 1) or the backend's reply (shape 2, reverse table). */
	struct lb_flow_key k = {.proto = p->in_proto};
	__builtin_memcpy(k.saddr, p->in_daddr, 16);
	__builtin_memcpy(k.daddr, p->in_saddr, 16);
	k.sport = p->in_dport;
	k.dport = p->in_sport;
	__u8 node[16];
	int have_node = lb_node_addr(6, node);
	struct lb_ct *ctp = bpf_map_lookup_elem(&lb_conntrack, &k);
	if (ctp && lb_addr_eq(p->daddr, p->in_saddr)) {
		int snat = (ctp->flags & LB_CT_SNAT) != 0;
		if (snat && !have_node)
			return *mine = 0;
		__u8 be[16];
		__builtin_memcpy(be, ctp->baddr, 16);
		__be16 bport = ctp->bport;
		__be16 toport = snat ? ctp->snat_port : p->in_dport;
		if (!snat)
			__builtin_memcpy(node, p->saddr, 16); /* outer source kept */
		const __u8 *to = snat ? node : p->in_daddr;
		if (lb_rewrite_icmp6(ctx, xdp, node, be, be, to, bport, toport))
			return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
		return lb_fwd(ctx, xdp, 6, node, be, LB_IPPROTO_ICMPV6, p->ip_len, snat, LB_R_ICMP_FWD);
	}
	if (!have_node || !lb_addr_eq(p->daddr, node) || !lb_addr_eq(p->in_saddr, node))
		return *mine = 0;
	struct lb_rev *rvp = bpf_map_lookup_elem(&lb_revnat, &k);
	if (!rvp || !(rvp->flags & LB_CT_SNAT))
		return *mine = 0;
	struct lb_rev rv = *rvp;
	if (lb_rewrite_icmp6(ctx, xdp, p->saddr, rv.client, rv.client, rv.vip, rv.cport, rv.vport))
		return lb_exit(ctx, xdp, LB_ACT_DROP, LB_R_DROP_MALFORMED, 0);
	return lb_fwd(ctx, xdp, 6, p->saddr, rv.client, LB_IPPROTO_ICMPV6, p->ip_len, 0, LB_R_ICMP_FWD);
}
