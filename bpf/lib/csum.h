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
 * `from` replaced by `to` (n bytes each, a multiple of 4). */
static __always_inline __u16 lb_csum_update(__u16 check, __be32 *from, __be32 *to, __u32 n)
{
	__s64 d = bpf_csum_diff(from, n, to, n, (__u32)(__u16)~check);
	return lb_csum_fold((__u32)d);
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
