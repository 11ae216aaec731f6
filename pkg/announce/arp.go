// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// arpResponder answers ARP requests for the owned IPv4 VIPs of one
// interface and sends gratuitous ARP when it takes a VIP over.
//
// It reads and writes whole Ethernet frames on an AF_PACKET socket and
// uses mdlayher/arp only to encode and decode ARP. arp.Client would need
// an IPv4 address on the interface (arp.New refuses one without), and an
// interface that carries only VIPs is a valid setup.
type arpResponder struct {
	lifecycle
	ifi   *net.Interface
	conn  net.PacketConn
	c     *counters
	owned ownedSet
}

// newARPResponder opens the ARP socket of ifi in the calling thread's
// network namespace and starts its goroutines.
func newARPResponder(log *slog.Logger, ifi *net.Interface, c *counters) (*arpResponder, error) {
	conn, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
	if err != nil {
		return nil, fmt.Errorf("open ARP socket on %s: %w", ifi.Name, err)
	}
	return startARPResponder(log, ifi, conn, c), nil
}

// startARPResponder serves ARP on conn, which must deliver whole
// Ethernet frames of ifi carrying EtherType ARP.
func startARPResponder(log *slog.Logger, ifi *net.Interface, conn net.PacketConn, c *counters) *arpResponder {
	r := &arpResponder{
		lifecycle: lifecycle{name: "ARP", log: log.With("proto", "arp")},
		ifi:       ifi,
		conn:      conn,
		c:         c,
	}
	r.burst = newBurst(gratuitousGaps, r.sendGratuitous)
	r.start(r.readLoop)
	r.log.Info("ARP responder started", "mac", ifi.HardwareAddr.String())
	return r
}

// set replaces the owned VIPs and starts gratuitous ARP for new ones.
func (r *arpResponder) set(vips []netip.Addr) {
	added, removed := r.owned.replace(vips)
	for _, v := range removed {
		r.burst.cancel(v)
		r.log.Info("VIP released", "vip", v)
	}
	for _, v := range added {
		r.log.Info("VIP taken over", "vip", v)
		r.burst.start(v)
	}
}

// close stops the goroutines and closes the socket; it returns once
// both goroutines have returned.
func (r *arpResponder) close() { r.shutdown(r.conn) }

func (r *arpResponder) readLoop() {
	// ARP over Ethernet is 28 bytes in a frame of at most 64 with padding
	// and tags; larger frames are not ARP we answer and are truncated.
	buf := make([]byte, 256)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if r.closing.Load() {
				return
			}
			// Packet sockets report ENETDOWN once when the link goes
			// down and then keep working: log, back off, read on.
			r.c.errors.Add(1)
			r.log.Warn("read ARP", "error", err)
			select {
			case <-r.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		r.handle(buf[:n])
	}
}

// handle processes one received frame.
func (r *arpResponder) handle(b []byte) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return
	}
	mac := r.ifi.HardwareAddr
	// A packet socket also sees the frames this host sends, including
	// our own gratuitous ARPs, which are requests for an owned VIP.
	if bytes.Equal(f.Source, mac) {
		return
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return
	}
	if p.HardwareType != 1 || p.ProtocolType != uint16(ethernet.EtherTypeIPv4) ||
		p.HardwareAddrLength != 6 || p.IPLength != 4 {
		return
	}

	// Another host claiming an owned VIP as its own (a reply or a
	// gratuitous ARP) means two nodes announce it. Report it and do not
	// fight back: the election, not an ARP war, decides the owner.
	if r.owned.has(p.SenderIP) && !bytes.Equal(p.SenderHardwareAddr, mac) {
		r.c.conflicts.Add(1)
		r.log.Warn("VIP claimed by another MAC", "vip", p.SenderIP,
			"mac", p.SenderHardwareAddr.String(), "op", p.Operation.String())
		return
	}

	if p.Operation != arp.OperationRequest || !r.owned.has(p.TargetIP) {
		return
	}
	// RFC 5227 probes (sender 0.0.0.0) are answered too, so that a host
	// probing a VIP learns it is taken.
	reply, err := arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
	if err != nil {
		return
	}
	if err := r.write(reply, f.Source); err != nil {
		r.c.errors.Add(1)
		r.log.Warn("send ARP reply", "vip", p.TargetIP, "to", p.SenderIP, "error", err)
		return
	}
	r.c.answered.Add(1)
	r.log.Debug("answered ARP request", "vip", p.TargetIP, "from", p.SenderIP, "from_mac", p.SenderHardwareAddr.String())
}

// sendGratuitous broadcasts a gratuitous ARP for vip in request form
// (sender and target IP both the VIP), which every stack, including
// ones that ignore unsolicited replies, uses to update an existing
// cache entry.
func (r *arpResponder) sendGratuitous(vip netip.Addr) {
	// The burst may have collected vip just before Set released it.
	if !r.owned.has(vip) {
		return
	}
	p, err := arp.NewPacket(arp.OperationRequest, r.ifi.HardwareAddr, vip, ethernet.Broadcast, vip)
	if err != nil {
		return
	}
	if err := r.write(p, ethernet.Broadcast); err != nil {
		r.c.errors.Add(1)
		r.log.Warn("send gratuitous ARP", "vip", vip, "error", err)
		return
	}
	r.c.gratuitous.Add(1)
	r.log.Debug("sent gratuitous ARP", "vip", vip)
}

func (r *arpResponder) write(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal ARP: %w", err)
	}
	f := &ethernet.Frame{
		Destination: dst,
		Source:      r.ifi.HardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	fb, err := f.MarshalBinary()
	if err != nil {
		return fmt.Errorf("marshal Ethernet frame: %w", err)
	}
	if _, err := r.conn.WriteTo(fb, &packet.Addr{HardwareAddr: dst}); err != nil {
		return fmt.Errorf("write ARP frame: %w", err)
	}
	return nil
}
