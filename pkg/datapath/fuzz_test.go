// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"bytes"
	"encoding/binary"
	hexpkg "encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// Hostile input: every frame below goes through lb_xdp, lb_tc_ingress and
// lb_tc_egress with BPF_PROG_TEST_RUN, and every outcome is judged by the
// same oracle (fuzzEnv.check), whatever the frame was:
//
//  1. a frame for neither a VIP nor the node's IPv4 address (ingress), or
//     not from a backend (egress: only replies of local backends are
//     translated there), leaves byte-identical with the pass verdict;
//  2. a frame that leaves modified (and not dropped) keeps every checksum
//     that was valid on the way in valid (IPv4 header, TCP/UDP over the
//     pseudo-header, ICMP and its quoted IPv4 header), and a UDP checksum
//     is 0 on the way out only if it was 0 on the way in;
//  3. the verdict is one the datapath can give;
//  4. an ingress run moves exactly one lb_reasons counter, one that fits
//     the verdict (drops come with a drop_* reason); an egress run moves
//     at most one (revnat or drop_malformed);
//  5. test_run itself never fails for a frame of at least fuzzMinFrame
//     bytes (the kernel's own minimum, checked separately).

// fuzzMinFrame is the shortest frame BPF_PROG_TEST_RUN takes: it refuses
// data shorter than ETH_HLEN with EINVAL, for XDP and TC alike. TC asks
// more (fuzzMinLen).
const fuzzMinFrame = 14

// fuzzMinLen is the shortest frame test_run takes for p with b's
// ethertype: bpf_prog_test_run_skb also refuses (EINVAL) an IPv4 frame
// without a whole struct iphdr and an IPv6 frame without a whole struct
// ipv6hdr after the Ethernet header (kernel 6.18; XDP has no such check).
func fuzzMinLen(p fuzzProg, b []byte) int {
	if p.xdp || len(b) < 14 {
		return fuzzMinFrame
	}
	switch binary.BigEndian.Uint16(b[12:14]) {
	case 0x0800:
		return 14 + 20
	case 0x86dd:
		return 14 + 40
	}
	return fuzzMinFrame
}

// fuzzMaxFrame keeps frames within one Ethernet MTU; test_run's own limit
// is near a page.
const fuzzMaxFrame = 1514

// fuzzDefaultSeed is the PRNG seed of the randomized part; LBD_FUZZ_SEED
// overrides it to replay or vary a run.
const fuzzDefaultSeed = 0x1bd5eed

// Verdict codes (include/uapi/linux/bpf.h, pkt_cls.h).
const (
	xdpAborted, xdpDrop, xdpPass, xdpTX, xdpRedirect uint32 = 0, 1, 2, 3, 4
	tcUnspec, tcShot, tcRedirect                     uint32 = 0xffffffff, 2, 7
)

type fuzzProg struct {
	name   string
	prog   *ebpf.Program
	xdp    bool
	egress bool
}

// fuzzEnv is one node's datapath in a lab, with the addresses the oracle
// needs, taken from what the datapath says is programmed.
type fuzzEnv struct {
	d        *Datapath
	lab      *lab
	progs    []fuzzProg
	vips     map[netip.Addr]bool
	backends map[netip.Addr]bool
	// Ports of the flows primed by prime, for the reply seeds.
	snatTCP, snatUDP uint16
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	e := &fuzzEnv{lab: newLab(tb), vips: make(map[netip.Addr]bool), backends: make(map[netip.Addr]bool)}
	d, err := New(Options{PinDir: testPinDir(tb), NodeIP4: labNodeIP, MaxServices: 64})
	if err != nil {
		tb.Fatalf("%+v", err)
	}
	tb.Cleanup(func() { d.Close() })
	if _, err := d.Sync(packetState(), "node1"); err != nil {
		tb.Fatal(err)
	}
	e.d = d
	fes, err := d.Frontends()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fes {
		e.vips[f.VIP] = true
		for _, b := range f.Backends {
			e.backends[b.Addr.Addr()] = true
		}
	}
	if len(e.vips) == 0 || len(e.backends) == 0 {
		tb.Fatalf("datapath has %d VIPs and %d backends after Sync", len(e.vips), len(e.backends))
	}
	e.progs = []fuzzProg{
		{"lb_xdp", d.objs.LbXdp, true, false},
		{"lb_tc_ingress", d.objs.LbTcIngress, false, false},
		{"lb_tc_egress", d.objs.LbTcEgress, false, true},
	}
	e.prime(tb)
	return e
}

// prime opens the flows the reply seeds answer: a SNATed TCP and UDP flow
// to the web backend on node2 and a flow to the local pod (whose replies
// lb_tc_egress translates).
func (e *fuzzEnv) prime(tb testing.TB) {
	tb.Helper()
	run := func(in []byte) []byte {
		_, out, err := e.lab.run(e.d.objs.LbXdp, true, in)
		if err != nil {
			tb.Fatalf("prime: %v", err)
		}
		return out
	}
	syn := pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: client1, Dst: webHTTP, Proto: pkt.TCP, Payload: []byte("lbd")}
	f, err := pkt.Decode(run(syn.MustBuild()))
	if err != nil || f.Src.Addr() != labNodeIP {
		tb.Fatalf("prime: web SYN not SNATed (%v, %v)", f, err)
	}
	e.snatTCP = f.Src.Port()
	udp := pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: udpClient, Dst: ap(vipWeb, 53), Proto: pkt.UDP, Payload: []byte("lbd")}
	if f, err = pkt.Decode(run(udp.MustBuild())); err != nil || f.Src.Addr() != labNodeIP {
		tb.Fatalf("prime: web DNS not SNATed (%v, %v)", f, err)
	}
	e.snatUDP = f.Src.Port()
	local := pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: ap(labClient, 40100), Dst: ap(vipLocal, 80), Proto: pkt.TCP, Payload: []byte("lbd")}
	run(local.MustBuild())
}

// fuzzResult is one run, kept for the failure report.
type fuzzResult struct {
	ret    uint32
	out    []byte
	reason map[string]uint64
}

// check runs in through p and returns every rule it breaks, nil if none.
// It also returns the counters the run moved, for statistics. Frames
// shorter than fuzzMinLen are not run (test_run refuses them).
func (e *fuzzEnv) check(p fuzzProg, in []byte) (map[string]uint64, error) {
	if len(in) < fuzzMinLen(p, in) {
		return nil, nil
	}
	in = slices.Clone(in)
	before, err := e.d.Reasons()
	if err != nil {
		return nil, fmt.Errorf("read reasons: %w", err)
	}
	ret, out, err := e.lab.run(p.prog, p.xdp, in)
	if err != nil {
		return nil, fmt.Errorf("%s: test_run of %d bytes: %w\n in %x", p.name, len(in), err, in)
	}
	after, err := e.d.Reasons()
	if err != nil {
		return nil, fmt.Errorf("read reasons: %w", err)
	}
	res := fuzzResult{ret: ret, out: out, reason: reasonDelta(before, after)}
	if errs := e.judge(p, in, res); len(errs) > 0 {
		return res.reason, fmt.Errorf("%s: verdict %d, reasons %v: %w\n in %x\nout %x", p.name, int32(ret), res.reason, errors.Join(errs...), in, out)
	}
	return res.reason, nil
}

// judge applies the rules to one run.
func (e *fuzzEnv) judge(p fuzzProg, in []byte, r fuzzResult) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	pass := xdpPass
	if !p.xdp {
		pass = tcUnspec
	}
	same := bytes.Equal(in, r.out)

	// Rule 4 first: the reason says which verdicts and changes are allowed.
	var reason string // the one reason moved, "" if none or several
	var total uint64
	for k, v := range r.reason {
		total += v
		if v == 1 && len(r.reason) == 1 {
			reason = k
		}
	}
	switch {
	case p.egress && total > 1:
		fail("rule 4: egress moved %d counters, want at most one", total)
	case !p.egress && (total != 1 || len(r.reason) != 1):
		fail("rule 4: ingress moved %d counters (%v), want exactly one", total, r.reason)
	}

	// Rule 3: a known verdict, consistent with the reason.
	var allowed map[uint32][]string
	switch {
	case p.egress:
		allowed = map[uint32][]string{tcUnspec: {"", "revnat"}, tcShot: {"drop_malformed"}}
	case p.xdp:
		allowed = map[uint32][]string{
			xdpPass: {"pass", "pass_malformed", "fwd_stack", "fwd_stack_no_neigh"}, xdpDrop: {"drop_*"},
			xdpTX: {"fwd", "revnat", "icmp_fwd", "reset_no_backend"}, xdpRedirect: {"fwd", "revnat", "icmp_fwd"},
		}
	default:
		allowed = map[uint32][]string{
			tcUnspec: {"pass", "pass_malformed", "fwd_stack"}, tcShot: {"drop_*"},
			tcRedirect: {"fwd", "revnat", "icmp_fwd", "reset_no_backend"},
		}
	}
	reasons, known := allowed[r.ret]
	if !known {
		fail("rule 3: verdict %d is not one the datapath gives", int32(r.ret))
	} else if total == 1 || (p.egress && total == 0) {
		ok := false
		for _, a := range reasons {
			ok = ok || a == reason || strings.HasSuffix(a, "*") && strings.HasPrefix(reason, strings.TrimSuffix(a, "*"))
		}
		if !ok {
			fail("rule 4: reason %q does not go with verdict %d (allowed %v)", reason, int32(r.ret), reasons)
		}
	}

	// Rule 1: not lbd's traffic is not touched.
	if !e.ours(p, in) {
		if r.ret != pass {
			fail("rule 1: not lbd's traffic got verdict %d, want pass %d", int32(r.ret), int32(pass))
		}
		if !same {
			fail("rule 1: not lbd's traffic was modified")
		}
		if !p.egress && reason != "pass" && reason != "pass_malformed" {
			fail("rule 1: not lbd's traffic counted as %q", reason)
		}
		if p.egress && total != 0 {
			fail("rule 1: egress counted %v for a frame from no backend", r.reason)
		}
	}

	dropped := r.ret == xdpDrop && p.xdp || r.ret == tcShot && !p.xdp
	if same || dropped || !known {
		return errs
	}
	// Modified and sent on. Only translations modify; plain passes never.
	if reason == "pass" || reason == "pass_malformed" || (p.egress && total == 0) {
		fail("rule 1: frame modified under reason %q", reason)
	}
	// Rule 2: checksums valid on the way in stay valid.
	ci, co := csumsOf(in), csumsOf(r.out)
	if reason == "reset_no_backend" {
		// A reset is built from scratch: all of it must be right.
		if len(r.out) != 14+40 {
			fail("rule 2: reset is %d bytes, want 54", len(r.out))
		}
		if err := pkt.VerifyChecksums(r.out); err != nil {
			fail("rule 2: reset: %v", err)
		}
		return errs
	}
	if len(r.out) != len(in) {
		fail("translated frame is %d bytes, was %d", len(r.out), len(in))
	}
	for _, c := range []struct {
		name    string
		in, out int
	}{{"IPv4 header", ci.ip, co.ip}, {"L4", ci.l4, co.l4}, {"quoted IPv4 header", ci.inner, co.inner}} {
		if c.in == csumGood && c.out != csumGood {
			fail("rule 2: %s checksum valid on the way in, broken on the way out", c.name)
		}
	}
	if co.udpZero && !ci.udpZero {
		fail("rule 2: UDP checksum became 0 (none)")
	}
	return errs
}

// ours reports whether lbd may act on in: for ingress, an IPv4 frame to a
// VIP or the node or an IPv6 frame to a VIP (replies to known flows only
// come to the node's address); for egress, an IPv4 frame from a backend.
func (e *fuzzEnv) ours(p fuzzProg, in []byte) bool {
	if len(in) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(in[12:14]) {
	case 0x0800:
		if len(in) < 14+20 {
			return false
		}
		if p.egress {
			return e.backends[netip.AddrFrom4([4]byte(in[26:30]))]
		}
		dst := netip.AddrFrom4([4]byte(in[30:34]))
		return e.vips[dst] || dst == labNodeIP
	case 0x86dd:
		if len(in) < 14+40 {
			return false
		}
		if p.egress {
			return e.backends[netip.AddrFrom16([16]byte(in[22:38]))]
		}
		return e.vips[netip.AddrFrom16([16]byte(in[38:54]))]
	}
	return false
}

const (
	csumNA   = 0 // absent or not computable (bad lengths, fragment)
	csumGood = 1
	csumBad  = 2
)

// csums is which checksums of an IPv4 frame are valid.
type csums struct {
	ip, l4, inner int
	udpZero       bool
}

func csumState(ok bool) int {
	if ok {
		return csumGood
	}
	return csumBad
}

// l4Of finds the L4 header of an IPv4 frame (not a fragment) or an IPv6
// frame (L4 right after the fixed header) whose length fields fit the
// bytes present, with the checksum seed of its pseudo-header (0 for
// ICMPv4, which has none).
func l4Of(b []byte) (l4 []byte, proto uint8, pseudo uint16, ok bool) {
	if len(b) < 14 {
		return nil, 0, 0, false
	}
	switch binary.BigEndian.Uint16(b[12:14]) {
	case 0x0800:
		if len(b) < 14+20 {
			return nil, 0, 0, false
		}
		ip := b[14:]
		ihl := int(ip[0]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:4]))
		if ip[0]>>4 != 4 || ihl < 20 || tot < ihl || tot > len(ip) || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return nil, 0, 0, false
		}
		l4, proto = ip[ihl:tot], ip[9]
		if proto == 1 {
			return l4, proto, 0, true
		}
		var ph [12]byte
		copy(ph[0:8], ip[12:20])
		ph[9] = proto
		binary.BigEndian.PutUint16(ph[10:], uint16(len(l4)))
		return l4, proto, pkt.Sum(ph[:], 0), true
	case 0x86dd:
		if len(b) < 14+40 {
			return nil, 0, 0, false
		}
		ip := b[14:]
		n := int(binary.BigEndian.Uint16(ip[4:6]))
		if ip[0]>>4 != 6 || 40+n > len(ip) {
			return nil, 0, 0, false
		}
		l4, proto = ip[40:40+n], ip[6]
		var ph [40]byte
		copy(ph[0:32], ip[8:40])
		binary.BigEndian.PutUint32(ph[32:], uint32(n))
		ph[39] = proto
		return l4, proto, pkt.Sum(ph[:], 0), true
	}
	return nil, 0, 0, false
}

// icmpv6 is the IPv6 next header of ICMPv6.
const icmpv6 = 58

// csumsOf recomputes the checksums of an Ethernet + IPv4 or IPv6 frame
// from the bytes present, trusting no length field beyond them.
func csumsOf(b []byte) csums {
	var c csums
	if len(b) >= 14+20 && binary.BigEndian.Uint16(b[12:14]) == 0x0800 {
		ip := b[14:]
		if ihl := int(ip[0]&0xf) * 4; ip[0]>>4 == 4 && ihl >= 20 && len(ip) >= ihl {
			c.ip = csumState(pkt.Sum(ip[:ihl], 0) == 0xffff)
		}
	}
	l4, proto, pseudo, ok := l4Of(b)
	if !ok {
		return c
	}
	switch {
	case proto == pkt.TCP && len(l4) >= 20, proto == icmpv6 && len(l4) >= 4:
		c.l4 = csumState(pkt.Sum(l4, pseudo) == 0xffff)
	case proto == pkt.UDP && len(l4) >= 8:
		c.udpZero = binary.BigEndian.Uint16(l4[6:8]) == 0
		c.l4 = csumState(c.udpZero || pkt.Sum(l4, pseudo) == 0xffff)
	case proto == 1 && len(l4) >= 8:
		c.l4 = csumState(pkt.Sum(l4, 0) == 0xffff)
		if len(l4) >= 8+20 && l4[8] == 0x45 {
			c.inner = csumState(pkt.Sum(l4[8:28], 0) == 0xffff)
		}
	}
	return c
}

// refix recomputes the IPv4 header checksum and the TCP/UDP/ICMP checksum
// of a hand-mangled frame where its lengths allow, so hostile headers also
// arrive with valid checksums (and rule 2 has something to hold on to).
func refix(b []byte) {
	if len(b) >= 14+20 && binary.BigEndian.Uint16(b[12:14]) == 0x0800 {
		ip := b[14:]
		if ihl := int(ip[0]&0xf) * 4; ihl >= 20 && len(ip) >= ihl {
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], ^pkt.Sum(ip[:ihl], 0))
		}
	}
	l4, proto, pseudo, ok := l4Of(b)
	if !ok {
		return
	}
	set := func(off int, seed uint16) {
		l4[off], l4[off+1] = 0, 0
		binary.BigEndian.PutUint16(l4[off:], ^pkt.Sum(l4, seed))
	}
	switch {
	case proto == pkt.TCP && len(l4) >= 20:
		set(16, pseudo)
	case proto == pkt.UDP && len(l4) >= 8 && binary.BigEndian.Uint16(l4[6:8]) != 0:
		set(6, pseudo)
		if binary.BigEndian.Uint16(l4[6:8]) == 0 {
			l4[6], l4[7] = 0xff, 0xff // 0 would mean "none"
		}
	case proto == icmpv6 && len(l4) >= 4:
		set(2, pseudo)
	case proto == 1 && len(l4) >= 8:
		if len(l4) >= 28 && l4[8] == 0x45 {
			l4[18], l4[19] = 0, 0
			binary.BigEndian.PutUint16(l4[18:], ^pkt.Sum(l4[8:28], 0))
		}
		set(2, 0)
	}
}

// namedFrame is a seed with the name failures cite.
type namedFrame struct {
	name  string
	frame []byte
}

// fuzzSeeds are the valid and hostile frames the mutations start from.
func (e *fuzzEnv) fuzzSeeds() []namedFrame {
	var seeds []namedFrame
	add := func(name string, b []byte) { seeds = append(seeds, namedFrame{name, b}) }
	build := func(src, dst netip.AddrPort, proto uint8, mod ...func(*pkt.IPv4)) []byte {
		f := pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: src, Dst: dst, Proto: proto, Payload: []byte("lbd fuzz payload")}
		for _, m := range mod {
			m(&f)
		}
		return f.MustBuild()
	}
	flags := func(fl uint8) func(*pkt.IPv4) { return func(f *pkt.IPv4) { f.TCPFlags = fl } }
	client := ap(labClient, 40777)

	// VIP hits: every service shape and verdict.
	add("vip web tcp syn", build(client, webHTTP, pkt.TCP))
	add("vip web tcp ack (established)", build(client1, webHTTP, pkt.TCP, flags(pkt.ACK)))
	add("vip web udp", build(udpClient, ap(vipWeb, 53), pkt.UDP))
	add("vip web udp no checksum", build(ap(labClient, 50777), ap(vipWeb, 53), pkt.UDP, func(f *pkt.IPv4) { f.NoUDPChecksum = true }))
	add("vip local tcp", build(client, ap(vipLocal, 80), pkt.TCP))
	add("vip empty tcp (reset)", build(client, ap(vipEmpty, 80), pkt.TCP))
	add("vip empty tcp fin+ack with payload (reset)", build(client, ap(vipEmpty, 80), pkt.TCP, flags(pkt.FIN|pkt.ACK)))
	add("vip empty udp", build(client, ap(vipEmpty, 53), pkt.UDP))
	add("vip ranges outside", build(client, ap(vipRanges, 80), pkt.TCP))
	add("vip sticky", build(client, ap(vipSticky, 80), pkt.TCP))
	add("vip spread", build(client, ap(vipSpread, 80), pkt.TCP))
	add("vip many", build(client, ap(vipMany, 80), pkt.TCP))
	add("vip unknown port", build(client, ap(vipWeb, 81), pkt.TCP))
	add("vip ttl 1", build(client, webHTTP, pkt.TCP, func(f *pkt.IPv4) { f.TTL = 1 }))
	add("vip ip options", build(client, webHTTP, pkt.TCP, func(f *pkt.IPv4) { f.Options = []byte{0x94, 4, 0, 0, 1, 1, 1, 0} }))
	add("vip fragment first", build(client, webHTTP, pkt.TCP, func(f *pkt.IPv4) { f.MoreFragments = true }))
	add("vip fragment later", build(client, webHTTP, pkt.UDP, func(f *pkt.IPv4) { f.FragOffset = 8 }))

	// Replies to the primed flows.
	add("reply tcp to snat port", build(webBE, ap(labNodeIP, e.snatTCP), pkt.TCP, flags(pkt.SYN|pkt.ACK), func(f *pkt.IPv4) { f.SrcMAC, f.DstMAC = labNode2MAC, labLan0MAC }))
	add("reply udp to snat port", build(ap(remoteEP, 9000), ap(labNodeIP, e.snatUDP), pkt.UDP))
	add("reply from local pod (egress)", build(ap(labLocalEP, 8080), ap(labClient, 40100), pkt.TCP, flags(pkt.SYN|pkt.ACK)))
	add("reply from local pod unknown flow", build(ap(labLocalEP, 8080), ap(labClient, 40101), pkt.TCP, flags(pkt.ACK)))
	add("node unknown port", build(client, ap(labNodeIP, 22), pkt.TCP))

	// Not lbd's.
	add("non-vip tcp", build(client, netip.MustParseAddrPort("10.20.0.99:80"), pkt.TCP))
	add("non-vip udp", build(client, netip.MustParseAddrPort("10.20.1.200:53"), pkt.UDP))
	add("non-vip ip options", build(client, netip.MustParseAddrPort("10.20.0.99:80"), pkt.TCP, func(f *pkt.IPv4) { f.Options = []byte{1, 1, 1, 0} }))
	add("non-vip fragment", build(client, netip.MustParseAddrPort("10.20.0.99:80"), pkt.UDP, func(f *pkt.IPv4) { f.MoreFragments = true }))
	arp, err := pkt.ARPRequest(labClientMAC, labClient, vipWeb)
	if err != nil {
		panic(err)
	}
	add("arp who-has vip", arp)
	v6, err := pkt.IPv6TCP(labClientMAC, labLan0MAC, netip.MustParseAddrPort("[fd00::200]:40000"), netip.MustParseAddrPort("[fd00::1]:80"))
	if err != nil {
		panic(err)
	}
	add("ipv6 tcp", v6)
	add("ipv6 extension header chain", ipv6ExtChain(v6))
	add("ipv6 fragment header", ipv6Frag(v6))

	// ICMP errors: both shapes lbd translates, and strangers.
	replyWeb := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labClientMAC, Src: webHTTP, Dst: client1, Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}
	add("icmp frag-needed to vip (shape 1)", icmpFragNeeded(labClientMAC, labLan0MAC, labClient, vipWeb, replyWeb.MustBuild()))
	snatFwd := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labNode2MAC, Src: ap(labNodeIP, e.snatTCP), Dst: webBE, Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}
	add("icmp frag-needed to node (shape 2)", icmpFragNeeded(labNode2MAC, labLan0MAC, labNode2IP, labNodeIP, snatFwd.MustBuild()))
	replyLocal := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labClientMAC, Src: ap(vipLocal, 80), Dst: ap(labClient, 40100), Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}
	add("icmp frag-needed to vip of a local flow (shape 1, to the stack)", icmpFragNeeded(labClientMAC, labLan0MAC, labClient, vipLocal, replyLocal.MustBuild()))
	// The found regression below, rebuilt on the flow this run primed
	// (the hex one hard-codes SNAT port 63324).
	big := icmpFragNeeded(labNode2MAC, labLan0MAC, labNode2IP, labNodeIP, snatFwd.MustBuild())
	binary.BigEndian.PutUint16(big[16:], 32073)
	refix(big)
	add("regression: tc icmp to node beyond the MTU counted twice", big)
	add("icmp error unknown flow to vip", icmpFragNeeded(labClientMAC, labLan0MAC, labClient, vipLocal, replyWeb.MustBuild()))
	add("icmp error to non-vip", icmpFragNeeded(labClientMAC, labLan0MAC, labClient, netip.MustParseAddr("10.20.0.99"), replyWeb.MustBuild()))

	// Encapsulations: lbd does not look inside.
	inner := build(client, webHTTP, pkt.TCP)[14:]
	add("vlan tagged vip syn", vlanTag(build(client, webHTTP, pkt.TCP)))
	add("gre to non-vip carrying vip syn", encap(47, labClient, netip.MustParseAddr("10.20.0.99"), append([]byte{0, 0, 0x08, 0}, inner...)))
	add("gre to vip", encap(47, labClient, vipWeb, append([]byte{0, 0, 0x08, 0}, inner...)))
	add("ipip to non-vip carrying vip syn", encap(4, labClient, netip.MustParseAddr("10.20.0.99"), inner))
	add("ipip to vip", encap(4, labClient, vipWeb, inner))
	add("ipip to node", encap(4, labClient, labNodeIP, inner))

	// Bogus headers on VIP and non-VIP frames, checksums made valid.
	for _, base := range []namedFrame{{"vip", build(client, webHTTP, pkt.TCP)}, {"non-vip", build(client, netip.MustParseAddrPort("10.20.0.99:80"), pkt.TCP)}} {
		for _, ihl := range []byte{0, 4, 6, 15} {
			b := slices.Clone(base.frame)
			b[14] = 0x40 | ihl
			refix(b)
			add(fmt.Sprintf("%s ihl %d", base.name, ihl), b)
		}
		for _, tot := range []uint16{0, 19, 20, 39, 40, uint16(len(base.frame) - 14 + 1), 0xffff} {
			b := slices.Clone(base.frame)
			binary.BigEndian.PutUint16(b[16:], tot)
			refix(b)
			add(fmt.Sprintf("%s tot_len %d", base.name, tot), b)
		}
		for _, doff := range []byte{0, 4, 15} {
			b := slices.Clone(base.frame)
			b[14+20+12] = doff << 4
			refix(b)
			add(fmt.Sprintf("%s doff %d", base.name, doff), b)
		}
	}
	b := build(client, ap(vipEmpty, 80), pkt.TCP)
	b[14+20+12] = 15 << 4 // RST path with a data offset past the end
	refix(b)
	add("vip empty doff 15 (reset)", b)
	return append(seeds, fuzzRegressions()...)
}

// fuzzRegressions are frames that once broke a rule; each stays a seed.
func fuzzRegressions() []namedFrame {
	hex := func(s string) []byte {
		b, err := hexpkg.DecodeString(s)
		if err != nil {
			panic(err)
		}
		return b
	}
	return []namedFrame{
		// lb_tc_ingress: an ICMP frag-needed toward the node (shape 2,
		// quoting node:63324 -> 10.241.2.10:8080, the primed SNATed web
		// flow) with a bogus outer tot_len of 32073. It is translated,
		// bpf_fib_lookup answers FRAG_NEEDED (32073 > MTU), lb_fwd4
		// hands it to the stack (fwd_stack, TC_ACT_UNSPEC = -1), and
		// lb_ingress reads that -1 as lb_icmp_err's "not lbd's" and
		// counts it again as pass. The seed "icmp frag-needed to vip of
		// a local flow" is the valid-frame form of the same bug.
		{"regression: tc icmp to node counted twice", hex("020000000051020000000052080045007d4900000000400166370a1400340a1400330304dcae0000057845000068123440004006111b0a1400330af1020af75c1f90000003e8")},
	}
}

// vlanTag inserts an 802.1Q tag (VLAN 20) after the MAC addresses.
func vlanTag(b []byte) []byte {
	out := append(slices.Clone(b[:12]), 0x81, 0x00, 0x00, 20)
	return append(out, b[12:]...)
}

// encap wraps payload in Ethernet + IPv4 with protocol proto.
func encap(proto uint8, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 14+20, 14+20+len(payload))
	copy(b[0:6], labLan0MAC)
	copy(b[6:12], labClientMAC)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	ip[8], ip[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	b = append(b, payload...)
	refix(b)
	return b
}

// ipv6ExtChain inserts hop-by-hop, routing and destination options headers
// before the L4 header of an Ethernet + IPv6 frame.
func ipv6ExtChain(v6 []byte) []byte {
	l4proto := v6[14+6]
	ext := []byte{
		43, 0, 0, 0, 0, 0, 0, 0, // hop-by-hop -> routing, PadN
		60, 0, 0, 0, 0, 0, 0, 0, // routing type 0, 0 segments left -> dest opts
		l4proto, 0, 1, 4, 0, 0, 0, 0, // dest opts -> L4, PadN
	}
	out := slices.Clone(v6[:14+40])
	out[14+6] = 0
	binary.BigEndian.PutUint16(out[14+4:], binary.BigEndian.Uint16(v6[14+4:])+uint16(len(ext)))
	out = append(out, ext...)
	return append(out, v6[14+40:]...)
}

// ipv6Frag inserts a fragment header (first fragment, more to come).
func ipv6Frag(v6 []byte) []byte {
	out := slices.Clone(v6[:14+40])
	out[14+6] = 44
	binary.BigEndian.PutUint16(out[14+4:], binary.BigEndian.Uint16(v6[14+4:])+8)
	out = append(out, v6[14+6], 0, 0, 1, 0, 0, 0x12, 0x34)
	return append(out, v6[14+40:]...)
}

// mutate returns a damaged copy of b: bit flips, byte writes, truncation,
// extension, insertion and deletion, and header-aware damage (IHL,
// tot_len, data offset, retargeting at lbd's addresses); half the time the
// checksums are then made valid again.
func mutate(r *rand.Rand, b []byte, targets []netip.Addr) []byte {
	b = slices.Clone(b)
	for range 1 + r.IntN(4) {
		if len(b) == 0 {
			b = append(b, byte(r.Uint32()))
			continue
		}
		switch r.IntN(11) {
		case 0, 1, 2:
			b[r.IntN(len(b))] ^= 1 << r.IntN(8)
		case 3:
			b[r.IntN(len(b))] = byte(r.Uint32())
		case 4:
			b = b[:r.IntN(len(b)+1)]
		case 5:
			for range 1 + r.IntN(64) {
				b = append(b, byte(r.Uint32()))
			}
		case 6:
			i := r.IntN(len(b) + 1)
			b = slices.Insert(b, i, make([]byte, 1+r.IntN(8))...)
		case 7:
			i := r.IntN(len(b))
			b = slices.Delete(b, i, min(len(b), i+1+r.IntN(8)))
		case 8:
			if len(b) > 14 {
				b[14] = b[14]&0xf0 | byte(r.IntN(16))
			}
		case 9:
			if len(b) > 17 {
				tots := []int{0, 19, 20, len(b) - 14, len(b) - 13, len(b) - 15, 0xffff, r.IntN(0x10000)}
				binary.BigEndian.PutUint16(b[16:], uint16(tots[r.IntN(len(tots))]))
			}
		case 10:
			if len(b) >= 34 {
				a := targets[r.IntN(len(targets))].As4()
				copy(b[30:34], a[:])
			}
		}
		if len(b) > 14 && r.IntN(8) == 0 {
			// The TCP data offset, wherever the IHL says TCP starts.
			if off := 14 + int(b[14]&0xf)*4 + 12; off < len(b) {
				b[off] = byte(r.IntN(16)) << 4
			}
		}
	}
	if r.IntN(2) == 0 {
		refix(b)
	}
	if len(b) > fuzzMaxFrame {
		b = b[:fuzzMaxFrame]
	}
	return b
}

// fuzzReport gathers rule violations, a bounded number per program.
type fuzzReport struct {
	tb    testing.TB
	seed  uint64
	tried map[string]int
	fails map[string]int
	// seen counts the reasons the runs moved, per program: how much of
	// the datapath the frames reached.
	seen map[string]map[string]int
}

func (r *fuzzReport) run(e *fuzzEnv, p fuzzProg, origin string, b []byte) {
	if len(b) < fuzzMinLen(p, b) {
		return
	}
	r.tried[p.name]++
	moved, err := e.check(p, b)
	if r.seen[p.name] == nil {
		r.seen[p.name] = make(map[string]int)
	}
	for k := range moved {
		r.seen[p.name][k]++
	}
	if err != nil {
		r.fails[p.name]++
		if r.fails[p.name] <= 10 {
			r.tb.Errorf("[seed %#x] %s: %v", r.seed, origin, err)
		}
	}
}

func fuzzEnvInt(name string, def uint64) uint64 {
	if s := os.Getenv(name); s != "" {
		if v, err := strconv.ParseUint(s, 0, 64); err == nil {
			return v
		}
	}
	return def
}

// TestPrivilegedDatapathFuzz runs the seeds, every truncation of every
// seed, and LBD_FUZZ_N (default 3000) random mutations per program.
func TestPrivilegedDatapathFuzz(t *testing.T) {
	testutil.Privileged(t)
	e := newFuzzEnv(t)
	seed := fuzzEnvInt("LBD_FUZZ_SEED", fuzzDefaultSeed)
	n := int(fuzzEnvInt("LBD_FUZZ_N", 3000))
	t.Logf("fuzz seed %#x (LBD_FUZZ_SEED), %d random frames per program (LBD_FUZZ_N)", seed, n)

	t.Run("kernel minimum", func(t *testing.T) {
		// The rules skip frames shorter than fuzzMinLen because test_run
		// refuses them; check that it still does, and that it takes a
		// frame of exactly that length.
		for _, p := range e.progs {
			for _, et := range []uint16{0x0800, 0x86dd, 0x0806} {
				b := make([]byte, 64)
				binary.BigEndian.PutUint16(b[12:], et)
				min := fuzzMinLen(p, b)
				for l := range min {
					if _, _, err := e.lab.run(p.prog, p.xdp, b[:l]); err == nil {
						t.Errorf("%s: test_run took a %d-byte frame of ethertype %#04x, want EINVAL below %d", p.name, l, et, min)
					}
				}
				if _, err := e.check(p, b[:min]); err != nil {
					t.Error(err)
				}
			}
		}
	})

	seeds := e.fuzzSeeds()
	targets := append(mapKeys(e.vips), labNodeIP, netip.MustParseAddr("10.20.0.99"), labLocalEP)
	start := time.Now()
	rep := &fuzzReport{tb: t, seed: seed, tried: map[string]int{}, fails: map[string]int{}, seen: map[string]map[string]int{}}
	for _, p := range e.progs {
		for _, s := range seeds {
			rep.run(e, p, "seed "+strconv.Quote(s.name), s.frame)
			for l := fuzzMinFrame; l < len(s.frame); l++ {
				rep.run(e, p, fmt.Sprintf("seed %q cut to %d", s.name, l), s.frame[:l])
			}
		}
		r := rand.New(rand.NewPCG(seed, uint64(len(p.name))))
		for i := range n {
			s := seeds[r.IntN(len(seeds))]
			rep.run(e, p, fmt.Sprintf("mutation %d of seed %q", i, s.name), mutate(r, s.frame, targets))
		}
	}
	t.Logf("%d seeds; frames tried %v in %v; rule violations %v", len(seeds), rep.tried, time.Since(start).Round(time.Millisecond), rep.fails)
	for _, p := range e.progs {
		t.Logf("%s reasons reached: %v", p.name, rep.seen[p.name])
	}
	if len(rep.fails) > 0 {
		t.Logf("replay with LBD_FUZZ_SEED=%#x LBD_FUZZ_N=%d", seed, n)
	}
}

func mapKeys(m map[netip.Addr]bool) []netip.Addr {
	var out []netip.Addr
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}

// FuzzPrivilegedDatapath is the open-ended form: `make fuzz` runs it with
// -fuzz for as long as asked; each input goes through all three programs.
func FuzzPrivilegedDatapath(f *testing.F) {
	fuzzPrivileged(f)
	e := newFuzzEnv(f)
	for _, s := range e.fuzzSeeds() {
		f.Add(s.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzMaxFrame {
			b = b[:fuzzMaxFrame]
		}
		for _, p := range e.progs {
			if _, err := e.check(p, b); err != nil {
				t.Error(err)
			}
		}
	})
}

// fuzzPrivileged is testutil.Privileged for the fuzz target: that gate only
// accepts TestPrivileged*/BenchmarkPrivileged* names. Same rule: skip
// without root, fail instead under CI=true or LBD_PRIVILEGED_TESTS=1
// (missing capabilities then show up as newFuzzEnv's load error).
func fuzzPrivileged(f *testing.F) {
	f.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" || os.Getenv("LBD_PRIVILEGED_TESTS") == "1" {
		f.Fatalf("%s needs root with CAP_BPF and CAP_NET_ADMIN (CI=true or LBD_PRIVILEGED_TESTS=1 forbids skipping)", f.Name())
	}
	f.Skipf("%s needs root with CAP_BPF and CAP_NET_ADMIN", f.Name())
}
