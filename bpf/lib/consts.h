/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Load-time configuration. Set from Go through spec.Variables before load, so
 * one compiled object serves every node and the verifier prunes disabled
 * branches. */
#pragma once

#include <linux/types.h>

/* Node's address on the VLAN interface, network order: the SNAT source for
 * remote backends under externalTrafficPolicy: Cluster. */
volatile const __be32 node_ip4 = 0;
/* The same for IPv6 (all zero: no IPv6 SNAT source). */
volatile const __u32 node_ip6[4] = {}; /* network order */
/* Maglev table size per service (a prime); index = id * maglev_size + slot. */
volatile const __u32 maglev_size = 1021;
/* SNAT source ports for remote backends, host order, inclusive. Keep them out
 * of net.ipv4.ip_local_port_range so node sockets never collide. */
volatile const __u16 snat_port_min = 61000;
volatile const __u16 snat_port_max = 65535;
/* Deliver to local pods with bpf_redirect instead of the kernel stack. Faster,
 * but skips netfilter and anything a CNI enforces on the forward path: opt-in. */
volatile const __u8 fast_local_redirect = 0;
/* A flow idle this long (ns, no packet either way) gives up its SNAT port
 * when a new flow needs that port (lb_snat_stale): UDP never closes, so
 * without it every UDP flow would hold its port until LRU eviction. Set
 * from datapath.Options (UDPIdleTimeout, TCPIdleTimeout); neither is under
 * LB_CT_REFRESH_NS (Go checks), so a flow whose port was reclaimed
 * notices it on its next packet (lb_rev_ensure). */
volatile const __u64 udp_idle_ns = 30000000000ULL;
volatile const __u64 tcp_idle_ns = 10800000000000ULL;

#define LB_ETH_P_IP 0x0800
#define LB_ETH_P_IPV6 0x86DD
#define LB_IP_MF 0x2000
#define LB_IP_OFFSET 0x1FFF
/* SNAT port probes per new flow (see lb_snat_claim): with a quarter of a
 * backend's ports taken, all 32 fail with probability 0.25^32 (~1e-19);
 * the old 8 failed at 0.25^8 (~1.5e-5), a few drops per 100 000 flows. */
#define LB_SNAT_TRIES 32
#define LB_SNAT_SEED 0x5a17c0de
#define LB_CT_REFRESH_NS 1000000000ULL
/* A closed flow's SNAT port and client tuple are reused after this long
 * (the 2*MSL of TIME_WAIT is on the client; 1 s covers late segments). */
#define LB_CT_REUSE_NS 1000000000ULL
/* lb_rev.last_reply counts lb_now() >> LB_REV_TICK_SHIFT (2^30 ns, about
 * 1.07 s): 32 bits of it last 146 years. */
#define LB_REV_TICK_SHIFT 30
