// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

func TestRunReturnsAfterCancel(t *testing.T) {
	a := New(nil)
	stop := runAnnouncer(t, a)
	stop()
	if err := a.Set("lo", []netip.Addr{netip.MustParseAddr("10.20.1.1")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Run returned: %v, want ErrClosed", err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run: %v, want ErrClosed", err)
	}
	assertNoResponderGoroutines(t)
}

func TestSetValidation(t *testing.T) {
	a := New(testLogger(t))
	runAnnouncer(t, a)
	tests := []struct {
		name  string
		iface string
		vips  []netip.Addr
	}{
		{"invalid address", "lo", []netip.Addr{{}}},
		{"multicast", "lo", []netip.Addr{netip.MustParseAddr("224.0.0.1")}},
		{"unspecified", "lo", []netip.Addr{netip.IPv6Unspecified()}},
		{"missing interface", "lbd-no-such-if0", []netip.Addr{netip.MustParseAddr("10.20.1.1")}},
		// Loopback has no Ethernet address to answer with.
		{"no MAC", "lo", []netip.Addr{netip.MustParseAddr("10.20.1.1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Set(tt.iface, tt.vips); err == nil {
				t.Errorf("Set(%q, %v) succeeded, want error", tt.iface, tt.vips)
			}
		})
	}
	// Releasing everything on an interface never set is a no-op.
	if err := a.Set("lbd-no-such-if0", nil); err != nil {
		t.Errorf("Set with no VIPs: %v", err)
	}
	if diff := cmp.Diff(map[string]Stats{}, a.Stats()); diff != "" {
		t.Errorf("Stats after failed Sets (-want +got):\n%s", diff)
	}
}

func TestSplitVIPs(t *testing.T) {
	in := []netip.Addr{
		netip.MustParseAddr("fd00::2"),
		netip.MustParseAddr("10.20.1.2"),
		netip.MustParseAddr("::ffff:10.20.1.1"),
		netip.MustParseAddr("10.20.1.1"),
		netip.MustParseAddr("fd00::1%eth0"),
	}
	v4, v6, err := splitVIPs(in)
	if err != nil {
		t.Fatal(err)
	}
	want4 := []netip.Addr{netip.MustParseAddr("10.20.1.1"), netip.MustParseAddr("10.20.1.2")}
	want6 := []netip.Addr{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")}
	if diff := cmp.Diff(want4, v4, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("v4 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want6, v6, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("v6 (-want +got):\n%s", diff)
	}
}

func TestBurstSchedule(t *testing.T) {
	var (
		mu   sync.Mutex
		sent = make(map[netip.Addr][]time.Time)
	)
	b := newBurst(gratuitousGaps, func(v netip.Addr) {
		mu.Lock()
		sent[v] = append(sent[v], time.Now())
		mu.Unlock()
	})
	go b.run()
	defer b.close()

	x, y := netip.MustParseAddr("10.20.1.1"), netip.MustParseAddr("10.20.1.2")
	start := time.Now()
	b.start(x)
	b.start(y)
	// Cancel y between its first and second packet.
	time.Sleep(30 * time.Millisecond)
	b.cancel(y)
	time.Sleep(900 * time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	if got := len(sent[x]); got != 3 {
		t.Fatalf("%s: %d packets, want 3", x, got)
	}
	if got := len(sent[y]); got != 1 {
		t.Errorf("%s cancelled after the first packet: %d packets, want 1", y, got)
	}
	// Timers never fire early, so these lower bounds are exact; upper
	// bounds are loose for a busy machine.
	if d := sent[x][1].Sub(start); d < 100*time.Millisecond {
		t.Errorf("second packet after %v, want >= 100ms", d)
	}
	if d := sent[x][2].Sub(sent[x][1]); d < 500*time.Millisecond {
		t.Errorf("third packet %v after the second, want >= 500ms", d)
	}
	if d := sent[x][2].Sub(start); d > 850*time.Millisecond {
		t.Errorf("third packet after %v, want about 600ms", d)
	}
}

// fakePacketConn is an in-memory net.PacketConn honouring the contract
// the responder relies on: ReadFrom blocks until a frame arrives or the
// conn is closed, and Close makes every pending and later call fail
// with net.ErrClosed.
type fakePacketConn struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newFakePacketConn() *fakePacketConn {
	return &fakePacketConn{
		in:     make(chan []byte),
		out:    make(chan []byte, 64),
		closed: make(chan struct{}),
	}
}

func (c *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case f := <-c.in:
		var src ethernet.Frame
		_ = src.UnmarshalBinary(f)
		return copy(b, f), &packet.Addr{HardwareAddr: src.Source}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	select {
	case c.out <- bytes.Clone(b):
		return len(b), nil
	default:
		return 0, errors.New("fake conn: output full")
	}
}

func (c *fakePacketConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() { close(c.closed); err = nil })
	return err
}

func (c *fakePacketConn) LocalAddr() net.Addr              { return &packet.Addr{} }
func (c *fakePacketConn) SetDeadline(time.Time) error      { return nil }
func (c *fakePacketConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakePacketConn) SetWriteDeadline(time.Time) error { return nil }

// inject delivers frame to the responder's next ReadFrom.
func (c *fakePacketConn) inject(t *testing.T, frame []byte) {
	t.Helper()
	select {
	case c.in <- frame:
	case <-time.After(2 * time.Second):
		t.Fatal("responder did not read an injected frame within 2s")
	}
}

// drain returns the frames written so far.
func (c *fakePacketConn) drain() (frames [][]byte) {
	for {
		select {
		case f := <-c.out:
			frames = append(frames, f)
		default:
			return frames
		}
	}
}

func arpFrame(t *testing.T, op arp.Operation, srcMAC net.HardwareAddr, srcIP netip.Addr, dstMAC net.HardwareAddr, dstIP netip.Addr, ethDst net.HardwareAddr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, srcMAC, srcIP, dstMAC, dstIP)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := &ethernet.Frame{Destination: ethDst, Source: srcMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}
	fb, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

type decodedARP struct {
	EthDst, EthSrc     string
	Op                 arp.Operation
	SenderMAC, TgtMAC  string
	SenderIP, TargetIP netip.Addr
}

func decodeARP(t *testing.T, b []byte) decodedARP {
	t.Helper()
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	return decodedARP{
		EthDst: f.Destination.String(), EthSrc: f.Source.String(), Op: p.Operation,
		SenderMAC: p.SenderHardwareAddr.String(), TgtMAC: p.TargetHardwareAddr.String(),
		SenderIP: p.SenderIP, TargetIP: p.TargetIP,
	}
}

// nextReply waits for the responder's next ARP reply, appending the
// gratuitous ARPs sent meanwhile to *garps.
func nextReply(t *testing.T, c *fakePacketConn, garps *[]decodedARP) decodedARP {
	t.Helper()
	timeout := time.After(2 * time.Second)
	for {
		select {
		case b := <-c.out:
			d := decodeARP(t, b)
			if d.Op == arp.OperationReply {
				return d
			}
			*garps = append(*garps, d)
		case <-timeout:
			t.Fatal("no ARP reply within 2s")
		}
	}
}

func TestARPResponderFake(t *testing.T) {
	ourMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x51}
	peerMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc8}
	otherNode := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x52}
	peerIP := netip.MustParseAddr("10.20.0.200")
	owned := netip.MustParseAddr("10.20.1.1")
	unowned := netip.MustParseAddr("10.20.1.2")
	bcast := ethernet.Broadcast

	conn := newFakePacketConn()
	c := &counters{}
	ifi := &net.Interface{Index: 7, Name: "fake0", HardwareAddr: ourMAC}
	r := startARPResponder(testLogger(t), ifi, conn, c)
	defer r.close()
	r.set([]netip.Addr{owned})

	// Gratuitous ARP in request form, then the first reply only answers
	// the owned VIP: handling is sequential, so the frames injected
	// before it (unowned target, our own frame looped back, another
	// node's claim) produced no reply.
	conn.inject(t, arpFrame(t, arp.OperationRequest, peerMAC, peerIP, bcast, unowned, bcast))
	conn.inject(t, arpFrame(t, arp.OperationRequest, ourMAC, owned, bcast, owned, bcast))
	conn.inject(t, arpFrame(t, arp.OperationReply, otherNode, owned, peerMAC, peerIP, peerMAC))
	conn.inject(t, arpFrame(t, arp.OperationRequest, peerMAC, peerIP, bcast, owned, bcast))

	want := decodedARP{
		EthDst: peerMAC.String(), EthSrc: ourMAC.String(), Op: arp.OperationReply,
		SenderMAC: ourMAC.String(), TgtMAC: peerMAC.String(),
		SenderIP: owned, TargetIP: peerIP,
	}
	addrCmp := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	var garps []decodedARP
	if diff := cmp.Diff(want, nextReply(t, conn, &garps), addrCmp); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	if got := c.conflicts.Load(); got != 1 {
		t.Errorf("conflicts = %d, want 1", got)
	}
	if got := c.answered.Load(); got != 1 {
		t.Errorf("answered = %d, want 1", got)
	}

	// Wait out the gratuitous burst and check its three frames.
	time.Sleep(800 * time.Millisecond)
	for _, b := range conn.drain() {
		garps = append(garps, decodeARP(t, b))
	}
	g := decodedARP{
		EthDst: bcast.String(), EthSrc: ourMAC.String(), Op: arp.OperationRequest,
		SenderMAC: ourMAC.String(), TgtMAC: bcast.String(), SenderIP: owned, TargetIP: owned,
	}
	if diff := cmp.Diff([]decodedARP{g, g, g}, garps, addrCmp); diff != "" {
		t.Errorf("gratuitous ARPs (-want +got):\n%s", diff)
	}

	// After release, a request for the VIP goes unanswered, and a new VIP
	// gets its own burst while the kept one stays quiet.
	next := netip.MustParseAddr("10.20.1.3")
	r.set([]netip.Addr{next})
	conn.inject(t, arpFrame(t, arp.OperationRequest, peerMAC, peerIP, bcast, owned, bcast))
	conn.inject(t, arpFrame(t, arp.OperationRequest, peerMAC, peerIP, bcast, next, bcast))
	if got := nextReply(t, conn, &garps); got.SenderIP != next {
		t.Errorf("first reply after release is for %s, want %s", got.SenderIP, next)
	}
}
