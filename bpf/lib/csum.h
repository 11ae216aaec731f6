/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Incremental checksum updates (RFC 1624). */
#pragma once

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 lb_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* lb_csum_update returns checksum `check` updated for the 4-byte words
 * `from` replaced by `to` (n bytes each, a multiple of 4, a compile-time
 * constant): HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3). One's complement
 * sums do not depend on byte order, so the words are added as they lie in
 * memory. Up to 8 bytes (IPv4 addresses, ports: the per-packet rewrite) it
 * is inline arithmetic, cheaper than a call of the bpf_csum_diff helper;
 * the 32 bytes of IPv6 addresses use the helper, whose inline form does
 * not fit the ingress path's 512-byte stack. */
static __always_inline __u16 lb_csum_update(__u16 check, const __be32 *from, const __be32 *to, __u32 n)
{
	if (n > 8) {
		__s64 d = bpf_csum_diff((__be32 *)from, n, (__be32 *)to, n, (__u32)(__u16)~check);
		return lb_csum_fold((__u32)d);
	}
	__u64 sum = (__u16)~check;
	sum += (__u32)~from[0];
	sum += to[0];
	if (n == 8) {
		sum += (__u32)~from[1];
		sum += to[1];
	}
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return lb_csum_fold((__u32)sum);
}

/* lb_ttl_dec decrements the IPv4 TTL and fixes the header checksum the way
 * the kernel's ip_decrease_ttl does. */
static __always_inline void lb_ttl_dec(__u8 *ttl, __u16 *check)
{
	__u32 c = *check;
	c += bpf_htons(0x0100);
	*check = (__u16)(c + (c >= 0xFFFF));
	*ttl -= 1;
}
