// SPDX-License-Identifier: Apache-2.0

package pkt

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

func TestBuildDecodeRoundTrip(t *testing.T) {
	for _, f := range []IPv4{
		{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:80"), Proto: TCP, Payload: []byte("hello")},
		{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:9999"), Proto: UDP, TTL: 7, Payload: []byte("odd")},
		{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:80"), Proto: TCP, Options: []byte{148, 4, 0, 0}, TCPFlags: ACK | PSH},
	} {
		b := f.MustBuild()
		if err := VerifyChecksums(b); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
		d, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := Frame{SrcMAC: f.SrcMAC, DstMAC: f.DstMAC, Src: f.Src, Dst: f.Dst, Proto: f.Proto, TTL: max(f.TTL, 64*boolInt(f.TTL == 0)),
			IHL: 20 + len(f.Options), Payload: f.Payload}
		if f.Proto == TCP {
			want.TCPFlags = max(f.TCPFlags, SYN*boolInt(f.TCPFlags == 0))
		}
		opt := cmp.FilterPath(func(p cmp.Path) bool {
			n := p.Last().String()
			return n == ".IPChecksum" || n == ".L4Checksum"
		}, cmp.Ignore())
		if diff := cmp.Diff(want, d, opt, cmpopts.EquateComparable(netip.AddrPort{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("decode (-want +got):\n%s", diff)
		}
		// Cross-check against gopacket's own decoder.
		p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Errorf("gopacket decode: %v", el.Error())
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if int(ip.IHL)*4 != d.IHL || ip.TTL != d.TTL {
			t.Errorf("gopacket sees ihl %d ttl %d, Decode %d %d", ip.IHL*4, ip.TTL, d.IHL, d.TTL)
		}
	}
}

func boolInt(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func TestVerifyChecksumsDetectsCorruption(t *testing.T) {
	f := IPv4{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:80"), Proto: TCP}
	for _, off := range []int{14 + 8, 14 + 12, 14 + 20, 14 + 20 + 4} { // TTL, saddr, sport, seq
		b := f.MustBuild()
		b[off] ^= 0x10
		if err := VerifyChecksums(b); err == nil {
			t.Errorf("flipping byte %d went unnoticed", off)
		}
	}
}

func TestNoUDPChecksum(t *testing.T) {
	f := IPv4{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:53"), Proto: UDP, NoUDPChecksum: true}
	b := f.MustBuild()
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.L4Checksum != 0 {
		t.Errorf("UDP checksum = %#04x, want 0", d.L4Checksum)
	}
	if err := VerifyChecksums(b); err != nil {
		t.Errorf("checksum 0 must be accepted: %v", err)
	}
}

func TestFragmentAndOthers(t *testing.T) {
	f := IPv4{SrcMAC: macA, DstMAC: macB, Src: netip.MustParseAddrPort("10.0.0.1:40000"), Dst: netip.MustParseAddrPort("10.0.0.2:80"), Proto: TCP, MoreFragments: true}
	b := f.MustBuild()
	if b[14+6]&0x20 == 0 {
		t.Errorf("MF bit not set: flags byte %#02x", b[14+6])
	}
	a, err := ARPRequest(macA, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"))
	if err != nil || len(a) < 42 || a[12] != 0x08 || a[13] != 0x06 {
		t.Errorf("ARP frame %x, %v", a, err)
	}
	v6, err := IPv6TCP(macA, macB, netip.MustParseAddrPort("[fd00::1]:40000"), netip.MustParseAddrPort("[fd00::2]:80"))
	if err != nil || v6[12] != 0x86 || v6[13] != 0xdd {
		t.Errorf("IPv6 frame %x, %v", v6, err)
	}
	if _, err := Decode(v6); err == nil {
		t.Error("Decode accepted IPv6")
	}
}
