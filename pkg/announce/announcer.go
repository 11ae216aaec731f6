// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Set after Run has returned, and by a second
// call to Run.
var ErrClosed = errors.New("announcer closed")

// Announcer answers ARP and NDP for the VIPs this node owns, per
// interface. Create it with New, call Run once, and call Set whenever the
// set of owned VIPs of an interface changes. Its methods are safe for
// concurrent use.
//
// Network namespaces: Set opens the raw sockets of an interface on the
// calling goroutine's OS thread, so they belong to that thread's network
// namespace and look the interface up there. The daemon only ever runs
// in one namespace; a caller juggling namespaces (tests) must call Set
// from a goroutine locked into the right one, and must give interfaces
// names unique across the namespaces it uses (golang.org/x/net caches
// IPv6 zone names process-wide).
//
// Needs CAP_NET_RAW.
type Announcer struct {
	log *slog.Logger

	mu      sync.Mutex
	running bool
	closed  bool
	ifaces  map[string]*ifaceResponders
	// counters survive the responders of their interface so that Stats
	// stay cumulative when an interface loses its last VIP.
	counters map[string]*counters
}

// ifaceResponders are the open responders of one interface; each one is
// nil while the interface owns no VIP of its family.
type ifaceResponders struct {
	arp *arpResponder
	ndp *ndpResponder
}

type counters struct {
	answered, gratuitous, conflicts, errors atomic.Uint64
}

// Stats are the counters of one interface since the Announcer was
// created.
type Stats struct {
	// VIPs are the addresses currently owned on the interface, sorted.
	VIPs []netip.Addr
	// Answered counts ARP replies and solicited Neighbor Advertisements
	// sent for owned VIPs.
	Answered uint64
	// Gratuitous counts gratuitous ARPs and unsolicited Neighbor
	// Advertisements sent on takeover.
	Gratuitous uint64
	// Conflicts counts ARP packets or Neighbor Advertisements from
	// another MAC claiming an owned VIP: another node announces it too.
	Conflicts uint64
	// Errors counts socket read and write errors.
	Errors uint64
}

// New returns an Announcer that logs to log (nil discards).
func New(log *slog.Logger) *Announcer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Announcer{
		log:      log,
		ifaces:   make(map[string]*ifaceResponders),
		counters: make(map[string]*counters),
	}
}

// Run blocks until ctx is done, then closes every responder, waits for
// their goroutines and returns nil. Set may be called before Run, but Run
// must be called: it is what stops the goroutines Set starts. A second
// call returns ErrClosed.
func (a *Announcer) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running || a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	a.running = true
	a.mu.Unlock()

	<-ctx.Done()

	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	for name, r := range a.ifaces {
		r.close()
		delete(a.ifaces, name)
	}
	return nil
}

// Set makes vips the complete set of VIPs this node owns on interface
// iface, replacing the previous set. It opens the interface's ARP
// responder when the set first holds an IPv4 address and its NDP
// responder when it first holds an IPv6 one, and closes each when its
// family has no VIP left. Each VIP newly owned is announced with
// gratuitous ARP or unsolicited Neighbor Advertisements; VIPs kept stay
// quiet. Sockets are opened in the calling thread's network namespace
// (see Announcer).
//
// Set returns ErrClosed after Run has returned. Other errors are joined
// per family: a failing NDP responder does not keep IPv4 VIPs from
// being answered.
func (a *Announcer) Set(iface string, vips []netip.Addr) error {
	v4, v6, err := splitVIPs(vips)
	if err != nil {
		return fmt.Errorf("set VIPs of %s: %w", iface, err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	r := a.ifaces[iface]
	if len(v4) == 0 && len(v6) == 0 {
		if r != nil {
			r.close()
			delete(a.ifaces, iface)
		}
		return nil
	}

	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		// The sockets of a vanished interface are dead: drop them so that
		// a later Set, once it is back, opens fresh ones.
		if r != nil {
			r.close()
			delete(a.ifaces, iface)
		}
		return fmt.Errorf("look up interface %s: %w", iface, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("set VIPs of %s: interface has no Ethernet address", iface)
	}
	if r == nil {
		r = &ifaceResponders{}
		a.ifaces[iface] = r
	}
	c := a.counters[iface]
	if c == nil {
		c = &counters{}
		a.counters[iface] = c
	}
	log := a.log.With("iface", iface)

	var errs []error
	// A responder bound to an older incarnation of the interface (deleted
	// and recreated, or its MAC changed) would answer with a stale MAC or
	// not at all: reopen it.
	if r.arp != nil && (len(v4) == 0 || !sameLink(r.arp.ifi, ifi)) {
		r.arp.close()
		r.arp = nil
	}
	if len(v4) > 0 {
		if r.arp == nil {
			r.arp, err = newARPResponder(log, ifi, c)
			errs = append(errs, err)
		}
		if r.arp != nil {
			r.arp.set(v4)
		}
	}
	if r.ndp != nil && (len(v6) == 0 || !sameLink(r.ndp.ifi, ifi)) {
		r.ndp.close()
		r.ndp = nil
	}
	if len(v6) > 0 {
		if r.ndp == nil {
			r.ndp, err = newNDPResponder(log, ifi, c)
			errs = append(errs, err)
		}
		if r.ndp != nil {
			errs = append(errs, r.ndp.set(v6))
		}
	}
	if r.arp == nil && r.ndp == nil {
		delete(a.ifaces, iface)
	}
	return errors.Join(errs...)
}

// Stats returns the counters of every interface Set has announced on,
// keyed by interface name.
func (a *Announcer) Stats() map[string]Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]Stats, len(a.counters))
	for name, c := range a.counters {
		s := Stats{
			Answered:   c.answered.Load(),
			Gratuitous: c.gratuitous.Load(),
			Conflicts:  c.conflicts.Load(),
			Errors:     c.errors.Load(),
		}
		if r := a.ifaces[name]; r != nil {
			if r.arp != nil {
				s.VIPs = append(s.VIPs, r.arp.owned.list()...)
			}
			if r.ndp != nil {
				s.VIPs = append(s.VIPs, r.ndp.owned.list()...)
			}
		}
		out[name] = s
	}
	return out
}

func (r *ifaceResponders) close() {
	if r.arp != nil {
		r.arp.close()
		r.arp = nil
	}
	if r.ndp != nil {
		r.ndp.close()
		r.ndp = nil
	}
}

func sameLink(a, b *net.Interface) bool {
	return a.Index == b.Index && bytes.Equal(a.HardwareAddr, b.HardwareAddr)
}

// splitVIPs validates vips and splits them by family, unmapping
// v4-in-v6 addresses, dropping zones and duplicates.
func splitVIPs(vips []netip.Addr) (v4, v6 []netip.Addr, err error) {
	for _, v := range vips {
		if !v.IsValid() {
			return nil, nil, errors.New("invalid address")
		}
		v = v.Unmap().WithZone("")
		if v.IsUnspecified() || v.IsMulticast() || v.IsLoopback() {
			return nil, nil, fmt.Errorf("%s cannot be a VIP", v)
		}
		if v.Is4() {
			v4 = append(v4, v)
		} else {
			v6 = append(v6, v)
		}
	}
	slices.SortFunc(v4, netip.Addr.Compare)
	slices.SortFunc(v6, netip.Addr.Compare)
	return slices.Compact(v4), slices.Compact(v6), nil
}

// ownedSet is the set of VIPs a responder answers for, read on every
// packet and replaced by Set.
type ownedSet struct {
	mu sync.RWMutex
	m  map[netip.Addr]struct{}
}

func (s *ownedSet) has(a netip.Addr) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[a]
	return ok
}

// replace makes vips the set and returns what was added and removed.
func (s *ownedSet) replace(vips []netip.Addr) (added, removed []netip.Addr) {
	next := make(map[netip.Addr]struct{}, len(vips))
	for _, v := range vips {
		next[v] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range next {
		if _, ok := s.m[v]; !ok {
			added = append(added, v)
		}
	}
	for v := range s.m {
		if _, ok := next[v]; !ok {
			removed = append(removed, v)
		}
	}
	s.m = next
	slices.SortFunc(added, netip.Addr.Compare)
	slices.SortFunc(removed, netip.Addr.Compare)
	return added, removed
}

func (s *ownedSet) list() []netip.Addr {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]netip.Addr, 0, len(s.m))
	for v := range s.m {
		out = append(out, v)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
