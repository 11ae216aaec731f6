/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A small ctx shim so one datapath serves XDP and TC. Every helper takes the
 * program's context and a compile-time constant `xdp`; after inlining, clang
 * drops the branch for the other hook, so the verifier never sees it. */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#ifndef __cplusplus
typedef _Bool bool;
#define true 1
#define false 0
#endif

/* ctx_load reads a u32 field of the context at a constant offset. Written
 * in asm so clang cannot hoist "ctx + offset" out of the XDP and TC
 * branches and dereference a modified ctx pointer, which the verifier
 * rejects. */
#define ctx_load(ctx, off)                                                        \
	({                                                                        \
		__u64 __v;                                                        \
		asm volatile("%0 = *(u32 *)(%1 + %2)" : "=r"(__v) : "r"(ctx), "i"(off)); \
		__v;                                                              \
	})

static __always_inline void *ctx_data(void *ctx, const bool xdp)
{
	if (xdp)
		return (void *)(long)ctx_load(ctx, __builtin_offsetof(struct xdp_md, data));
	return (void *)(long)ctx_load(ctx, __builtin_offsetof(struct __sk_buff, data));
}

static __always_inline void *ctx_data_end(void *ctx, const bool xdp)
{
	if (xdp)
		return (void *)(long)ctx_load(ctx, __builtin_offsetof(struct xdp_md, data_end));
	return (void *)(long)ctx_load(ctx, __builtin_offsetof(struct __sk_buff, data_end));
}

static __always_inline __u32 ctx_ifindex(void *ctx, const bool xdp)
{
	if (xdp)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

static __always_inline __u32 ctx_len(void *ctx, const bool xdp)
{
	if (xdp)
		return (__u32)(((struct xdp_md *)ctx)->data_end - ((struct xdp_md *)ctx)->data);
	return ((struct __sk_buff *)ctx)->len;
}

/* ctx_pull makes the first len bytes linear (TC only; XDP frames are). */
static __always_inline void ctx_pull(void *ctx, __u32 len, const bool xdp)
{
	if (!xdp)
		bpf_skb_pull_data((struct __sk_buff *)ctx, len);
}

/* Verdicts the core returns; the entry programs map them to hook codes. */
enum lb_action {
	LB_ACT_PASS = 0, /* continue to the stack */
	LB_ACT_DROP,
	LB_ACT_TX,       /* out of the ingress interface (MACs rewritten) */
	LB_ACT_REDIRECT, /* to another interface (MACs rewritten) */
	LB_ACT_REDIRECT_NEIGH, /* TC only: let the kernel resolve the next hop */
};
