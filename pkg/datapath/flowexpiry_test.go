// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// expiryEnv is one datapath on the packet lab, with the helpers the flow
// expiry tests share: send a frame through XDP and see what moved, and age
// a flow's bookkeeping as the passing of time would.
type expiryEnv struct {
	t *testing.T
	l *lab
	d *Datapath
}

func newExpiryEnv(t *testing.T, o Options) *expiryEnv {
	testutil.Privileged(t)
	l := newLab(t)
	o.PinDir, o.NodeIP4, o.MaxServices = testPinDir(t), labNodeIP, 64
	d, err := New(o)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Sync(packetState(), "node1"); err != nil {
		t.Fatal(err)
	}
	return &expiryEnv{t: t, l: l, d: d}
}

// send runs a frame through the XDP program and returns the verdict, the
// frame out and the reasons that moved.
func (e *expiryEnv) send(f pkt.IPv4) (uint32, pkt.Frame, map[string]uint64) {
	e.t.Helper()
	before, err := e.d.Reasons()
	if err != nil {
		e.t.Fatal(err)
	}
	ret, out, err := e.l.run(e.d.objs.LbXdp, true, f.MustBuild())
	if err != nil {
		e.t.Fatal(err)
	}
	after, err := e.d.Reasons()
	if err != nil {
		e.t.Fatal(err)
	}
	return ret, decoded(e.t, out), reasonDelta(before, after)
}

// request is a client's packet to a VIP; reply a backend's to the node.
func request(client, vip netip.AddrPort, proto uint8) pkt.IPv4 {
	return pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: client, Dst: vip, Proto: proto, TCPFlags: pkt.ACK, Payload: []byte("lbd")}
}

func reply(backend, to netip.AddrPort, proto uint8) pkt.IPv4 {
	return pkt.IPv4{SrcMAC: labNode2MAC, DstMAC: labLan0MAC, Src: backend, Dst: to, Proto: proto, TCPFlags: pkt.ACK, Payload: []byte("dbl")}
}

// age moves a flow's last packet from the client back by d, as if it had
// been idle that long (lb_now is CLOCK_MONOTONIC).
func (e *expiryEnv) age(client, vip netip.AddrPort, proto uint8, d time.Duration) {
	e.t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		e.t.Fatal(err)
	}
	k := flowKey(client, vip, proto)
	var ct lbLbCt
	if err := e.d.objs.LbConntrack.Lookup(k, &ct); err != nil {
		e.t.Fatalf("connection-table entry of %s: %v", client, err)
	}
	ct.LastSeen = uint64(ts.Nano() - d.Nanoseconds())
	if err := e.d.objs.LbConntrack.Put(k, ct); err != nil {
		e.t.Fatal(err)
	}
}

// revClient returns the client the reverse entry of the SNAT port (to
// backend) translates to, invalid if there is none.
func (e *expiryEnv) revClient(backend netip.AddrPort, port uint16, proto uint8) netip.AddrPort {
	e.t.Helper()
	var rv lbLbRev
	err := e.d.objs.LbRevnat.Lookup(flowKey(backend, ap(labNodeIP, port), proto), &rv)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return netip.AddrPort{}
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return ap(fromKeyAddr(rv.Client), htons(rv.Cport))
}

// TestPrivilegedRevnatEvicted: when the LRU evicts an established flow's
// reverse entry while its connection-table entry stays, the flow's next
// packet re-creates it (TCP: after the once-a-second refresh or on a SYN;
// UDP: any packet), counted as revnat_evicted, and the backend's replies
// are translated again. Before the fix a connection-table hit never
// re-created it and the connection hung.
func TestPrivilegedRevnatEvicted(t *testing.T) {
	e := newExpiryEnv(t, Options{})
	udpVIP := ap(vipWeb, 53)
	udpBE := ap(remoteEP, 9000)
	for _, c := range []struct {
		name         string
		proto        uint8
		client       netip.AddrPort
		vip, backend netip.AddrPort
	}{
		{"tcp", pkt.TCP, ap(labClient, 47001), webHTTP, webBE},
		{"udp", pkt.UDP, ap(labClient, 47002), udpVIP, udpBE},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			first := request(c.client, c.vip, c.proto)
			first.TCPFlags = pkt.SYN
			ret, out, moved := e.send(first)
			if ret != sentBack.code(true) {
				t.Fatalf("first packet: verdict %d, reasons %v", ret, moved)
			}
			port := out.Src.Port()
			// The LRU evicts the reverse entry.
			if err := e.d.objs.LbRevnat.Delete(flowKey(c.backend, ap(labNodeIP, port), c.proto)); err != nil {
				t.Fatal(err)
			}
			if c.proto == pkt.TCP {
				// Within the refresh interval an established TCP
				// packet checks nothing (the cost stays off its
				// path)...
				if _, _, moved := e.send(request(c.client, c.vip, c.proto)); moved["revnat_evicted"] != 0 {
					t.Errorf("reverse entry checked within the refresh interval: %v", moved)
				}
				// ...after it, the entry is re-created, once.
				e.age(c.client, c.vip, c.proto, 1500*time.Millisecond)
			}
			ret, out, moved = e.send(request(c.client, c.vip, c.proto))
			if ret != sentBack.code(true) || out.Src.Port() != port {
				t.Errorf("packet after eviction: verdict %d, SNAT port %d, want XDP_TX on port %d", ret, out.Src.Port(), port)
			}
			if diff := cmp.Diff(map[string]uint64{"fwd": 1, "revnat_evicted": 1}, moved); diff != "" {
				t.Errorf("reasons moved (-want +got):\n%s", diff)
			}
			if got := e.revClient(c.backend, port, c.proto); got != c.client {
				t.Fatalf("reverse entry of port %d after the refresh: %v, want %s", port, got, c.client)
			}
			ret, out, moved = e.send(reply(c.backend, ap(labNodeIP, port), c.proto))
			if ret != sentBack.code(true) || out.Src != c.vip || out.Dst != c.client {
				t.Errorf("reply: verdict %d, %s -> %s, want XDP_TX %s -> %s (reasons %v)", ret, out.Src, out.Dst, c.vip, c.client, moved)
			}
			// A refresh that finds the entry in place counts nothing.
			e.age(c.client, c.vip, c.proto, 1500*time.Millisecond)
			if _, _, moved := e.send(request(c.client, c.vip, c.proto)); cmp.Diff(map[string]uint64{"fwd": 1}, moved) != "" {
				t.Errorf("refresh with the reverse entry in place moved %v, want fwd only", moved)
			}
			if c.proto != pkt.TCP {
				return
			}
			// A SYN on the flow (a client port reused while the old
			// flow is in the table) checks at once.
			if err := e.d.objs.LbRevnat.Delete(flowKey(c.backend, ap(labNodeIP, port), c.proto)); err != nil {
				t.Fatal(err)
			}
			syn := request(c.client, c.vip, c.proto)
			syn.TCPFlags = pkt.SYN
			if _, _, moved := e.send(syn); cmp.Diff(map[string]uint64{"fwd": 1, "revnat_evicted": 1}, moved) != "" {
				t.Errorf("SYN on a flow without its reverse entry moved %v, want fwd and revnat_evicted", moved)
			}
		})
	}
}

// TestPrivilegedSNATIdleReclaim: with a single SNAT port, a UDP flow
// holds it while active (by the client's packets or the backend's
// replies); idle longer than UDPIdleTimeout, a new flow takes the port
// over, and the old flow, when it comes back, does not get the new flow's
// replies: it finds its port gone and claims another (here: none left,
// drop_no_snat_port). A TCP flow idle as long keeps its port
// (TCPIdleTimeout is hours).
func TestPrivilegedSNATIdleReclaim(t *testing.T) {
	const port = 61000
	e := newExpiryEnv(t, Options{SNATPortMin: port, SNATPortMax: port, UDPIdleTimeout: 3 * time.Second})
	vip, backend := ap(vipWeb, 53), ap(remoteEP, 9000)
	a, b, c := ap(labClient, 48001), ap(labClient, 48002), ap(labClient, 48003)

	ret, out, moved := e.send(request(a, vip, pkt.UDP))
	if ret != sentBack.code(true) || out.Src.Port() != port {
		t.Fatalf("flow a: verdict %d, SNAT port %d (reasons %v), want XDP_TX on %d", ret, out.Src.Port(), moved, port)
	}
	// Active: b finds no port.
	if _, _, moved := e.send(request(b, vip, pkt.UDP)); cmp.Diff(map[string]uint64{"drop_no_snat_port": 1}, moved) != "" {
		t.Errorf("flow b while a is active: reasons %v, want drop_no_snat_port", moved)
	}
	// Silent client, but the backend replied within the timeout: still
	// active.
	e.age(a, vip, pkt.UDP, 10*time.Second)
	if ret, out, _ := e.send(reply(backend, ap(labNodeIP, port), pkt.UDP)); ret != sentBack.code(true) || out.Dst != a {
		t.Fatalf("reply to a: verdict %d, to %s", ret, out.Dst)
	}
	if _, _, moved := e.send(request(b, vip, pkt.UDP)); cmp.Diff(map[string]uint64{"drop_no_snat_port": 1}, moved) != "" {
		t.Errorf("flow b while a's backend replies: reasons %v, want drop_no_snat_port", moved)
	}
	// Idle both ways past the timeout (the reply stamp is in ~1 s ticks).
	var rv lbLbRev
	rk := flowKey(backend, ap(labNodeIP, port), pkt.UDP)
	if err := e.d.objs.LbRevnat.Lookup(rk, &rv); err != nil {
		t.Fatal(err)
	}
	rv.LastReply -= 10
	if err := e.d.objs.LbRevnat.Put(rk, rv); err != nil {
		t.Fatal(err)
	}
	ret, out, moved = e.send(request(b, vip, pkt.UDP))
	if ret != sentBack.code(true) || out.Src.Port() != port {
		t.Fatalf("flow b after a went idle: verdict %d, SNAT port %d (reasons %v), want XDP_TX on %d", ret, out.Src.Port(), moved, port)
	}
	if got := e.revClient(backend, port, pkt.UDP); got != b {
		t.Errorf("port %d translates back to %s, want b %s", port, got, b)
	}
	// a comes back: its port is b's now, so a is a new flow, and with
	// no other port it is dropped instead of sharing b's.
	ret, _, moved = e.send(request(a, vip, pkt.UDP))
	if ret != dropped.code(true) || cmp.Diff(map[string]uint64{"drop_no_snat_port": 1}, moved) != "" {
		t.Errorf("flow a back after its port was reclaimed: verdict %d, reasons %v; want drop_no_snat_port", ret, moved)
	}
	if got := e.revClient(backend, port, pkt.UDP); got != b {
		t.Errorf("port %d translates back to %s after a came back, want b %s", port, got, b)
	}

	// TCP (its own reverse keys: another protocol and backend port):
	// idle as long, the port stays with its flow.
	ret, out, moved = e.send(request(c, webHTTP, pkt.TCP))
	if ret != sentBack.code(true) || out.Src.Port() != port {
		t.Fatalf("tcp flow c: verdict %d, SNAT port %d (reasons %v)", ret, out.Src.Port(), moved)
	}
	e.age(c, webHTTP, pkt.TCP, 10*time.Second)
	d := ap(labClient, 48004)
	if _, _, moved := e.send(request(d, webHTTP, pkt.TCP)); cmp.Diff(map[string]uint64{"drop_no_snat_port": 1}, moved) != "" {
		t.Errorf("tcp flow d while c is idle 10 s: reasons %v, want drop_no_snat_port", moved)
	}
}

// TestIdleTimeoutOptions: the idle timeouts default as documented and
// refuse values under the datapath's refresh interval.
func TestIdleTimeoutOptions(t *testing.T) {
	o := Options{}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.UDPIdleTimeout != DefaultUDPIdleTimeout || o.TCPIdleTimeout != DefaultTCPIdleTimeout {
		t.Errorf("defaults udp %s tcp %s, want %s and %s", o.UDPIdleTimeout, o.TCPIdleTimeout, DefaultUDPIdleTimeout, DefaultTCPIdleTimeout)
	}
	for _, bad := range []Options{{UDPIdleTimeout: 999 * time.Millisecond}, {TCPIdleTimeout: 500 * time.Millisecond}} {
		if err := bad.defaults(); err == nil {
			t.Errorf("options %+v accepted, want an error", bad)
		}
	}
}
