// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
)

// The lab: one node (node1) on a VLAN 10.20.0.0/22, seen from inside a
// network namespace that the test owns. BPF_PROG_TEST_RUN takes no
// interface of its own: bpf_fib_lookup reads the routes and neighbours of
// the namespace the caller runs in, and the ingress ifindex in the context
// must name a device there. So every Program.Run happens inside lab.ns.
var (
	labNodeIP  = netip.MustParseAddr("10.20.0.51")  // node1, lan0
	labNode2IP = netip.MustParseAddr("10.20.0.52")  // node2, next hop for its pods
	labClient  = netip.MustParseAddr("10.20.0.200") // a client on the VLAN
	labPodNet2 = netip.MustParsePrefix("10.241.2.0/24")
	labLocalEP = netip.MustParseAddr("10.241.1.10") // pod on node1 (pod0)

	labLan0MAC   = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x51}
	labNode2MAC  = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x52}
	labClientMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x02, 0x00}
)

type lab struct {
	ns   *testutil.NetNS
	lan0 int // ifindex of the VLAN-facing interface
	pod0 int // ifindex of the local pod's host-side veth
}

// newLab builds the namespace: veth lan0 (10.20.0.51/22) / lan1, veth
// pod0 / pod0p with a /32 route to the local pod, a route to node2's pod
// CIDR via node2, permanent neighbours for node2 and the client, and IPv4
// forwarding on (bpf_fib_lookup answers FWD_DISABLED without it, as the
// kernel would not forward either; lbd's nodes forward).
func newLab(tb testing.TB) *lab {
	tb.Helper()
	l := &lab{ns: testutil.NewNetNS(tb)}
	err := l.ns.Do(func() error {
		lan0 := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "lan0", HardwareAddr: labLan0MAC}, PeerName: "lan1"}
		pod0 := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pod0"}, PeerName: "pod0p"}
		for _, v := range []*netlink.Veth{lan0, pod0} {
			if err := netlink.LinkAdd(v); err != nil {
				return fmt.Errorf("add veth %s: %w", v.Name, err)
			}
		}
		for _, name := range []string{"lan0", "lan1", "pod0", "pod0p"} {
			link, err := netlink.LinkByName(name)
			if err != nil {
				return fmt.Errorf("find %s: %w", name, err)
			}
			if err := netlink.LinkSetUp(link); err != nil {
				return fmt.Errorf("set %s up: %w", name, err)
			}
			switch name {
			case "lan0":
				l.lan0 = link.Attrs().Index
			case "pod0":
				l.pod0 = link.Attrs().Index
			}
		}
		addr, _ := netlink.ParseAddr("10.20.0.51/22")
		if err := netlink.AddrAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.lan0}}, addr); err != nil {
			return fmt.Errorf("add address to lan0: %w", err)
		}
		routes := []netlink.Route{
			{LinkIndex: l.pod0, Dst: ipNet(netip.PrefixFrom(labLocalEP, 32)), Scope: netlink.SCOPE_LINK},
			{LinkIndex: l.lan0, Dst: ipNet(labPodNet2), Gw: labNode2IP.AsSlice()},
		}
		for _, r := range routes {
			if err := netlink.RouteAdd(&r); err != nil {
				return fmt.Errorf("add route %s: %w", r.Dst, err)
			}
		}
		for _, n := range []struct {
			ip  netip.Addr
			mac net.HardwareAddr
		}{{labNode2IP, labNode2MAC}, {labClient, labClientMAC}} {
			err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.lan0, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: n.ip.AsSlice(), HardwareAddr: n.mac})
			if err != nil {
				return fmt.Errorf("add neighbour %s: %w", n.ip, err)
			}
		}
		// /proc/sys/net resolves to the opener's namespace: this is the
		// lab's, never the machine's.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding in the lab: %w", err)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// xdpMd is struct xdp_md (include/uapi/linux/bpf.h), the XDP test_run
// context. The kernel wants data_end == len(data).
type xdpMd struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}

// skBuff is the head of struct __sk_buff up to ifindex: test_run accepts a
// shorter context (the rest is zero) and uses ifindex to set skb->dev.
type skBuff struct {
	Len, PktType, Mark, QueueMapping, Protocol uint32
	VlanPresent, VlanTci, VlanProto, Priority  uint32
	IngressIfindex, Ifindex                    uint32
}

// runCtx returns the test_run context for a program entering on ifindex.
func runCtx(xdp bool, ifindex int, n int) any {
	if xdp {
		return xdpMd{DataEnd: uint32(n), IngressIfindex: uint32(ifindex)}
	}
	return skBuff{Ifindex: uint32(ifindex)}
}

// run runs prog once on a copy of in, inside the lab, as if received on
// lan0, and returns the verdict and the frame as the program left it.
// Repeat is 1: with more, the kernel reruns the program on the buffer the
// previous run rewrote.
func (l *lab) run(prog *ebpf.Program, xdp bool, in []byte) (uint32, []byte, error) {
	opts := &ebpf.RunOptions{
		Data:    in,
		DataOut: make([]byte, len(in)+256),
		Context: runCtx(xdp, l.lan0, len(in)),
		Repeat:  1,
	}
	var ret uint32
	err := l.ns.Do(func() error {
		var err error
		ret, err = prog.Run(opts)
		return err
	})
	return ret, opts.DataOut, err
}
