// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// icmp6Error builds an ICMPv6 error of type typ (2: packet too big, MTU
// 1280) from src to dst quoting the IPv6 packet of the frame quoted.
func icmp6Error(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, typ uint8, quoted []byte) []byte {
	q := quoted[14:]
	b := make([]byte, 14+40+8+len(q))
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x86dd)
	ip := b[14:54]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(8+len(q)))
	ip[6], ip[7] = 58, 64
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	icmp := b[54:]
	icmp[0] = typ
	binary.BigEndian.PutUint32(icmp[4:], 1280)
	copy(icmp[8:], q)
	binary.BigEndian.PutUint16(icmp[2:], ^icmp6Sum(ip, icmp))
	return b
}

func icmp6Sum(ip, icmp []byte) uint16 {
	pseudo := make([]byte, 40)
	copy(pseudo, ip[8:40])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(icmp)))
	pseudo[39] = 58
	return pkt.Sum(icmp, pkt.Sum(pseudo, 0))
}

// addrCmp lets cmp compare netip values.
var addrCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// icmp6View is what the ICMPv6 checks look at.
type icmp6View struct {
	Src, Dst       netip.Addr
	InSrc, InDst   netip.AddrPort
	DstMAC         string
	Hop            uint8
	ChecksumValid  bool
	QuotedPayloadK bool // the quoted bytes after the ports are untouched
}

func viewICMP6(t *testing.T, b, in []byte) icmp6View {
	t.Helper()
	if len(b) < 14+40+8+40+8 || binary.BigEndian.Uint16(b[12:]) != 0x86dd || b[20] != 58 {
		t.Fatalf("not an ICMPv6 frame: % x", b)
	}
	ip, icmp := b[14:54], b[54:]
	q := icmp[8:]
	return icmp6View{
		Src: netip.AddrFrom16([16]byte(ip[8:24])), Dst: netip.AddrFrom16([16]byte(ip[24:40])),
		InSrc:          netip.AddrPortFrom(netip.AddrFrom16([16]byte(q[8:24])), binary.BigEndian.Uint16(q[40:])),
		InDst:          netip.AddrPortFrom(netip.AddrFrom16([16]byte(q[24:40])), binary.BigEndian.Uint16(q[42:])),
		DstMAC:         net.HardwareAddr(b[0:6]).String(),
		Hop:            ip[7],
		ChecksumValid:  icmp6Sum(ip, icmp) == 0xffff,
		QuotedPayloadK: string(q[44:]) == string(in[54+8+44:]),
	}
}

// TestPrivilegedICMPv6Errors: an ICMPv6 error (packet too big) quoting a
// VIP flow is translated like the IPv4 ones, in both directions, with a
// valid ICMPv6 checksum (which covers the outer addresses); other ICMPv6
// goes to the stack untouched.
func TestPrivilegedICMPv6Errors(t *testing.T) {
	testutil.Privileged(t)
	router := netip.MustParseAddr("fd00::99") // a router on the client's path
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
			st := &model.State{Services: []model.Service{{
				Key: model.ServiceKey{Namespace: "default", Name: "web6"}, VIPs: []netip.Addr{v6VIP.Addr()},
				Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
				Endpoints: []model.Endpoint{{Addr: v6Backend.Addr(), NodeName: "node2", Ready: true,
					Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}},
			}}}
			if _, err := d.Sync(st, "node1"); err != nil {
				t.Fatal(err)
			}
			prog := d.objs.LbTcIngress
			if hook.xdp {
				prog = d.objs.LbXdp
			}
			run := func(in []byte, want verdict, reason string) []byte {
				t.Helper()
				before, err := d.Reasons()
				if err != nil {
					t.Fatal(err)
				}
				ret, out, err := l.run(prog, hook.xdp, in)
				if err != nil {
					t.Fatal(err)
				}
				after, err := d.Reasons()
				if err != nil {
					t.Fatal(err)
				}
				if ret != want.code(hook.xdp) {
					t.Errorf("verdict %d, want %s", int32(ret), want)
				}
				if diff := cmp.Diff(map[string]uint64{reason: 1}, reasonDelta(before, after)); diff != "" {
					t.Errorf("reasons moved (-want +got):\n%s", diff)
				}
				return out[:len(in)]
			}

			syn, err := pkt.IPv6TCP(labClientMAC, labLan0MAC, v6Client, v6VIP)
			if err != nil {
				t.Fatal(err)
			}
			fwd, _, _, _ := v6View(t, run(syn, sentBack, "fwd"))
			snat := fwd.Port()

			// Shape 1: the client's path cannot take the VIP's reply.
			reply, err := pkt.IPv6TCP(labLan0MAC, labClientMAC, v6VIP, v6Client)
			if err != nil {
				t.Fatal(err)
			}
			in := icmp6Error(labClientMAC, labLan0MAC, router, v6VIP.Addr(), 2, reply)
			got := viewICMP6(t, run(in, sentBack, "icmp_fwd"), in)
			want := icmp6View{Src: v6Node, Dst: v6Backend.Addr(), InSrc: v6Backend, InDst: netip.AddrPortFrom(v6Node, snat),
				DstMAC: labNode2MAC.String(), Hop: 63, ChecksumValid: true, QuotedPayloadK: true}
			if diff := cmp.Diff(want, got, addrCmp); diff != "" {
				t.Errorf("packet too big toward the VIP (-want +got):\n%s", diff)
			}

			// Shape 2: the backend's side cannot take the SNATed packet.
			toBackend, err := pkt.IPv6TCP(labLan0MAC, labNode2MAC, netip.AddrPortFrom(v6Node, snat), v6Backend)
			if err != nil {
				t.Fatal(err)
			}
			in = icmp6Error(labNode2MAC, labLan0MAC, v6Node2, v6Node, 2, toBackend)
			got = viewICMP6(t, run(in, sentBack, "icmp_fwd"), in)
			want = icmp6View{Src: v6Node2, Dst: v6Client.Addr(), InSrc: v6Client, InDst: v6VIP,
				DstMAC: labClientMAC.String(), Hop: 63, ChecksumValid: true, QuotedPayloadK: true}
			if diff := cmp.Diff(want, got, addrCmp); diff != "" {
				t.Errorf("packet too big toward the node (-want +got):\n%s", diff)
			}

			// Not lbd's: an error quoting no VIP flow, and an echo request
			// to the VIP, go to the stack untouched.
			other, err := pkt.IPv6TCP(labLan0MAC, labClientMAC, v6VIP, netip.MustParseAddrPort("[fd00::201]:1234"))
			if err != nil {
				t.Fatal(err)
			}
			for name, in := range map[string][]byte{
				"error of another flow": icmp6Error(labClientMAC, labLan0MAC, router, v6VIP.Addr(), 2, other),
				"echo request":          icmp6Error(labClientMAC, labLan0MAC, router, v6VIP.Addr(), 128, reply),
			} {
				if out := run(in, toStack, "pass"); string(out) != string(in) {
					t.Errorf("%s: changed by the datapath", name)
				}
			}
		})
	}
}
