// SPDX-License-Identifier: Apache-2.0

package membership

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultPort     = 7947
	DefaultInterval = 100 * time.Millisecond
	DefaultTimeout  = 400 * time.Millisecond
)

// leaveCopies is how many leave messages a graceful stop sends to each
// peer: one lost datagram must not turn a planned handover into a
// Timeout-long outage.
const leaveCopies = 3

// Config configures a Membership.
type Config struct {
	// Self is this node's name, as in the Node objects.
	Self string
	// BindAddr is this node's address on the VLAN; heartbeats are sent
	// from and received on it.
	BindAddr netip.Addr
	// Port is the UDP port every instance uses (0 means DefaultPort).
	Port uint16
	// Interval between two heartbeats to each peer (0 means
	// DefaultInterval).
	Interval time.Duration
	// Timeout without a heartbeat after which a peer is dead (0 means
	// DefaultTimeout). It must be at least twice Interval, so that one
	// lost datagram does not kill a peer.
	Timeout time.Duration
	Log     *slog.Logger
}

// Member is what this node knows about one peer.
type Member struct {
	Node        string
	Addr        netip.Addr
	Healthy     bool
	LastSeen    time.Time // zero if never heard
	Incarnation uint64    // of the last heartbeat heard
	View        []string  // peers the member said it hears
}

// Membership tracks the liveness of the peers of one node. Its methods
// are safe for concurrent use.
type Membership struct {
	cfg         Config
	log         *slog.Logger
	incarnation uint64
	changes     chan struct{}

	mu      sync.Mutex
	peers   map[string]*peer
	started time.Time // zero until Run
	peersAt time.Time // when SetPeers first gave peers
	fenced  bool      // last value notified
	seq     uint64
	dropped uint64 // datagrams refused (malformed, unknown sender)
}

type peer struct {
	addr     netip.Addr
	healthy  bool
	heard    bool // a heartbeat arrived at least once
	lastSeen time.Time
	inc      uint64
	seq      uint64
	left     uint64 // incarnation that said goodbye; its late datagrams are ignored
	view     []string
}

// New validates cfg and returns a Membership with no peers.
func New(cfg Config) (*Membership, error) {
	if cfg.Self == "" {
		return nil, errors.New("new membership: self is required")
	}
	if len(cfg.Self) > maxNameBytes {
		return nil, fmt.Errorf("new membership: node name of %d bytes", len(cfg.Self))
	}
	if !cfg.BindAddr.IsValid() {
		return nil, errors.New("new membership: bind address is required")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Interval < 0 || cfg.Timeout < 2*cfg.Interval {
		return nil, fmt.Errorf("new membership: timeout %s must be at least twice interval %s", cfg.Timeout, cfg.Interval)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return &Membership{
		cfg:         cfg,
		log:         cfg.Log.With("op", "membership"),
		incarnation: binary.BigEndian.Uint64(b[:]),
		changes:     make(chan struct{}, 1),
		peers:       map[string]*peer{},
		fenced:      true,
	}, nil
}

// Config returns the configuration with defaults filled in.
func (m *Membership) Config() Config { return m.cfg }

// Changes receives a value after any peer became healthy or dead, the
// peer set changed, or Fenced changed. Notifications are coalesced: one
// pending value stands for any number of changes, so read the current
// state after receiving.
func (m *Membership) Changes() <-chan struct{} { return m.changes }

func (m *Membership) notify() {
	select {
	case m.changes <- struct{}{}:
	default:
	}
}

// SetPeers replaces the set of peers: node name to its VLAN address, of
// the family of BindAddr. Self is ignored if present. Peers kept with the
// same address keep their state; new ones start dead until heard.
func (m *Membership) SetPeers(peers map[string]netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for name := range m.peers {
		if _, ok := peers[name]; !ok {
			delete(m.peers, name)
			changed = true
		}
	}
	for name, addr := range peers {
		if name == m.cfg.Self {
			continue
		}
		addr = addr.Unmap()
		if p, ok := m.peers[name]; ok && p.addr == addr {
			continue
		}
		m.peers[name] = &peer{addr: addr}
		changed = true
	}
	now := time.Now()
	if m.peersAt.IsZero() && len(m.peers) > 0 {
		m.peersAt = now
	}
	if changed {
		m.updateFencedLocked(now)
		m.notify()
	}
}

// Live reports whether node is alive: self always is, a peer while it is
// healthy, any other node never.
func (m *Membership) Live(node string) bool {
	if node == m.cfg.Self {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.peers[node]
	return ok && p.healthy
}

// Fenced reports whether this node must announce nothing (see the package
// documentation): before Run, while it starts, and while it hears fewer
// than half of at least two peers.
func (m *Membership) Fenced() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fencedLocked(time.Now())
}

func (m *Membership) fencedLocked(now time.Time) bool {
	if m.started.IsZero() {
		return true
	}
	healthy, heardAll := 0, true
	for _, p := range m.peers {
		if p.healthy {
			healthy++
		}
		heardAll = heardAll && p.heard
	}
	// The start-up window runs from when there was both a socket and a
	// peer list: a daemon whose first desired state comes late must still
	// wait to hear its peers before it claims their VIPs.
	if !heardAll && now.Sub(later(m.started, m.peersAt)) < m.cfg.Timeout {
		return true
	}
	return len(m.peers) >= 2 && 2*healthy < len(m.peers)
}

// updateFencedLocked notifies when Fenced changed since last notified.
func (m *Membership) updateFencedLocked(now time.Time) {
	f := m.fencedLocked(now)
	if f == m.fenced {
		return
	}
	m.fenced = f
	healthy := 0
	for _, p := range m.peers {
		if p.healthy {
			healthy++
		}
	}
	if f {
		m.log.Warn("fenced: announcing nothing", "reason", "hears too few peers", "healthy", healthy, "peers", len(m.peers))
	} else {
		m.log.Info("unfenced", "healthy", healthy, "peers", len(m.peers))
	}
	m.notify()
}

// Members returns every peer, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.peers))
	for name, p := range m.peers {
		out = append(out, Member{
			Node: name, Addr: p.addr, Healthy: p.healthy, LastSeen: p.lastSeen,
			Incarnation: p.inc, View: slices.Clone(p.view),
		})
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	return out
}

// Run binds the gossip port, then sends heartbeats and tracks peers until
// ctx ends. Before returning it tells every peer it leaves, so they stop
// counting on it at once. It returns an error if the port cannot be
// bound.
func (m *Membership) Run(ctx context.Context) error {
	laddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.cfg.BindAddr, m.cfg.Port))
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return fmt.Errorf("bind gossip port %s: %w", laddr, err)
	}
	m.mu.Lock()
	m.started = time.Now()
	m.mu.Unlock()
	m.log.Info("membership started", "addr", laddr, "interval", m.cfg.Interval, "timeout", m.cfg.Timeout, "incarnation", m.incarnation)

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		m.readLoop(conn)
	}()

	// Heartbeat right away: peers learn of a (re)started instance without
	// waiting an Interval.
	m.send(conn, kindHeartbeat, 1)
	beat := time.NewTicker(m.cfg.Interval)
	defer beat.Stop()
	// The sweep runs more often than heartbeats are due, so detection
	// overshoots Timeout by at most Timeout/8.
	sweep := time.NewTicker(m.cfg.Timeout / 8)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			m.send(conn, kindLeave, leaveCopies)
			m.log.Info("left membership", "incarnation", m.incarnation)
			_ = conn.Close()
			<-readDone
			m.mu.Lock()
			m.started = time.Time{}
			for _, p := range m.peers {
				p.healthy = false
			}
			m.fenced = true
			m.mu.Unlock()
			return nil
		case <-beat.C:
			m.send(conn, kindHeartbeat, 1)
		case now := <-sweep.C:
			m.sweep(now)
		}
	}
}

// send sends one message of kind k, copies times, to every peer. Errors
// are expected while the link is down and only logged at debug level: the
// peers' view of us is what matters, and it expires on its own.
func (m *Membership) send(conn *net.UDPConn, k kind, copies int) {
	m.mu.Lock()
	m.seq++
	msg := message{Kind: k, Incarnation: m.incarnation, Seq: m.seq, Node: m.cfg.Self}
	addrs := make([]netip.Addr, 0, len(m.peers))
	for name, p := range m.peers {
		addrs = append(addrs, p.addr)
		if p.healthy {
			msg.View = append(msg.View, name)
		}
	}
	m.mu.Unlock()
	slices.Sort(msg.View)
	b, err := msg.marshal()
	if err != nil {
		m.log.Error("encode heartbeat", "err", err)
		return
	}
	for range copies {
		for _, a := range addrs {
			if _, err := conn.WriteToUDPAddrPort(b, netip.AddrPortFrom(a, m.cfg.Port)); err != nil {
				m.log.Debug("send heartbeat", "ip", a, "err", err)
			}
		}
	}
}

func (m *Membership) readLoop(conn *net.UDPConn) {
	buf := make([]byte, maxDatagram+1)
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Debug("read heartbeat", "err", err)
			continue
		}
		msg, err := unmarshal(buf[:n])
		if err != nil {
			m.drop("malformed", src, err)
			continue
		}
		m.receive(time.Now(), msg, src.Addr().Unmap())
	}
}

func (m *Membership) drop(reason string, src netip.AddrPort, err error) {
	m.mu.Lock()
	m.dropped++
	m.mu.Unlock()
	m.log.Debug("dropped gossip datagram", "reason", reason, "ip", src, "err", err)
}

// receive applies one message that arrived from src at now.
func (m *Membership) receive(now time.Time, msg message, src netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg.Node == m.cfg.Self {
		return
	}
	p, ok := m.peers[msg.Node]
	if !ok || p.addr != src {
		m.dropped++
		m.log.Debug("dropped gossip datagram", "reason", "unknown sender", "node", msg.Node, "ip", src)
		return
	}
	switch msg.Kind {
	case kindLeave:
		p.left = msg.Incarnation
		if p.healthy {
			p.healthy = false
			m.log.Info("peer left", "node", msg.Node, "ip", src)
			m.updateFencedLocked(now)
			m.notify()
		}
	case kindHeartbeat:
		if msg.Incarnation == p.left {
			return // a late heartbeat of an instance that said goodbye
		}
		if msg.Incarnation == p.inc && msg.Seq <= p.seq {
			return // reordered or duplicated
		}
		p.inc, p.seq, p.lastSeen, p.view, p.heard = msg.Incarnation, msg.Seq, now, msg.View, true
		if !p.healthy {
			p.healthy = true
			m.log.Info("peer up", "node", msg.Node, "ip", src, "incarnation", msg.Incarnation)
			m.updateFencedLocked(now)
			m.notify()
		}
	}
}

// sweep declares dead every peer not heard for Timeout.
func (m *Membership) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for name, p := range m.peers {
		if p.healthy && now.Sub(p.lastSeen) > m.cfg.Timeout {
			p.healthy = false
			changed = true
			m.log.Warn("peer down", "node", name, "ip", p.addr, "reason", "no heartbeat", "silence", now.Sub(p.lastSeen).Round(time.Millisecond))
		}
	}
	m.updateFencedLocked(now)
	if changed {
		m.notify()
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
