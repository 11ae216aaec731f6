/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Counters. Every program leaves through lb_count so each packet is counted
 * once, by reason. */
#pragma once

#include "maps.h"

static __always_inline void lb_count(enum lb_reason r)
{
	__u32 k = r;
	__u64 *v = bpf_map_lookup_elem(&lb_reasons, &k);
	if (v)
		*v += 1;
}

static __always_inline void lb_svc_count(__u32 id, __u32 bytes, int new_flow, int drop)
{
	struct lb_svc_stats *s = bpf_map_lookup_elem(&lb_stats, &id);
	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	s->new_flows += new_flow;
	s->drops += drop;
}
