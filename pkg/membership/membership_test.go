// SPDX-License-Identifier: Apache-2.0

package membership

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Timers of the loopback tests: short, so the tests are quick, and with
// the same 1:4 ratio as the defaults.
const (
	testInterval = 20 * time.Millisecond
	testTimeout  = 80 * time.Millisecond
)

// freePort returns a UDP port free on 127.0.0.1 now. Every instance of a
// test binds it on its own loopback address (127.0.0.1, .2, ...), the way
// nodes share the gossip port on their own VLAN addresses.
func freePort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func loopback(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}) }

type node struct {
	m      *Membership
	cancel context.CancelFunc
	done   chan error
}

// cluster starts one Membership per name on 127.0.0.(i+1), each with all
// the others as peers. stop the returned nodes to make them leave.
func cluster(t *testing.T, port uint16, names ...string) map[string]*node {
	t.Helper()
	peers := map[string]netip.Addr{}
	for i, n := range names {
		peers[n] = loopback(i + 1)
	}
	out := map[string]*node{}
	for i, n := range names {
		m, err := New(Config{Self: n, BindAddr: loopback(i + 1), Port: port, Interval: testInterval, Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		m.SetPeers(peers)
		ctx, cancel := context.WithCancel(context.Background())
		nd := &node{m: m, cancel: cancel, done: make(chan error, 1)}
		go func() { nd.done <- m.Run(ctx) }()
		out[n] = nd
		t.Cleanup(nd.stop)
	}
	return out
}

func (n *node) stop() {
	n.cancel()
	<-n.done
	n.done <- nil // later stops return at once
}

// waitFor polls cond every millisecond for up to limit and returns how
// long it took, failing the test if it never held.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func liveSet(m *Membership, names ...string) []string {
	var out []string
	for _, n := range names {
		if m.Live(n) {
			out = append(out, n)
		}
	}
	return out
}

func TestClusterConvergesAndLeaves(t *testing.T) {
	port := freePort(t)
	names := []string{"node1", "node2", "node3"}
	c := cluster(t, port, names...)
	for _, n := range names {
		waitFor(t, time.Second, n+" hears everyone", func() bool {
			return len(liveSet(c[n].m, names...)) == 3 && !c[n].m.Fenced()
		})
	}
	// Members carries the peers' views: node2 comes to say it hears
	// node1 and node3.
	viewOf := func(node string) []string {
		for _, mb := range c["node1"].m.Members() {
			if mb.Node == node {
				return mb.View
			}
		}
		return nil
	}
	waitFor(t, time.Second, "node2's view reaches node1", func() bool {
		return cmp.Equal([]string{"node1", "node3"}, viewOf("node2"))
	})

	// A graceful leave is seen at once, well before the timeout.
	drain(c["node1"].m.Changes())
	c["node3"].stop()
	took := waitFor(t, time.Second, "node1 sees node3 leave", func() bool { return !c["node1"].m.Live("node3") })
	if took >= testTimeout {
		t.Errorf("leave took %s, want less than the timeout %s", took, testTimeout)
	}
	select {
	case <-c["node1"].m.Changes():
	default:
		t.Error("no change notified after node3 left")
	}
	// Two of three: node1 and node2 hear half their peers, not fenced.
	for _, n := range []string{"node1", "node2"} {
		if c[n].m.Fenced() {
			t.Errorf("%s fenced with one of two peers healthy", n)
		}
	}
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// fakePeer is a peer driven by hand: it sends heartbeats only when told,
// as a node that can be killed without saying goodbye.
type fakePeer struct {
	conn *net.UDPConn
	name string
	seq  uint64
	to   netip.AddrPort
}

func newFakePeer(t *testing.T, name string, addr netip.Addr, port uint16, to netip.AddrPort) *fakePeer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakePeer{conn: c, name: name, to: to}
}

func (f *fakePeer) beat(t *testing.T, inc uint64) {
	t.Helper()
	f.seq++
	b, err := (&message{Kind: kindHeartbeat, Incarnation: inc, Seq: f.seq, Node: f.name}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.WriteToUDPAddrPort(b, f.to); err != nil {
		t.Fatal(err)
	}
}

// A peer that falls silent is dead after Timeout, not before, and a
// node hearing none of its two peers is fenced.
func TestSilentPeerDiesAfterTimeoutAndFences(t *testing.T) {
	port := freePort(t)
	m, err := New(Config{Self: "node1", BindAddr: loopback(1), Port: port, Interval: testInterval, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPeers(map[string]netip.Addr{"node1": loopback(1), "node2": loopback(2), "node3": loopback(3)})
	if !m.Fenced() {
		t.Error("fenced before Run = false, want true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	to := netip.AddrPortFrom(loopback(1), port)
	p2 := newFakePeer(t, "node2", loopback(2), port, to)
	// A datagram naming node3 but sent from node2's address is refused.
	impostor := &fakePeer{conn: p2.conn, name: "node3", to: to}

	// Keep node2 beating for a while: healthy, not fenced once the
	// start-up window is over.
	for range 10 {
		p2.beat(t, 42)
		impostor.beat(t, 43)
		time.Sleep(testInterval)
	}
	if got := liveSet(m, "node1", "node2", "node3"); !cmp.Equal(got, []string{"node1", "node2"}) {
		t.Errorf("live = %v, want [node1 node2]", got)
	}
	if m.Fenced() {
		t.Error("fenced while hearing one of two peers")
	}

	last := time.Now()
	p2.beat(t, 42)
	waitFor(t, time.Second, "node2 declared dead", func() bool { return !m.Live("node2") })
	silence := time.Since(last)
	if silence < testTimeout {
		t.Errorf("node2 dead after %s of silence, before the timeout %s", silence, testTimeout)
	}
	if silence > testTimeout+testTimeout/8+50*time.Millisecond {
		t.Errorf("node2 dead after %s of silence, want about the timeout %s", silence, testTimeout)
	}
	if !m.Fenced() {
		t.Error("not fenced while hearing no peer of two")
	}

	// A restarted node2 (new incarnation, sequence starting over) is
	// welcomed back at its first heartbeat.
	p2.seq = 0
	p2.beat(t, 99)
	waitFor(t, time.Second, "node2 back", func() bool { return m.Live("node2") && !m.Fenced() })
}

// With a single peer there is no majority to find: a node whose only
// peer died keeps announcing.
func TestSinglePeerNeverFences(t *testing.T) {
	port := freePort(t)
	c := cluster(t, port, "node1", "node2")
	waitFor(t, time.Second, "pair converges", func() bool { return c["node1"].m.Live("node2") && !c["node1"].m.Fenced() })
	c["node2"].stop()
	waitFor(t, time.Second, "node2 gone", func() bool { return !c["node1"].m.Live("node2") })
	time.Sleep(2 * testTimeout)
	if c["node1"].m.Fenced() {
		t.Error("node1 fenced with its only peer dead")
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no self", Config{BindAddr: loopback(1)}},
		{"no address", Config{Self: "n"}},
		{"timeout too short", Config{Self: "n", BindAddr: loopback(1), Interval: time.Second, Timeout: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
	m, err := New(Config{Self: "n", BindAddr: loopback(1)})
	if err != nil {
		t.Fatal(err)
	}
	got := m.Config()
	if got.Port != DefaultPort || got.Interval != DefaultInterval || got.Timeout != DefaultTimeout {
		t.Errorf("defaults = port %d interval %s timeout %s", got.Port, got.Interval, got.Timeout)
	}
}
