/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing against (data, data_end), shared by XDP and TC. Every header
 * is bounds-checked before it is read. */
#pragma once

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "consts.h"

enum lb_parse {
	LB_PARSE_OK = 0,
	LB_PARSE_NOT_IP,    /* not IPv4 or IPv6: pass untouched */
	LB_PARSE_MALFORMED, /* truncated or bogus L3 header */
	LB_PARSE_NO_L4,     /* IP parsed, no usable L4 (fragment, other proto, truncated) */
};

struct lb_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u16 l4_off; /* from the start of the frame */
	__u16 ip_len; /* IPv4 total length, host order */
	__u8 proto;
	__u8 ttl;
	__u8 frag;      /* any fragment */
	__u8 l4_ok;     /* ports valid */
	__u8 tcp_flags; /* SYN/ACK/FIN/RST byte for TCP */
	__u8 family;    /* 4 or 6 */
	/* ICMP errors (destination unreachable, incl. fragmentation needed;
	 * time exceeded; parameter problem): the embedded packet's tuple. */
	__u8 icmp_err;
	__u8 in_proto;
	__be16 in_sport;
	__be16 in_dport;
	__u8 in_saddr[16];
	__u8 in_daddr[16];
};

#define LB_ICMP_DEST_UNREACH 3
#define LB_ICMP_TIME_EXCEEDED 11
#define LB_ICMP_PARAMETERPROB 12

static __always_inline void lb_v4mapped(__u8 *out, __be32 a)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &a, 4);
}

/* lb_family tells a v4-mapped address (4) from an IPv6 one (6). */
static __always_inline __u8 lb_family(const __u8 *addr)
{
	__u32 w[3];
	__builtin_memcpy(w, addr, 12);
	return (w[0] | w[1]) == 0 && w[2] == bpf_htonl(0xffff) ? 4 : 6;
}

static __always_inline __be32 lb_v4(const __u8 *addr)
{
	__be32 a;
	__builtin_memcpy(&a, addr + 12, 4);
	return a;
}

#define LB_NEXTHDR_FRAGMENT 44
#define LB_NEXTHDR_ICMPV6 58
#define LB_ICMPV6_DEST_UNREACH 1
#define LB_ICMPV6_PARAMPROB 4 /* 1..4: unreachable, packet too big, time exceeded, parameter problem */

/* lb_ports reads the ports of a TCP or UDP header at l4. */
static __always_inline int lb_ports(void *l4, void *data_end, __u8 proto, struct lb_pkt *p)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return LB_PARSE_NO_L4;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		p->l4_ok = 1;
		return LB_PARSE_OK;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return LB_PARSE_NO_L4;
		p->sport = uh->source;
		p->dport = uh->dest;
		p->l4_ok = 1;
		return LB_PARSE_OK;
	}
	return LB_PARSE_NO_L4;
}

/* lb_parse_icmp6 fills the quoted tuple of an ICMPv6 error (type 1-4:
 * type, code, checksum, 4 bytes of MTU or pointer, then the quoted IPv6
 * header and 8 bytes of its L4) whose quoted packet is TCP or UDP without
 * extension headers. Never a usable L4 of its own. */
static __always_inline int lb_parse_icmp6(__u8 *icmp, void *data_end, struct lb_pkt *p)
{
	if ((void *)(icmp + 8 + 40 + 8) > data_end)
		return LB_PARSE_NO_L4;
	if (icmp[0] < LB_ICMPV6_DEST_UNREACH || icmp[0] > LB_ICMPV6_PARAMPROB)
		return LB_PARSE_NO_L4;
	struct ipv6hdr *in = (void *)(icmp + 8);
	if (in->version != 6 || (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
		return LB_PARSE_NO_L4;
	__be16 *ports = (void *)(in + 1);
	__builtin_memcpy(p->in_saddr, &in->saddr, 16);
	__builtin_memcpy(p->in_daddr, &in->daddr, 16);
	p->in_proto = in->nexthdr;
	p->in_sport = ports[0];
	p->in_dport = ports[1];
	p->icmp_err = 1;
	return LB_PARSE_NO_L4;
}

/* lb_parse6 fills p from an IPv6 header. Extension headers are not walked:
 * a VIP packet with one (a fragment above all) has no usable L4 and gets the
 * VIP's defined drop; everything else passes. */
static __always_inline int lb_parse6(struct ipv6hdr *ip6, void *data_end, struct lb_pkt *p)
{
	if ((void *)(ip6 + 1) > data_end)
		return LB_PARSE_MALFORMED;
	if (ip6->version != 6)
		return LB_PARSE_MALFORMED;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	p->family = 6;
	p->proto = ip6->nexthdr;
	p->ttl = ip6->hop_limit;
	p->ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	p->l4_off = sizeof(struct ethhdr) + sizeof(*ip6);
	if (ip6->nexthdr == LB_NEXTHDR_FRAGMENT) {
		p->frag = 1;
		return LB_PARSE_NO_L4;
	}
	if (ip6->nexthdr == LB_NEXTHDR_ICMPV6)
		return lb_parse_icmp6((void *)(ip6 + 1), data_end, p);
	return lb_ports(ip6 + 1, data_end, ip6->nexthdr, p);
}

/* lb_parse fills p from an Ethernet + IPv4 or IPv6 frame. */
static __always_inline int lb_parse(void *data, void *data_end, struct lb_pkt *p)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return LB_PARSE_NOT_IP;
	if (eth->h_proto == bpf_htons(LB_ETH_P_IPV6))
		return lb_parse6((void *)(eth + 1), data_end, p);
	if (eth->h_proto != bpf_htons(LB_ETH_P_IP))
		return LB_PARSE_NOT_IP;
	p->family = 4;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return LB_PARSE_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return LB_PARSE_MALFORMED;
	__u32 hlen = ip->ihl * 4;
	__u16 tot = bpf_ntohs(ip->tot_len);
	if (tot < hlen)
		return LB_PARSE_MALFORMED;
	/* IP options are allowed: the L4 header starts after them. */
	if ((void *)ip + hlen > data_end)
		return LB_PARSE_MALFORMED;

	lb_v4mapped(p->saddr, ip->saddr);
	lb_v4mapped(p->daddr, ip->daddr);
	p->proto = ip->protocol;
	p->ttl = ip->ttl;
	p->ip_len = tot;
	p->l4_off = sizeof(*eth) + hlen;
	p->frag = (ip->frag_off & bpf_htons(LB_IP_MF | LB_IP_OFFSET)) != 0;
	if (p->frag)
		return LB_PARSE_NO_L4;

	void *l4 = (void *)ip + hlen;
	if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)
		return lb_ports(l4, data_end, ip->protocol, p);
	if (ip->protocol == IPPROTO_ICMP) {
		/* type, code, checksum, 4 bytes unused/MTU, then the embedded
		 * IPv4 header (options not supported) and 8 bytes of its L4. */
		__u8 *icmp = l4;
		if ((void *)(icmp + 8 + 20 + 8) > data_end)
			return LB_PARSE_NO_L4;
		if (icmp[0] != LB_ICMP_DEST_UNREACH && icmp[0] != LB_ICMP_TIME_EXCEEDED &&
		    icmp[0] != LB_ICMP_PARAMETERPROB)
			return LB_PARSE_NO_L4;
		struct iphdr *in = (void *)(icmp + 8);
		if (in->version != 4 || in->ihl != 5 ||
		    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP))
			return LB_PARSE_NO_L4;
		__be16 *ports = (void *)(in + 1);
		lb_v4mapped(p->in_saddr, in->saddr);
		lb_v4mapped(p->in_daddr, in->daddr);
		p->in_proto = in->protocol;
		p->in_sport = ports[0];
		p->in_dport = ports[1];
		p->icmp_err = 1;
		return LB_PARSE_NO_L4;
	}
	return LB_PARSE_NO_L4;
}
