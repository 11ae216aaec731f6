// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// Go mirrors of lb_hash3, lb_addr_fold, lb_flow_hash and lb_snat_probe
// (bpf/lib/lb.h), to know which ports a flow's SNAT claim probes.
func hash3(a, b, c uint32) uint32 {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return c
}

func addrFold(a [16]byte) uint32 {
	le := binary.LittleEndian // the BPF target's loads
	return le.Uint32(a[0:]) ^ le.Uint32(a[4:]) ^ le.Uint32(a[8:]) ^ le.Uint32(a[12:])
}

func flowHash(k lbLbFlowKey) uint32 {
	return hash3(addrFold(k.Saddr), addrFold(k.Daddr)^uint32(k.Proto), uint32(k.Sport)<<16|uint32(k.Dport))
}

const snatSeed = 0x5a17c0de // LB_SNAT_SEED

func snatProbe(h uint32, i uint32, lo, hi uint16) uint16 {
	return lo + uint16(hash3(h, i, snatSeed)%(uint32(hi)-uint32(lo)+1))
}

// TestPrivilegedSNATCollision: a new flow whose first SNAT port probes all
// collide with live flows gets the next free probe (the old claim gave up
// after 8, counting drop_no_snat_port); the live flows' reverse entries
// are left alone; a port whose flow is gone is taken over; and a fully
// used range still drops, counted.
func TestPrivilegedSNATCollision(t *testing.T) {
	testutil.Privileged(t)
	const lo, hi = 61000, 61099
	l := newLab(t)
	d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, MaxServices: 64, SNATPortMin: lo, SNATPortMax: hi})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d.Close()
	if _, err := d.Sync(packetState(), "node1"); err != nil {
		t.Fatal(err)
	}
	svc := frontendID(t, d, vipWeb, 80)
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	now := uint64(ts.Nano())

	// occupy gives port to a live flow of another client: its reverse
	// entry and its connection-table entry, as the datapath writes them.
	occupant := func(port uint16) netip.AddrPort { return ap(netip.MustParseAddr("10.20.3.1"), port) }
	revKey := func(port uint16) lbLbFlowKey { return flowKey(webBE, ap(labNodeIP, port), pkt.TCP) }
	occupy := func(port uint16, live bool) {
		t.Helper()
		c := occupant(port)
		rv := lbLbRev{Vip: toKeyAddr(vipWeb), Client: toKeyAddr(c.Addr()), Vport: htons(80), Cport: htons(c.Port()),
			SvcId: svc, Flags: uint32(lbLbCtFlagsLB_CT_SNAT)}
		if err := d.objs.LbRevnat.Put(revKey(port), rv); err != nil {
			t.Fatal(err)
		}
		if !live {
			return
		}
		ct := lbLbCt{Baddr: toKeyAddr(webBE.Addr()), Bport: htons(webBE.Port()), SnatPort: htons(port),
			SvcId: svc, Flags: uint32(lbLbCtFlagsLB_CT_SNAT), LastSeen: now}
		if err := d.objs.LbConntrack.Put(flowKey(c, webHTTP, pkt.TCP), ct); err != nil {
			t.Fatal(err)
		}
	}
	send := func(client netip.AddrPort) (uint32, pkt.Frame, map[string]uint64) {
		t.Helper()
		before, err := d.Reasons()
		if err != nil {
			t.Fatal(err)
		}
		in := pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: client, Dst: webHTTP, Proto: pkt.TCP, Payload: []byte("lbd")}.MustBuild()
		ret, out, err := l.run(d.objs.LbXdp, true, in)
		if err != nil {
			t.Fatal(err)
		}
		after, err := d.Reasons()
		if err != nil {
			t.Fatal(err)
		}
		return ret, decoded(t, out), reasonDelta(before, after)
	}
	probes := func(client netip.AddrPort) []uint16 {
		h := flowHash(flowKey(client, webHTTP, pkt.TCP))
		var ps []uint16
		for i := range uint32(32) {
			ps = append(ps, snatProbe(h, i, lo, hi))
		}
		return ps
	}

	t.Run("first 8 probes taken", func(t *testing.T) {
		client := ap(labClient, 45001)
		ps := probes(client)
		taken := slices.Clone(ps[:8])
		for _, p := range taken {
			occupy(p, true)
		}
		i := slices.IndexFunc(ps, func(p uint16) bool { return !slices.Contains(taken, p) })
		if i < 0 {
			t.Skip("no free port among the 32 probes of this flow (not expected for a 100-port range)")
		}
		ret, out, moved := send(client)
		if ret != sentBack.code(true) {
			t.Fatalf("verdict %d, want XDP_TX; reasons moved %v", ret, moved)
		}
		if diff := cmp.Diff(map[string]uint64{"fwd": 1}, moved); diff != "" {
			t.Errorf("reasons moved (-want +got):\n%s", diff)
		}
		if got := out.Src.Port(); got != ps[i] {
			t.Errorf("SNAT port %d, want %d (probe %d, the first free one; probes %v)", got, ps[i], i, ps[:i+1])
		}
		// The occupants keep their reverse entries.
		for _, p := range taken {
			var rv lbLbRev
			if err := d.objs.LbRevnat.Lookup(revKey(p), &rv); err != nil || fromKeyAddr(rv.Client) != occupant(p).Addr() {
				t.Errorf("reverse entry of port %d after the claim: %+v, %v", p, rv, err)
			}
		}
	})

	t.Run("gone flow's port is taken over", func(t *testing.T) {
		client := ap(labClient, 45002)
		ps := probes(client)
		var rv lbLbRev
		if err := d.objs.LbRevnat.Lookup(revKey(ps[0]), &rv); err == nil {
			t.Skipf("port %d is already held by the first case", ps[0])
		}
		occupy(ps[0], false) // a reverse entry whose flow is gone
		ret, out, moved := send(client)
		if ret != sentBack.code(true) || out.Src.Port() != ps[0] {
			t.Errorf("verdict %d, SNAT port %d; want XDP_TX on port %d (reasons moved %v)", ret, out.Src.Port(), ps[0], moved)
		}
	})

	t.Run("full range drops", func(t *testing.T) {
		for p := uint16(lo); p <= hi; p++ {
			var rv lbLbRev
			if err := d.objs.LbRevnat.Lookup(revKey(p), &rv); errors.Is(err, ebpf.ErrKeyNotExist) {
				occupy(p, true)
			}
		}
		ret, _, moved := send(ap(labClient, 45003))
		if ret != dropped.code(true) {
			t.Errorf("verdict %d, want XDP_DROP", ret)
		}
		if diff := cmp.Diff(map[string]uint64{"drop_no_snat_port": 1}, moved); diff != "" {
			t.Errorf("reasons moved (-want +got):\n%s", diff)
		}
	})
}
