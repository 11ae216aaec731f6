// SPDX-License-Identifier: Apache-2.0

// Package bench compares lbd with kube-proxy's iptables and nftables
// modes on one netns lab (package lab), for `make bench`. It is a report,
// not a pass/fail test: every figure is measured in the run that prints it.
// The command is test/bench/cmd/lbd-bench (run as root, from the
// repository root: go run ./test/bench/cmd/lbd-bench).
//
// Control plane (ControlPlane): the time to program N services (10
// backends each) with lbd's datapath (datapath.New + Sync of a synthetic
// model.State) against iptables-restore of the same services written the
// way kube-proxy's iptables mode writes them (KUBE-SERVICES → KUBE-EXT →
// KUBE-SVC with "statistic --mode random" → KUBE-SEP with DNAT,
// KUBE-MARK-MASQ, KUBE-POSTROUTING MASQUERADE), and nft -f of
// kube-proxy's nftables shape (service-ips verdict map → external chain →
// service chain with "numgen random mod N vmap" → endpoint chains with
// DNAT); then the time of one more service. iptables and nft run in
// throwaway namespaces only. nf_tables' commit work grows with the square
// of a transaction on this kernel (one 10 000-service transaction stalls
// it for minutes), so nft loads N services in transactions of
// NftChunkSize, and single transactions only as far as a prediction from
// two smaller steps stays within a budget.
//
// Datapath (Datapath): the lab has five nodes. node1 runs lbd, node2 has
// the iptables rules, node3 the nftables rules, each with the same service
// count; the VIP under test (last in iptables order) has the pods of node4
// and node5 as backends, so every mode forwards and SNATs the same way
// (externalTrafficPolicy: Cluster). The client's permanent neighbour entry
// for the VIP selects the mode under test. For 1 and N services, each
// repetition runs every mode in turn (rotating the order): new TCP
// connections/s (wrk with "Connection: close", or the Go load generator),
// keep-alive requests/s, and UDP query/answer pairs/s, each for a fixed
// duration, with machine-wide CPU per operation from /proc/stat. Pods and
// client set net.ipv4.tcp_max_tw_buckets=0 so closed connections never
// block a reused 4-tuple.
//
// Network safety: iptables and nft only ever run on threads that entered a
// namespace this package (or the lab) created; traffic only flows between
// lab namespaces, and every namespace is removed at the end.
package bench
