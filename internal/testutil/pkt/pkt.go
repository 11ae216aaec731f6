// SPDX-License-Identifier: Apache-2.0

package pkt

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// IP protocol numbers.
const (
	TCP uint8 = 6
	UDP uint8 = 17
)

// TCP flag bits as they appear in byte 13 of the TCP header.
const (
	FIN uint8 = 1 << 0
	SYN uint8 = 1 << 1
	RST uint8 = 1 << 2
	PSH uint8 = 1 << 3
	ACK uint8 = 1 << 4
)

// IPv4 describes an Ethernet + IPv4 + TCP/UDP frame.
type IPv4 struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Proto          uint8 // TCP or UDP
	TTL            uint8 // 0 means 64
	TCPFlags       uint8 // 0 means SYN
	// Options are raw IPv4 option bytes, a multiple of 4 long.
	Options []byte
	// MoreFragments and FragOffset (in 8-byte units) make a fragment.
	MoreFragments bool
	FragOffset    uint16
	// NoUDPChecksum leaves the UDP checksum 0 ("none", RFC 768).
	NoUDPChecksum bool
	Payload       []byte
}

// Build serialises f with correct lengths and checksums.
func (f IPv4) Build() ([]byte, error) {
	if !f.Src.Addr().Is4() || !f.Dst.Addr().Is4() {
		return nil, fmt.Errorf("build frame: %s -> %s is not IPv4", f.Src, f.Dst)
	}
	if len(f.Options)%4 != 0 || len(f.Options) > 40 {
		return nil, fmt.Errorf("build frame: %d option bytes, want a multiple of 4 up to 40", len(f.Options))
	}
	ttl := f.TTL
	if ttl == 0 {
		ttl = 64
	}
	eth := &layers.Ethernet{SrcMAC: f.SrcMAC, DstMAC: f.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{
		Version: 4, TTL: ttl, Id: 0x1234,
		SrcIP: f.Src.Addr().AsSlice(), DstIP: f.Dst.Addr().AsSlice(),
		FragOffset: f.FragOffset,
	}
	if f.MoreFragments {
		ip.Flags = layers.IPv4MoreFragments
	} else if f.FragOffset == 0 {
		ip.Flags = layers.IPv4DontFragment
	}
	for i := 0; i < len(f.Options); {
		switch t := f.Options[i]; t {
		case 0, 1:
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: t})
			i++
		default:
			if i+1 >= len(f.Options) || f.Options[i+1] < 2 || i+int(f.Options[i+1]) > len(f.Options) {
				return nil, fmt.Errorf("build frame: bad option at byte %d", i)
			}
			l := f.Options[i+1]
			ip.Options = append(ip.Options, layers.IPv4Option{OptionType: t, OptionLength: l, OptionData: f.Options[i+2 : i+int(l)]})
			i += int(l)
		}
	}
	var l4 gopacket.SerializableLayer
	switch f.Proto {
	case TCP:
		ip.Protocol = layers.IPProtocolTCP
		flags := f.TCPFlags
		if flags == 0 {
			flags = SYN
		}
		tcp := &layers.TCP{
			SrcPort: layers.TCPPort(f.Src.Port()), DstPort: layers.TCPPort(f.Dst.Port()),
			Seq: 1000, Window: 64240,
			FIN: flags&FIN != 0, SYN: flags&SYN != 0, RST: flags&RST != 0, PSH: flags&PSH != 0, ACK: flags&ACK != 0,
		}
		if flags&ACK != 0 {
			tcp.Ack = 2000
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, fmt.Errorf("build frame: %w", err)
		}
		l4 = tcp
	case UDP:
		ip.Protocol = layers.IPProtocolUDP
		udp := &layers.UDP{SrcPort: layers.UDPPort(f.Src.Port()), DstPort: layers.UDPPort(f.Dst.Port())}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, fmt.Errorf("build frame: %w", err)
		}
		l4 = udp
	default:
		return nil, fmt.Errorf("build frame: protocol %d is neither TCP nor UDP", f.Proto)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, l4, gopacket.Payload(f.Payload)); err != nil {
		return nil, fmt.Errorf("serialize frame: %w", err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if f.Proto == UDP && f.NoUDPChecksum {
		off := 14 + 20 + len(f.Options) + 6
		b[off], b[off+1] = 0, 0
	}
	return b, nil
}

// MustBuild is Build for test tables; it panics on a bad spec.
func (f IPv4) MustBuild() []byte {
	b, err := f.Build()
	if err != nil {
		panic(err)
	}
	return b
}

// ARPRequest builds a broadcast ARP who-has for target from sender.
func ARPRequest(srcMAC net.HardwareAddr, sender, target netip.Addr) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: srcMAC, SourceProtAddress: sender.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice(),
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, arp); err != nil {
		return nil, fmt.Errorf("serialize arp: %w", err)
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// IPv6TCP builds an Ethernet + IPv6 + TCP SYN frame.
func IPv6TCP(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), SYN: true, Window: 64240}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, fmt.Errorf("build frame: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
		return nil, fmt.Errorf("serialize frame: %w", err)
	}
	return append([]byte(nil), buf.Bytes()...), nil
}

// Frame is what Decode reads from an Ethernet + IPv4 + TCP/UDP frame.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort
	Proto          uint8
	TTL            uint8
	IHL            int // IPv4 header length in bytes
	IPChecksum     uint16
	L4Checksum     uint16
	TCPFlags       uint8
	Payload        []byte
}

// Decode parses an Ethernet + IPv4 + TCP/UDP frame without trusting its
// length fields beyond the bytes present.
func Decode(b []byte) (Frame, error) {
	var f Frame
	if len(b) < 14+20 {
		return f, fmt.Errorf("decode: %d bytes is shorter than Ethernet + IPv4", len(b))
	}
	if et := binary.BigEndian.Uint16(b[12:14]); et != 0x0800 {
		return f, fmt.Errorf("decode: ethertype %#04x is not IPv4", et)
	}
	f.DstMAC = net.HardwareAddr(append([]byte(nil), b[0:6]...))
	f.SrcMAC = net.HardwareAddr(append([]byte(nil), b[6:12]...))
	ip := b[14:]
	if ip[0]>>4 != 4 {
		return f, fmt.Errorf("decode: IP version %d", ip[0]>>4)
	}
	f.IHL = int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:4]))
	if f.IHL < 20 || tot < f.IHL || tot > len(ip) {
		return f, fmt.Errorf("decode: ihl %d, total length %d, %d bytes present", f.IHL, tot, len(ip))
	}
	f.TTL = ip[8]
	f.Proto = ip[9]
	f.IPChecksum = binary.BigEndian.Uint16(ip[10:12])
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	l4 := ip[f.IHL:tot]
	var sport, dport uint16
	switch f.Proto {
	case TCP:
		if len(l4) < 20 {
			return f, fmt.Errorf("decode: TCP header truncated to %d bytes", len(l4))
		}
		f.L4Checksum = binary.BigEndian.Uint16(l4[16:18])
		f.TCPFlags = l4[13]
		f.Payload = l4[int(l4[12]>>4)*4:]
	case UDP:
		if len(l4) < 8 {
			return f, fmt.Errorf("decode: UDP header truncated to %d bytes", len(l4))
		}
		f.L4Checksum = binary.BigEndian.Uint16(l4[6:8])
		f.Payload = l4[8:]
	default:
		return f, fmt.Errorf("decode: protocol %d", f.Proto)
	}
	sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	f.Src = netip.AddrPortFrom(src, sport)
	f.Dst = netip.AddrPortFrom(dst, dport)
	return f, nil
}

// VerifyChecksums recomputes the IPv4 header checksum and the TCP/UDP
// checksum (over the pseudo-header) of an Ethernet + IPv4 frame. A UDP
// checksum of 0 means "none" and is accepted.
func VerifyChecksums(b []byte) error {
	f, err := Decode(b)
	if err != nil {
		return err
	}
	ip := b[14:]
	if s := Sum(ip[:f.IHL], 0); s != 0xffff {
		return fmt.Errorf("IPv4 header checksum %#04x is wrong (sum %#04x)", f.IPChecksum, s)
	}
	tot := int(binary.BigEndian.Uint16(ip[2:4]))
	l4 := ip[f.IHL:tot]
	if f.Proto == UDP && f.L4Checksum == 0 {
		return nil
	}
	var pseudo [12]byte
	copy(pseudo[0:8], ip[12:20])
	pseudo[9] = f.Proto
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(l4)))
	if s := Sum(l4, Sum(pseudo[:], 0)); s != 0xffff {
		return fmt.Errorf("%s checksum %#04x is wrong (sum %#04x)", protoName(f.Proto), f.L4Checksum, s)
	}
	return nil
}

func protoName(p uint8) string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	}
	return fmt.Sprintf("proto %d", p)
}

// Sum is the folded 16-bit ones' complement sum of b added to initial
// (RFC 1071): 0xffff over data that includes a correct checksum.
func Sum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
