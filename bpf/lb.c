// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* lbd's datapath entry points. One object holds the XDP and the TC programs
 * so they share one set of maps (connection table included). */
//go:build ignore

#include "lb.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* lb_xdp: ingress on the VLAN-facing interface, driver-mode XDP. */
SEC("xdp")
int lb_xdp(struct xdp_md *ctx)
{
	return lb_ingress(ctx, true);
}

/* lb_tc_ingress: the same ingress for devices without native XDP (tcx). */
SEC("tc")
int lb_tc_ingress(struct __sk_buff *skb)
{
	return lb_ingress(skb, false);
}

/* lb_tc_egress: reverse translation of local backends' replies (tcx). */
SEC("tc")
int lb_tc_egress(struct __sk_buff *skb)
{
	return lb_egress(skb);
}

/* Keep the flag enums in BTF so bpf2go generates their Go constants. */
const enum lb_svc_flags *lb_unused_svc_flags __attribute__((unused));
const enum lb_backend_flags *lb_unused_backend_flags __attribute__((unused));
const enum lb_ct_flags *lb_unused_ct_flags __attribute__((unused));
const enum lb_reason *lb_unused_reason __attribute__((unused));
/* The same for the flow events of `lbd flows` (lib/flow.h). */
const struct lb_flow_event *lb_unused_flow_event __attribute__((unused));
const enum lb_flow_type *lb_unused_flow_type __attribute__((unused));
const enum lb_flow_flags *lb_unused_flow_flags __attribute__((unused));
const enum lb_flow_stat *lb_unused_flow_stat __attribute__((unused));
