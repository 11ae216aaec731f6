// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// allNodes is ff02::1, the destination of unsolicited advertisements.
var allNodes = netip.IPv6LinkLocalAllNodes()

// ndpResponder answers Neighbor Solicitations for the owned IPv6 VIPs of
// one interface and sends unsolicited Neighbor Advertisements when it
// takes a VIP over.
type ndpResponder struct {
	lifecycle
	ifi   *net.Interface
	conn  *ndp.Conn
	c     *counters
	owned ownedSet

	// groups counts the owned VIPs behind each joined solicited-node
	// multicast group: VIPs that share their low 24 bits share a group.
	groupsMu sync.Mutex
	groups   map[netip.Addr]int
}

// newNDPResponder opens an ICMPv6 socket bound to ifi's link-local
// address, in the calling thread's network namespace, and starts its
// goroutines. It fails while the link-local address is still tentative
// (duplicate address detection runs for about a second after link up);
// the caller retries on its next Set.
func newNDPResponder(log *slog.Logger, ifi *net.Interface, c *counters) (*ndpResponder, error) {
	conn, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return nil, fmt.Errorf("open NDP socket on %s: %w", ifi.Name, err)
	}
	// Only solicitations and advertisements matter; filtering in the
	// kernel keeps router advertisements and echo traffic off the loop.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeNeighborSolicitation)
	f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	if err := conn.SetICMPFilter(&f); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set ICMPv6 filter on %s: %w", ifi.Name, err)
	}
	// The hop limit proves a message was not forwarded (RFC 4861 7.1).
	if err := conn.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("enable hop limit control messages on %s: %w", ifi.Name, err)
	}
	r := &ndpResponder{
		lifecycle: lifecycle{name: "NDP", log: log.With("proto", "ndp")},
		ifi:       ifi,
		conn:      conn,
		c:         c,
		groups:    make(map[netip.Addr]int),
	}
	r.burst = newBurst(gratuitousGaps, r.sendUnsolicited)
	r.start(r.readLoop)
	r.log.Info("NDP responder started", "mac", ifi.HardwareAddr.String())
	return r, nil
}

// set replaces the owned VIPs, joins and leaves their solicited-node
// groups, and starts unsolicited advertisements for new ones. A VIP
// whose group cannot be joined is still owned (unicast solicitations,
// as sent when a neighbour entry is refreshed, keep working) and the
// error is returned.
func (r *ndpResponder) set(vips []netip.Addr) error {
	added, removed := r.owned.replace(vips)
	var errs []error
	for _, v := range removed {
		r.burst.cancel(v)
		errs = append(errs, r.leave(v))
		r.log.Info("VIP released", "vip", v)
	}
	for _, v := range added {
		errs = append(errs, r.join(v))
		r.log.Info("VIP taken over", "vip", v)
		r.burst.start(v)
	}
	return errors.Join(errs...)
}

func (r *ndpResponder) join(vip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(vip)
	if err != nil {
		return fmt.Errorf("solicited-node group of %s: %w", vip, err)
	}
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	if r.groups[g] == 0 {
		if err := r.conn.JoinGroup(g); err != nil {
			return fmt.Errorf("join %s for %s: %w", g, vip, err)
		}
	}
	r.groups[g]++
	return nil
}

func (r *ndpResponder) leave(vip netip.Addr) error {
	g, err := ndp.SolicitedNodeMulticast(vip)
	if err != nil {
		return fmt.Errorf("solicited-node group of %s: %w", vip, err)
	}
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	switch r.groups[g] {
	case 0: // the join failed; nothing to leave.
		return nil
	case 1:
		delete(r.groups, g)
		if err := r.conn.LeaveGroup(g); err != nil {
			return fmt.Errorf("leave %s for %s: %w", g, vip, err)
		}
	default:
		r.groups[g]--
	}
	return nil
}

// close stops the goroutines and closes the socket, which also drops
// its multicast memberships; it returns once both goroutines returned.
func (r *ndpResponder) close() { r.shutdown(r.conn) }

func (r *ndpResponder) readLoop() {
	for {
		msg, cm, src, err := r.conn.ReadFrom()
		if err != nil {
			if r.closing.Load() {
				return
			}
			r.c.errors.Add(1)
			r.log.Warn("read NDP", "error", err)
			select {
			case <-r.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if cm != nil && cm.HopLimit != ndp.HopLimit {
			continue
		}
		switch m := msg.(type) {
		case *ndp.NeighborSolicitation:
			r.handleSolicitation(m, src)
		case *ndp.NeighborAdvertisement:
			r.handleAdvertisement(m, src)
		}
	}
}

func (r *ndpResponder) handleSolicitation(ns *ndp.NeighborSolicitation, src netip.Addr) {
	if !r.owned.has(ns.TargetAddress) {
		return
	}
	// A solicitation from :: is duplicate address detection by a host
	// that wants the VIP: it has no address to reply to, so RFC 4861
	// 7.2.4 says to answer all-nodes, unsolicited.
	dst, solicited := src, true
	// src carries the interface zone, and a zoned :: is not
	// IPv6Unspecified.
	if src.WithZone("").IsUnspecified() {
		dst, solicited = allNodes, false
	}
	if err := r.advertise(ns.TargetAddress, dst, solicited); err != nil {
		r.c.errors.Add(1)
		r.log.Warn("send neighbor advertisement", "vip", ns.TargetAddress, "to", dst, "error", err)
		return
	}
	r.c.answered.Add(1)
	r.log.Debug("answered neighbor solicitation", "vip", ns.TargetAddress, "from", src)
}

func (r *ndpResponder) handleAdvertisement(na *ndp.NeighborAdvertisement, src netip.Addr) {
	if !r.owned.has(na.TargetAddress) {
		return
	}
	mac := targetLinkLayer(na)
	// Without the option the sender's MAC is unknown; the advertisement
	// still claims the VIP, but reporting it would be a guess.
	if mac == nil || bytes.Equal(mac, r.ifi.HardwareAddr) {
		return
	}
	r.c.conflicts.Add(1)
	r.log.Warn("VIP claimed by another MAC", "vip", na.TargetAddress, "mac", mac.String(), "from", src)
}

func targetLinkLayer(na *ndp.NeighborAdvertisement) net.HardwareAddr {
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
			return lla.Addr
		}
	}
	return nil
}

// sendUnsolicited tells all nodes that vip now lives at this MAC. The
// override flag makes neighbours replace the previous owner's entry.
func (r *ndpResponder) sendUnsolicited(vip netip.Addr) {
	if !r.owned.has(vip) {
		return
	}
	if err := r.advertise(vip, allNodes, false); err != nil {
		r.c.errors.Add(1)
		r.log.Warn("send unsolicited neighbor advertisement", "vip", vip, "error", err)
		return
	}
	r.c.gratuitous.Add(1)
	r.log.Debug("sent unsolicited neighbor advertisement", "vip", vip)
}

func (r *ndpResponder) advertise(target, dst netip.Addr, solicited bool) error {
	na := &ndp.NeighborAdvertisement{
		Solicited: solicited,
		// Override: a VIP moves between nodes, and the new owner's
		// answer must replace the old owner's cached MAC.
		Override:      true,
		TargetAddress: target,
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      r.ifi.HardwareAddr,
		}},
	}
	if err := r.conn.WriteTo(na, nil, dst); err != nil {
		return fmt.Errorf("write neighbor advertisement: %w", err)
	}
	return nil
}
