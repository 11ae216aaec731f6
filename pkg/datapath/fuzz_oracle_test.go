// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// TestFuzzOracle checks the fuzz test's judge itself, without BPF: it must
// accept correct outcomes and name the rule each wrong one breaks, or the
// fuzz test would pass for the wrong reason.
func TestFuzzOracle(t *testing.T) {
	vip6 := netip.MustParseAddrPort("[fd00::1]:80")
	v6In, err := pkt.IPv6TCP(labClientMAC, labLan0MAC, netip.MustParseAddrPort("[fd00::200]:40000"), vip6)
	if err != nil {
		t.Fatal(err)
	}
	v6Bad := slices.Clone(v6In)
	v6Bad[14+40+4] ^= 1 // sequence number: the TCP checksum no longer covers it
	e := &fuzzEnv{
		vips:     map[netip.Addr]bool{vipWeb: true, vip6.Addr(): true},
		backends: map[netip.Addr]bool{labLocalEP: true},
	}
	xdp := fuzzProg{name: "lb_xdp", xdp: true}
	tc := fuzzProg{name: "lb_tc_ingress"}
	egress := fuzzProg{name: "lb_tc_egress", egress: true}
	build := func(src, dst netip.AddrPort, proto uint8, ttl uint8) []byte {
		return pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: src, Dst: dst, Proto: proto, TTL: ttl, Payload: []byte("lbd")}.MustBuild()
	}
	nonVIP := build(client1, netip.MustParseAddrPort("10.20.0.99:80"), pkt.TCP, 64)
	vipIn := build(client1, webHTTP, pkt.TCP, 64)
	// What a correct SNAT + DNAT of vipIn looks like.
	vipOut := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labNode2MAC, Src: ap(labNodeIP, 61001), Dst: webBE, Proto: pkt.TCP, TTL: 63, Payload: []byte("lbd")}.MustBuild()
	udpIn := build(udpClient, ap(vipWeb, 53), pkt.UDP, 64)
	udpOut := pkt.IPv4{SrcMAC: labLan0MAC, DstMAC: labNode2MAC, Src: ap(labNodeIP, 61002), Dst: ap(remoteEP, 9000), Proto: pkt.UDP, TTL: 63, Payload: []byte("lbd"), NoUDPChecksum: true}.MustBuild()
	badL4 := slices.Clone(vipOut)
	badL4[14+20+20] ^= 0x40 // first payload byte: the TCP checksum no longer covers it
	changed := slices.Clone(nonVIP)
	changed[len(changed)-1] ^= 1
	one := func(r string) map[string]uint64 { return map[string]uint64{r: 1} }

	for _, tc := range []struct {
		name string
		p    fuzzProg
		in   []byte
		res  fuzzResult
		want string // the rule named in the error, "" for none
	}{
		{"non-VIP passed untouched", xdp, nonVIP, fuzzResult{xdpPass, nonVIP, one("pass")}, ""},
		{"non-VIP modified", xdp, nonVIP, fuzzResult{xdpPass, changed, one("pass")}, "rule 1"},
		{"non-VIP dropped", tc, nonVIP, fuzzResult{tcShot, nonVIP, one("drop_no_port")}, "rule 1"},
		{"VIP translated correctly", xdp, vipIn, fuzzResult{xdpTX, vipOut, one("fwd")}, ""},
		{"VIP translated, TCP checksum broken", tc, vipIn, fuzzResult{tcRedirect, badL4, one("fwd")}, "rule 2"},
		{"UDP checksum turned into none", xdp, udpIn, fuzzResult{xdpTX, udpOut, one("fwd")}, "rule 2"},
		{"IPv6 modified, TCP checksum broken", xdp, v6In, fuzzResult{xdpTX, v6Bad, one("fwd")}, "rule 2"},
		{"aborted", xdp, vipIn, fuzzResult{xdpAborted, vipIn, one("fwd")}, "rule 3"},
		{"two counters", tc, vipIn, fuzzResult{tcShot, vipIn, map[string]uint64{"fwd_stack": 1, "drop_no_port": 1}}, "rule 4"},
		{"no counter", xdp, vipIn, fuzzResult{xdpDrop, vipIn, nil}, "rule 4"},
		{"drop without a drop reason", xdp, vipIn, fuzzResult{xdpDrop, vipIn, one("fwd")}, "rule 4"},
		{"egress leaves a client frame alone", egress, vipIn, fuzzResult{tcUnspec, vipIn, nil}, ""},
		{"egress counts a client frame", egress, vipIn, fuzzResult{tcUnspec, vipIn, one("revnat")}, "rule 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := errors.Join(e.judge(tc.p, tc.in, tc.res)...)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("judge: %v, want no violation", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("judge: %v, want a %s violation", err, tc.want)
			}
		})
	}
}

// TestFuzzRefix: refix must leave every checksum it can reach valid, or
// the mutated frames would never exercise rule 2.
func TestFuzzRefix(t *testing.T) {
	e := &fuzzEnv{snatTCP: 61001, snatUDP: 61002}
	seeds := e.fuzzSeeds()
	r := rand.New(rand.NewPCG(1, 2))
	targets := []netip.Addr{vipWeb, labNodeIP}
	checked := 0
	for _, s := range seeds {
		for i := range 50 {
			b := mutate(r, s.frame, targets)
			refix(b)
			c := csumsOf(b)
			if c.ip == csumBad || c.l4 == csumBad || c.inner == csumBad {
				t.Fatalf("seed %q mutation %d: checksums %+v after refix\n%x", s.name, i, c, b)
			}
			if c.l4 == csumGood {
				checked++
			}
		}
	}
	if checked < len(seeds)*10 {
		t.Errorf("only %d of %d mutated frames had a checkable L4 checksum", checked, len(seeds)*50)
	}
}
