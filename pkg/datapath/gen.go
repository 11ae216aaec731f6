// SPDX-License-Identifier: Apache-2.0

package datapath

// The generated lb_bpfel.go and lb_bpfel.o are committed, so building lbd
// needs no clang; `make generate` rebuilds them.
//go:generate go tool bpf2go -tags linux -target bpfel -cc ${BPF_CLANG} -cflags ${BPF_CFLAGS} -type lb_svc_key -type lb_svc -type lb_backend -type lb_flow_key -type lb_ct -type lb_rev -type lb_affinity_key -type lb_affinity_entry -type lb_src_key -type lb_svc_stats -type lb_reason -type lb_svc_flags -type lb_backend_flags -type lb_ct_flags -type lb_flow_event -type lb_flow_type -type lb_flow_flags -type lb_flow_stat lb ../../bpf/lb.c -- -I../../bpf/include -I../../bpf/lib
