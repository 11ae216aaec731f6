/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP reset for a connection to a service with no ready backend: the client
 * learns at once that nobody serves the port, instead of retrying SYNs into
 * a black hole (what kube-proxy's REJECT rule does too). */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ctx.h"
#include "csum.h"

#define LB_TCP_FIN 0x01
#define LB_TCP_SYN 0x02
#define LB_TCP_RST 0x04
#define LB_TCP_ACK 0x10

struct lb_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

/* lb_tcp_reset turns the TCP segment in ctx into the RST answering it and
 * returns 0, or -1 when it cannot (the caller drops). Only plain 20-byte
 * IPv4 headers are answered. */
static __always_inline int lb_tcp_reset(void *ctx, const bool xdp)
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	if ((void *)(th + 1) > data_end || ip->ihl != 5)
		return -1;
	__u8 flags = ((__u8 *)th)[13];
	if (flags & LB_TCP_RST)
		return -1; /* never answer a reset */
	__u32 doff = th->doff * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	if (doff < 20 || tot < 20 + doff)
		return -1;
	__u32 payload = tot - 20 - doff;

	struct tcphdr rst = {};
	rst.source = th->dest;
	rst.dest = th->source;
	rst.doff = 5;
	if (flags & LB_TCP_ACK) {
		rst.seq = th->ack_seq;
		rst.rst = 1;
	} else {
		__u32 seg = payload + ((flags & LB_TCP_SYN) ? 1 : 0) + ((flags & LB_TCP_FIN) ? 1 : 0);
		rst.ack_seq = bpf_htonl(bpf_ntohl(th->seq) + seg);
		rst.rst = 1;
		rst.ack = 1;
	}
	struct iphdr nip = {};
	nip.version = 4;
	nip.ihl = 5;
	nip.ttl = 64;
	nip.protocol = IPPROTO_TCP;
	nip.tot_len = bpf_htons(40);
	nip.saddr = ip->daddr;
	nip.daddr = ip->saddr;
	nip.check = lb_csum_fold((__u32)bpf_csum_diff(NULL, 0, (__be32 *)&nip, sizeof(nip), 0));
	struct lb_pseudo4 ph = {.saddr = nip.saddr, .daddr = nip.daddr, .proto = IPPROTO_TCP, .len = bpf_htons(20)};
	__s64 sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&rst, sizeof(rst), (__u32)sum);
	rst.check = lb_csum_fold((__u32)sum);

	__u8 mac[ETH_ALEN];
	__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	__builtin_memcpy(ip, &nip, sizeof(nip));
	__builtin_memcpy(th, &rst, sizeof(rst));

	/* Cut everything after the 54 bytes of Ethernet + IPv4 + TCP. */
	__u32 len = ctx_len(ctx, xdp), want = sizeof(*eth) + 40;
	if (xdp) {
		if (len > want && bpf_xdp_adjust_tail(ctx, -(int)(len - want)))
			return -1;
	} else if (len > want && bpf_skb_change_tail(ctx, want, 0)) {
		return -1;
	}
	return 0;
}
