// SPDX-License-Identifier: Apache-2.0

// Package lab builds a cluster-shaped network out of network namespaces on
// one machine, runs real lbd daemons in it and drives traffic through it.
//
// The topology of one lab (every name carries a random run prefix such as
// "lbd-3f9a", so two labs never collide):
//
//	                      lbd-3f9a-sw  (bridge br0 = the VLAN 10.20.0.0/22)
//	          ┌──────────────┬──────┴───────┬──────────────┐
//	   lbd-3f9a-n1     lbd-3f9a-n2     lbd-3f9a-n3     lbd-3f9a-c1
//	 eth0 10.20.0.51 eth0 10.20.0.52 eth0 10.20.0.53  eth0 10.20.0.200
//	  p1-1   p1-2     p2-1   p2-2     p3-1   p3-2       (client)
//	    │      │        │      │        │      │
//	lbd-3f9a-n1p1 …  pods with eth0 10.241.N.(10+i)/32, default via 10.241.N.1
//
// Node namespaces forward IPv4 and reach the other nodes' pod /24s through
// their InternalIPs, the way a CNI in direct-routing mode does; the
// node-side veth of each pod carries 10.241.N.1/32 and a /32 route to the
// pod (the Cilium/Calico per-pod veth shape).
//
// With Options.IPv6 every host also gets an IPv6 address derived from its
// IPv4 one (VLAN6 fd00:20::/64, node1 fd00:20::51; pods fd00:241:N::X/128
// behind fd00:241:N::1), nodes forward IPv6 and route the other nodes'
// pod /64s, and the manifest gains a dual-stack pool and Services
// (ipv6.go). AddSecondLink gives a node a second interface with a client
// of its own, for announcing on an interface other than eth0
// (second_link.go).
//
// Everything the lab changes lives in the namespaces it creates: the bridge
// is in the switch namespace, sysctls are set inside lab namespaces only, and
// nothing is ever added to the machine's own network namespace. Lab.Close
// stops every process and removes every namespace, pin directory and file
// the lab made; Clean removes what a crashed run left behind.
//
// Processes (lbd, podserver) are started inside a node or pod network
// namespace by forking from an OS thread that has entered it, not with
// "ip netns exec": ip netns exec also unshares the mount namespace and
// remounts /sys, which hides the bpffs at /sys/fs/bpf, and lbd's pinned maps
// must outlive the process for restart scenarios.
//
// Running it:
//
//	scripts/lab-demo.sh            # build lbd + podserver, run "lab demo"
//	scripts/lab-demo.sh up         # keep a lab until Ctrl-C, to poke at it
//	scripts/lab-demo.sh clean      # remove leftovers of crashed runs
//	go test ./test/vm/ -run TestPrivileged -v
//
// TestPrivilegedLabTopology checks the plumbing without lbd,
// TestPrivilegedLabFakeLBD checks the harness against internal/fakelbd (a
// user-space stand-in with lbd's command line), and
// TestPrivilegedLabEndToEnd runs the real daemon. The datapath and fault
// scenarios (traffic policies, affinity, source ranges, restarts, churn, a
// full connection table, a node removed) and the soak (RunSoak, "lab
// soak") are described in docs/lab-scenarios.md.
//
// All of it needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF for lbd).
// Nothing here is safe for concurrent use unless a method says so.
package lab
