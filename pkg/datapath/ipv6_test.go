// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

var (
	v6Node    = netip.MustParseAddr("fd00::51")
	v6Node2   = netip.MustParseAddr("fd00::52")
	v6Client  = netip.MustParseAddrPort("[fd00::200]:40000")
	v6VIP     = netip.MustParseAddrPort("[fd00:1::1]:80")
	v6Backend = netip.MustParseAddrPort("[fd01:2::10]:8080")
)

// addIPv6 gives the lab's lan0 fd00::51/64, neighbours for node2 and the
// client, and a route to node2's pod prefix: the IPv6 twin of newLab.
func addIPv6(t *testing.T, l *lab) {
	t.Helper()
	err := l.ns.Do(func() error {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable IPv6 forwarding in the lab: %w", err)
		}
		lan0 := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: l.lan0}}
		addr, _ := netlink.ParseAddr("fd00::51/64")
		addr.Flags = 0x02 // IFA_F_NODAD: usable at once
		if err := netlink.AddrAdd(lan0, addr); err != nil {
			return fmt.Errorf("add IPv6 address: %w", err)
		}
		for _, n := range []struct {
			ip  netip.Addr
			mac net.HardwareAddr
		}{{v6Node2, labNode2MAC}, {v6Client.Addr(), labClientMAC}} {
			if err := netlink.NeighAdd(&netlink.Neigh{LinkIndex: l.lan0, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT, IP: n.ip.AsSlice(), HardwareAddr: n.mac}); err != nil {
				return fmt.Errorf("add neighbour %s: %w", n.ip, err)
			}
		}
		r := netlink.Route{LinkIndex: l.lan0, Dst: ipNet(netip.MustParsePrefix("fd01:2::/64")), Gw: v6Node2.AsSlice()}
		if err := netlink.RouteAdd(&r); err != nil {
			return fmt.Errorf("add route: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// v6View decodes the fields the IPv6 checks look at and verifies the TCP
// checksum over the pseudo-header.
func v6View(t *testing.T, b []byte) (src, dst netip.AddrPort, hop uint8, dstMAC net.HardwareAddr) {
	t.Helper()
	if len(b) < 14+40+20 || binary.BigEndian.Uint16(b[12:]) != 0x86dd {
		t.Fatalf("not an IPv6 TCP frame: % x", b)
	}
	ip := b[14:54]
	tcp := b[54:]
	src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), binary.BigEndian.Uint16(tcp[0:]))
	dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), binary.BigEndian.Uint16(tcp[2:]))
	pseudo := make([]byte, 40)
	copy(pseudo, ip[8:40])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(tcp)))
	pseudo[39] = 6
	if s := pkt.Sum(tcp, pkt.Sum(pseudo, 0)); s != 0xffff {
		t.Errorf("TCP checksum invalid (sum %#x)", s)
	}
	return src, dst, ip[7], net.HardwareAddr(b[0:6])
}

func TestPrivilegedPacketIPv6(t *testing.T) {
	testutil.Privileged(t)
	for _, hook := range []struct {
		name string
		xdp  bool
	}{{"xdp", true}, {"tc", false}} {
		t.Run(hook.name, func(t *testing.T) {
			l := newLab(t)
			addIPv6(t, l)
			d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, NodeIP6: v6Node, MaxServices: 16})
			if err != nil {
				t.Fatalf("%+v", err)
			}
			defer d.Close()
			http := model.ServicePort{Name: "http", Port: 80, Protocol: model.TCP}
			st := &model.State{Services: []model.Service{{
				Key: model.ServiceKey{Namespace: "default", Name: "web6"}, VIPs: []netip.Addr{v6VIP.Addr()},
				Ports: []model.ServicePort{http},
				Endpoints: []model.Endpoint{
					{Addr: v6Backend.Addr(), NodeName: "node2", Ready: true, Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}},
					// An IPv4 endpoint of a dual-stack service is never an IPv6 VIP's backend.
					{Addr: netip.MustParseAddr("10.241.2.10"), NodeName: "node2", Ready: true, Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}},
				},
			}}}
			if _, err := d.Sync(st, "node1"); err != nil {
				t.Fatal(err)
			}
			prog := d.objs.LbTcIngress
			if hook.xdp {
				prog = d.objs.LbXdp
			}
			in, err := pkt.IPv6TCP(labClientMAC, labLan0MAC, v6Client, v6VIP)
			if err != nil {
				t.Fatal(err)
			}
			ret, out, err := l.run(prog, hook.xdp, in)
			if err != nil {
				t.Fatal(err)
			}
			if want := sentBack.code(hook.xdp); ret != want {
				r, _ := d.Reasons()
				t.Fatalf("SYN to IPv6 VIP: verdict %d, want %d (reasons %v)", int32(ret), int32(want), r)
			}
			src, dst, hop, mac := v6View(t, out)
			if dst != v6Backend || src.Addr() != v6Node || src.Port() < 61000 || hop != 63 || mac.String() != labNode2MAC.String() {
				t.Fatalf("forwarded %s -> %s hop %d to %s, want %s:61000+ -> %s hop 63 to %s", src, dst, hop, mac, v6Node, v6Backend, labNode2MAC)
			}

			reply, err := pkt.IPv6TCP(labNode2MAC, labLan0MAC, v6Backend, src)
			if err != nil {
				t.Fatal(err)
			}
			ret, out, err = l.run(prog, hook.xdp, reply)
			if err != nil {
				t.Fatal(err)
			}
			if want := sentBack.code(hook.xdp); ret != want {
				t.Fatalf("backend reply: verdict %d, want %d", int32(ret), int32(want))
			}
			src, dst, _, mac = v6View(t, out)
			if src != v6VIP || dst != v6Client || mac.String() != labClientMAC.String() {
				t.Fatalf("reply %s -> %s to %s, want %s -> %s to %s", src, dst, mac, v6VIP, v6Client, labClientMAC)
			}
		})
	}
}
