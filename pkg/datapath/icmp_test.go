// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// icmpFragNeeded builds an ICMP "fragmentation needed" (type 3 code 4,
// MTU 1400) from src to dst quoting the first 28 bytes of the IPv4 packet in
// the frame quoted.
func icmpFragNeeded(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, quoted []byte) []byte {
	b := make([]byte, 14+20+8+28)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+28))
	ip[8] = 64
	ip[9] = 1
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], ^pkt.Sum(ip, 0))
	icmp := b[34:]
	icmp[0], icmp[1] = 3, 4
	binary.BigEndian.PutUint16(icmp[6:], 1400)
	copy(icmp[8:], quoted[14:14+28])
	binary.BigEndian.PutUint16(icmp[2:], ^pkt.Sum(icmp, 0))
	return b
}

// icmpView is what the ICMP checks look at.
type icmpView struct {
	src, dst         netip.Addr
	inSrc, inDst     netip.AddrPort
	dstMAC           net.HardwareAddr
	ipOK, icmpOK, in bool
}

func viewICMP(b []byte) icmpView {
	var v icmpView
	if len(b) < 14+20+8+28 {
		return v
	}
	v.dstMAC = net.HardwareAddr(b[0:6])
	ip := b[14:34]
	v.src = netip.AddrFrom4([4]byte(ip[12:16]))
	v.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	v.ipOK = pkt.Sum(ip, 0) == 0xffff
	icmp := b[34:]
	v.icmpOK = pkt.Sum(icmp, 0) == 0xffff
	in := icmp[8:28]
	v.in = pkt.Sum(in, 0) == 0xffff
	ports := icmp[28:32]
	v.inSrc = netip.AddrPortFrom(netip.AddrFrom4([4]byte(in[12:16])), binary.BigEndian.Uint16(ports[0:]))
	v.inDst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(in[16:20])), binary.BigEndian.Uint16(ports[2:]))
	return v
}

func checkICMP(t *testing.T, out []byte, want icmpView) {
	t.Helper()
	got := viewICMP(out)
	if !got.ipOK || !got.icmpOK || !got.in {
		t.Errorf("checksums: outer IPv4 ok %v, ICMP ok %v, embedded IPv4 ok %v", got.ipOK, got.icmpOK, got.in)
	}
	if got.src != want.src || got.dst != want.dst || got.inSrc != want.inSrc || got.inDst != want.inDst {
		t.Errorf("ICMP %s -> %s quoting %s -> %s, want %s -> %s quoting %s -> %s",
			got.src, got.dst, got.inSrc, got.inDst, want.src, want.dst, want.inSrc, want.inDst)
	}
	if want.dstMAC != nil && got.dstMAC.String() != want.dstMAC.String() {
		t.Errorf("dst MAC %s, want %s", got.dstMAC, want.dstMAC)
	}
}

// icmpCases are packet cases for ICMP errors of VIP flows; they run after
// the web flow (client1 -> VIP, SNATed to a backend on node2) exists.
func icmpCases() []packetCase {
	const after = "VIP SYN to remote backend is SNATed and sent back out"
	router := netip.MustParseAddr("10.20.0.200") // the client side says it
	return []packetCase{
		{
			name:  "ICMP frag-needed about a reply to the client goes to the backend",
			after: after,
			in: func(e *pktEnv) []byte {
				reply := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labClientMAC, Src: webHTTP, Dst: client1, Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}
				return icmpFragNeeded(labClientMAC, labLan0MAC, router, vipWeb, reply.MustBuild())
			},
			want: sentBack, reason: "icmp_fwd",
			check: func(t *testing.T, e *pktEnv, in, out []byte) {
				checkICMP(t, out, icmpView{src: labNodeIP, dst: remoteEP, inSrc: webBE, inDst: ap(labNodeIP, e.snatPort), dstMAC: labNode2MAC})
			},
		},
		{
			name:  "ICMP frag-needed about a SNATed packet goes to the client",
			after: after,
			in: func(e *pktEnv) []byte {
				fwd := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labNode2MAC, Src: ap(labNodeIP, e.snatPort), Dst: webBE, Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}
				return icmpFragNeeded(labNode2MAC, labLan0MAC, netip.MustParseAddr("10.20.0.52"), labNodeIP, fwd.MustBuild())
			},
			want: sentBack, reason: "icmp_fwd",
			check: func(t *testing.T, e *pktEnv, in, out []byte) {
				checkICMP(t, out, icmpView{src: netip.MustParseAddr("10.20.0.52"), dst: labClient, inSrc: client1, inDst: webHTTP, dstMAC: labClientMAC})
			},
		},
		{
			name: "ICMP error about an unknown flow to a VIP is dropped",
			in: func(e *pktEnv) []byte {
				reply := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labClientMAC, Src: ap(vipLocal, 80), Dst: ap(labClient, 9), Proto: pkt.TCP, TCPFlags: pkt.ACK}
				return icmpFragNeeded(labClientMAC, labLan0MAC, router, vipLocal, reply.MustBuild())
			},
			want: dropped, reason: "drop_no_port",
		},
	}
}
