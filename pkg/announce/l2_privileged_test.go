// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
)

// l2Pair is two network namespaces joined by a veth pair: node A runs the
// Announcer, client B asks for VIPs.
type l2Pair struct {
	a, b       *testutil.NetNS
	ifA, ifB   string
	macA, macB net.HardwareAddr
	ipv6       bool
}

// newL2Pair creates the namespaces and the veth (inside A, peer moved to
// B) and gives each end its addresses. Interface names must be unique in
// the test binary (see Announcer on zone names).
func newL2Pair(t *testing.T, ifA, ifB string, addrA, addrB netip.Prefix) *l2Pair {
	t.Helper()
	p := &l2Pair{a: testutil.NewNetNS(t), b: testutil.NewNetNS(t), ifA: ifA, ifB: ifB}
	err := p.a.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifA}, PeerName: ifB}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s: %w", ifA, err)
		}
		peer, err := netlink.LinkByName(ifB)
		if err != nil {
			return fmt.Errorf("find peer %s: %w", ifB, err)
		}
		if err := netlink.LinkSetNsFd(peer, int(p.b.Handle())); err != nil {
			return fmt.Errorf("move %s to netns B: %w", ifB, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.a.Do(func() error { return configureLink(ifA, addrA, &p.macA, &p.ipv6) }); err != nil {
		t.Fatal(err)
	}
	var v6B bool
	if err := p.b.Do(func() error { return configureLink(ifB, addrB, &p.macB, &v6B) }); err != nil {
		t.Fatal(err)
	}
	p.ipv6 = p.ipv6 && v6B
	if p.ipv6 {
		for _, side := range []struct {
			ns   *testutil.NetNS
			name string
		}{{p.a, ifA}, {p.b, ifB}} {
			if err := side.ns.Do(func() error { return waitLinkLocal(side.name) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

// configureLink runs inside the link's namespace: it turns off duplicate
// address detection (the namespace is ours and DAD would only delay the
// link-local address the NDP socket binds to), adds addr and sets the
// link up.
func configureLink(name string, addr netip.Prefix, mac *net.HardwareAddr, hasIPv6 *bool) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	*mac = link.Attrs().HardwareAddr
	// /proc/sys/net resolves against the calling thread's namespace, and
	// the file of this interface exists only in this namespace.
	disabled, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6")
	*hasIPv6 = err == nil && strings.TrimSpace(string(disabled)) == "0"
	if *hasIPv6 {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", []byte("0"), 0o644); err != nil {
			return fmt.Errorf("disable DAD on %s: %w", name, err)
		}
	}
	if addr.IsValid() && (addr.Addr().Is4() || *hasIPv6) {
		a := &netlink.Addr{IPNet: &net.IPNet{
			IP:   addr.Addr().AsSlice(),
			Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen()),
		}}
		if addr.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", addr, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// waitLinkLocal waits until name has a usable (not tentative) link-local
// address, which the NDP socket binds to.
func waitLinkLocal(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no usable link-local address on %s after 5s", name)
}

func (p *l2Pair) set(t *testing.T, a *Announcer, vips ...netip.Addr) {
	t.Helper()
	// Set opens sockets in the calling thread's namespace: call it in A.
	if err := p.a.Do(func() error { return a.Set(p.ifA, vips) }); err != nil {
		t.Fatalf("Set(%s, %v): %v", p.ifA, vips, err)
	}
}

// arpClient opens an ARP client on B's end of the veth.
func (p *l2Pair) arpClient(t *testing.T) *arp.Client {
	t.Helper()
	var c *arp.Client
	err := p.b.Do(func() error {
		ifi, err := net.InterfaceByName(p.ifB)
		if err != nil {
			return fmt.Errorf("find %s: %w", p.ifB, err)
		}
		c, err = arp.Dial(ifi)
		if err != nil {
			return fmt.Errorf("dial ARP on %s: %w", p.ifB, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func resolve(c *arp.Client, vip netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	return c.Resolve(vip)
}

func wantResolve(t *testing.T, c *arp.Client, vip netip.Addr, want net.HardwareAddr) {
	t.Helper()
	got, err := resolve(c, vip, 2*time.Second)
	if err != nil {
		t.Fatalf("resolve %s: %v", vip, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("resolve %s = %s, want A's MAC %s", vip, got, want)
	}
}

func wantNoAnswer(t *testing.T, c *arp.Client, vip netip.Addr) {
	t.Helper()
	got, err := resolve(c, vip, 300*time.Millisecond)
	if err == nil {
		t.Fatalf("resolve %s answered by %s, want no answer", vip, got)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("resolve %s: %v, want a timeout", vip, err)
	}
}

// drainARP discards what c has buffered, so that the next read sees only
// what comes after.
func drainARP(t *testing.T, c *arp.Client) {
	t.Helper()
	for {
		if err := c.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(); errors.Is(err, os.ErrDeadlineExceeded) {
			return
		} else if err != nil {
			t.Fatalf("drain ARP: %v", err)
		}
	}
}

// garpSeen is one gratuitous ARP observed by B.
type garpSeen struct {
	at  time.Time
	vip netip.Addr
}

// readGARPs reads ARP on c until n gratuitous ARPs from mac arrived or
// the timeout passed, and returns them all. It checks their form.
func readGARPs(t *testing.T, c *arp.Client, mac net.HardwareAddr, n int, timeout time.Duration) []garpSeen {
	t.Helper()
	var seen []garpSeen
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	for len(seen) < n {
		p, f, err := c.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("read ARP: %v", err)
		}
		if !bytes.Equal(p.SenderHardwareAddr, mac) || p.SenderIP != p.TargetIP {
			continue
		}
		if p.Operation != arp.OperationRequest || !bytes.Equal(f.Destination, ethernet.Broadcast) {
			t.Errorf("gratuitous ARP for %s: op %s to %s, want broadcast request", p.SenderIP, p.Operation, f.Destination)
		}
		seen = append(seen, garpSeen{at: time.Now(), vip: p.SenderIP})
	}
	return seen
}

func TestPrivilegedARP(t *testing.T) {
	testutil.Privileged(t)
	p := newL2Pair(t, "arpA", "arpB",
		netip.MustParsePrefix("10.20.0.51/22"), netip.MustParsePrefix("10.20.0.200/22"))
	var (
		vip1    = netip.MustParseAddr("10.20.1.1")
		vip2    = netip.MustParseAddr("10.20.1.2")
		vip3    = netip.MustParseAddr("10.20.1.3")
		ann     = New(testLogger(t))
		stopRun = runAnnouncer(t, ann)
		client  = p.arpClient(t)
	)

	p.set(t, ann, vip1)
	t.Run("owned VIP resolves to A", func(t *testing.T) { wantResolve(t, client, vip1, p.macA) })
	t.Run("unowned VIP gets no answer", func(t *testing.T) { wantNoAnswer(t, client, vip2) })

	// Let vip1's burst finish and forget it, so that a gratuitous ARP
	// for vip1 below would be a repeat for a VIP already owned.
	time.Sleep(700 * time.Millisecond)
	drainARP(t, client)
	t.Run("takeover sends gratuitous ARP", func(t *testing.T) {
		start := time.Now()
		p.set(t, ann, vip1, vip3)
		seen := readGARPs(t, client, p.macA, 3, 3*time.Second)
		var vips []netip.Addr
		for _, s := range seen {
			vips = append(vips, s.vip)
		}
		if diff := cmp.Diff([]netip.Addr{vip3, vip3, vip3}, vips, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Fatalf("gratuitous ARPs seen by B (-want +got):\n%s", diff)
		}
		// Sends are never early, so the receive times bound the schedule
		// from below exactly.
		if d := seen[1].at.Sub(start); d < 100*time.Millisecond {
			t.Errorf("second gratuitous ARP %v after Set, want >= 100ms", d)
		}
		if d := seen[2].at.Sub(start); d < 600*time.Millisecond {
			t.Errorf("third gratuitous ARP %v after Set, want >= 600ms", d)
		}
	})

	t.Run("released VIP gets no answer", func(t *testing.T) {
		p.set(t, ann, vip3)
		wantNoAnswer(t, client, vip1)
		wantResolve(t, client, vip3, p.macA)
	})

	t.Run("conflict is counted", func(t *testing.T) {
		// B claims vip3 with a gratuitous ARP of its own.
		garp, err := arp.NewPacket(arp.OperationRequest, p.macB, vip3, ethernet.Broadcast, vip3)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.WriteTo(garp, ethernet.Broadcast); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for ann.Stats()[p.ifA].Conflicts == 0 {
			if time.Now().After(deadline) {
				t.Fatal("conflict not counted within 2s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	want := Stats{VIPs: []netip.Addr{vip3}, Answered: 2, Gratuitous: 6, Conflicts: 1}
	if diff := cmp.Diff(map[string]Stats{p.ifA: want}, ann.Stats(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}

	t.Run("no VIPs closes the responder", func(t *testing.T) {
		p.set(t, ann)
		if got := responderGoroutines(); len(got) != 0 {
			t.Errorf("%d responder goroutines after the last VIP left", len(got))
		}
		wantNoAnswer(t, client, vip3)
	})

	// Reopen lazily, then stop Run with the responder open.
	p.set(t, ann, vip3)
	wantResolve(t, client, vip3, p.macA)
	stopRun()
	assertNoResponderGoroutines(t)
	wantNoAnswer(t, client, vip3)
	if err := p.a.Do(func() error { return ann.Set(p.ifA, []netip.Addr{vip3}) }); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Run returned: %v, want ErrClosed", err)
	}
}

// ndpClient is B's side of the NDP test: a socket on B's veth that sees
// the destination of what it reads.
type ndpClient struct {
	conn *ndp.Conn
	mac  net.HardwareAddr
}

func (p *l2Pair) ndpClient(t *testing.T) *ndpClient {
	t.Helper()
	var c *ndp.Conn
	err := p.b.Do(func() error {
		ifi, err := net.InterfaceByName(p.ifB)
		if err != nil {
			return fmt.Errorf("find %s: %w", p.ifB, err)
		}
		c, _, err = ndp.Listen(ifi, ndp.LinkLocal)
		if err != nil {
			return fmt.Errorf("listen NDP on %s: %w", p.ifB, err)
		}
		if err := c.SetControlMessage(ipv6.FlagDst, true); err != nil {
			return fmt.Errorf("enable destination control messages: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &ndpClient{conn: c, mac: p.macB}
}

// drain discards what c has buffered.
func (c *ndpClient) drain(t *testing.T) {
	t.Helper()
	for {
		if err := c.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := c.conn.ReadFrom(); errors.Is(err, os.ErrDeadlineExceeded) {
			return
		} else if err != nil {
			t.Fatalf("drain NDP: %v", err)
		}
	}
}

// seenNA is a Neighbor Advertisement read by the client.
type seenNA struct {
	Target              netip.Addr
	Dst                 netip.Addr
	MAC                 string
	Solicited, Override bool
}

// solicit sends a Neighbor Solicitation for target to its solicited-node
// group, as a host resolving the VIP does.
func (c *ndpClient) solicit(t *testing.T, target netip.Addr) {
	t.Helper()
	snm, err := ndp.SolicitedNodeMulticast(target)
	if err != nil {
		t.Fatal(err)
	}
	ns := &ndp.NeighborSolicitation{
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: c.mac}},
	}
	if err := c.conn.WriteTo(ns, nil, snm); err != nil {
		t.Fatalf("send NS for %s: %v", target, err)
	}
}

// readNAs reads advertisements until match has accepted n of them or the
// timeout passed.
func (c *ndpClient) readNAs(t *testing.T, n int, timeout time.Duration, match func(seenNA) bool) []seenNA {
	t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	var out []seenNA
	for len(out) < n {
		msg, cm, _, err := c.conn.ReadFrom()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("read NDP: %v", err)
		}
		na, ok := msg.(*ndp.NeighborAdvertisement)
		if !ok {
			continue
		}
		s := seenNA{Target: na.TargetAddress, Solicited: na.Solicited, Override: na.Override}
		if mac := targetLinkLayer(na); mac != nil {
			s.MAC = mac.String()
		}
		if cm != nil {
			s.Dst, _ = netip.AddrFromSlice(cm.Dst)
		}
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

func TestPrivilegedNDP(t *testing.T) {
	testutil.Privileged(t)
	p := newL2Pair(t, "ndpA", "ndpB",
		netip.MustParsePrefix("fd00::51/64"), netip.MustParsePrefix("fd00::100/64"))
	if !p.ipv6 {
		t.Skip("IPv6 is disabled in the test network namespaces")
	}
	var (
		vip1    = netip.MustParseAddr("fd00::a1")
		vip2    = netip.MustParseAddr("fd00::a2")
		vip3    = netip.MustParseAddr("fd00::a3")
		ann     = New(testLogger(t))
		stopRun = runAnnouncer(t, ann)
		client  = p.ndpClient(t)
		addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	)
	solicitedFor := func(vip netip.Addr) func(seenNA) bool {
		return func(s seenNA) bool { return s.Target == vip && s.Solicited }
	}

	p.set(t, ann, vip1)
	t.Run("owned VIP answers solicitation", func(t *testing.T) {
		client.solicit(t, vip1)
		got := client.readNAs(t, 1, 2*time.Second, solicitedFor(vip1))
		want := []seenNA{{Target: vip1, MAC: p.macA.String(), Solicited: true, Override: true}}
		// The reply is unicast to B's link-local address; only its
		// content is compared.
		for i := range got {
			got[i].Dst = netip.Addr{}
		}
		if diff := cmp.Diff(want, got, addrCmp); diff != "" {
			t.Errorf("advertisements (-want +got):\n%s", diff)
		}
	})
	t.Run("unowned VIP gets no answer", func(t *testing.T) {
		client.solicit(t, vip2)
		if got := client.readNAs(t, 1, 300*time.Millisecond, func(s seenNA) bool { return s.Target == vip2 }); len(got) != 0 {
			t.Errorf("unowned %s advertised: %+v", vip2, got)
		}
	})

	// As for ARP: finish and forget vip1's burst first.
	time.Sleep(700 * time.Millisecond)
	client.drain(t)
	t.Run("takeover sends unsolicited NA", func(t *testing.T) {
		start := time.Now()
		p.set(t, ann, vip1, vip3)
		got := client.readNAs(t, 3, 3*time.Second, func(s seenNA) bool { return !s.Solicited })
		u := seenNA{Target: vip3, Dst: allNodes, MAC: p.macA.String(), Override: true}
		if diff := cmp.Diff([]seenNA{u, u, u}, got, addrCmp); diff != "" {
			t.Errorf("unsolicited advertisements (-want +got):\n%s", diff)
		}
		if d := time.Since(start); d < 600*time.Millisecond {
			t.Errorf("three unsolicited advertisements within %v, want the last >= 600ms after Set", d)
		}
	})

	t.Run("released VIP gets no answer", func(t *testing.T) {
		p.set(t, ann, vip3)
		client.solicit(t, vip1)
		if got := client.readNAs(t, 1, 300*time.Millisecond, solicitedFor(vip1)); len(got) != 0 {
			t.Errorf("released %s advertised: %+v", vip1, got)
		}
		client.solicit(t, vip3)
		if got := client.readNAs(t, 1, 2*time.Second, solicitedFor(vip3)); len(got) != 1 {
			t.Errorf("owned %s not advertised after releasing %s", vip3, vip1)
		}
	})

	t.Run("conflict is counted", func(t *testing.T) {
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: vip3,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: p.macB}},
		}
		if err := client.conn.WriteTo(na, nil, allNodes); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for ann.Stats()[p.ifA].Conflicts == 0 {
			if time.Now().After(deadline) {
				t.Fatal("conflict not counted within 2s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	want := Stats{VIPs: []netip.Addr{vip3}, Answered: 2, Gratuitous: 6, Conflicts: 1}
	if diff := cmp.Diff(map[string]Stats{p.ifA: want}, ann.Stats(), addrCmp); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}

	stopRun()
	assertNoResponderGoroutines(t)
	client.solicit(t, vip3)
	if got := client.readNAs(t, 1, 300*time.Millisecond, solicitedFor(vip3)); len(got) != 0 {
		t.Errorf("%s still advertised after Run returned: %+v", vip3, got)
	}
}
