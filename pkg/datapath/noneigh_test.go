// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// delNeigh removes a neighbour entry of lan0 in the lab, so bpf_fib_lookup
// answers BPF_FIB_LKUP_RET_NO_NEIGH for it.
func delNeigh(t *testing.T, l *lab, a netip.Addr) {
	t.Helper()
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := l.ns.Do(func() error {
		return netlink.NeighDel(&netlink.Neigh{LinkIndex: l.lan0, Family: fam, IP: a.AsSlice()})
	})
	if err != nil {
		t.Fatalf("delete neighbour %s: %v", a, err)
	}
}

// runNoNeigh runs one frame and checks the verdict and the one counter that
// moved: on a missing neighbour XDP passes to the stack, TC redirects.
func runNoNeigh(t *testing.T, l *lab, d *Datapath, prog *ebpf.Program, xdp bool, in []byte, tcReason string) []byte {
	t.Helper()
	before, err := d.Reasons()
	if err != nil {
		t.Fatal(err)
	}
	ret, out, err := l.run(prog, xdp, in)
	if err != nil {
		t.Fatal(err)
	}
	after, err := d.Reasons()
	if err != nil {
		t.Fatal(err)
	}
	want, reason := sentBack.code(false), tcReason // TC_ACT_REDIRECT from bpf_redirect_neigh
	if xdp {
		want, reason = toStack.code(true), "fwd_stack_no_neigh"
	}
	if ret != want {
		t.Fatalf("verdict %d, want %d (reasons moved %v)", int32(ret), int32(want), reasonDelta(before, after))
	}
	if got := reasonDelta(before, after); len(got) != 1 || got[reason] != 1 {
		t.Errorf("reasons moved %v, want only %s +1", got, reason)
	}
	return out
}

// wantHop is the TTL/hop limit a frame sent with 64 must leave with: the
// kernel decrements it when it forwards a passed packet, so XDP must not.
func wantHop(xdp bool) uint8 {
	if xdp {
		return 64
	}
	return 63
}

// TestPrivilegedNoNeighIPv4: a backend's reply to a SNATed flow, whose
// client the node never resolved (before the fix: 0/5 requests, drop_fib),
// is reverse-translated and, under XDP, passed to the stack to forward
// with checksums valid; TC redirects it through bpf_redirect_neigh. A
// SNATed request with no neighbour for the next node stays drop_fib under
// XDP: its source is the node's own address, which the kernel drops as
// martian if passed.
func TestPrivilegedNoNeighIPv4(t *testing.T) {
	testutil.Privileged(t)
	for _, hook := range ingressHooks {
		t.Run(hook.name, func(t *testing.T) {
			e := newPktEnv(t, hook.xdp, hook.prog)
			l, d, prog := e.lab, e.d, e.prog
			delNeigh(t, l, labClient)

			fwd := e.forward(t, frame(client1, webHTTP, pkt.TCP)(e))
			if fwd.Dst != webBE || fwd.Src.Addr() != labNodeIP {
				t.Fatalf("request forwarded %s -> %s, want node -> %s", fwd.Src, fwd.Dst, webBE)
			}

			reply := pkt.IPv4{SrcMAC: labNode2MAC, DstMAC: labLan0MAC, Src: webBE, Dst: fwd.Src, Proto: pkt.TCP,
				TCPFlags: pkt.SYN | pkt.ACK, Payload: []byte("lbd")}.MustBuild()
			out := runNoNeigh(t, l, d, prog, hook.xdp, reply, "revnat")
			// MACs: untouched for the stack; TC's bpf_redirect_neigh
			// fills them in after the program, so also untouched here.
			wantFrame(t, out, pkt.Frame{SrcMAC: labNode2MAC, DstMAC: labLan0MAC, Src: webHTTP, Dst: client1,
				Proto: pkt.TCP, TTL: wantHop(hook.xdp), IHL: 20})
			payloadKept(t, reply, out)

			// A new SNATed flow with node2 unresolved.
			delNeigh(t, l, labNode2IP)
			before, _ := d.Reasons()
			ret, _, err := l.run(prog, hook.xdp, frame(ap(labClient, 40100), webHTTP, pkt.TCP)(e))
			if err != nil {
				t.Fatal(err)
			}
			after, _ := d.Reasons()
			want, reason := sentBack.code(false), "fwd"
			if hook.xdp {
				want, reason = dropped.code(true), "drop_fib"
			}
			if got := reasonDelta(before, after); ret != want || len(got) != 1 || got[reason] != 1 {
				t.Errorf("SNATed request, node2 unresolved: verdict %d reasons %v, want %d and %s +1", int32(ret), got, int32(want), reason)
			}
		})
	}
}

// TestPrivilegedNoNeighIPv6: the second drop found in the XDP-mode lab. Nothing resolves
// the other nodes' IPv6 addresses, so the SNATed request to a pod on node2
// meets no neighbour: XDP passes it, translated, to the stack (IPv6
// forwarding accepts the node's own source). The reply to an unresolved
// client too. An established flow whose cached next hop is refreshed
// while the neighbour is gone is passed the same way and keeps no cached
// next hop from the failed lookup.
func TestPrivilegedNoNeighIPv6(t *testing.T) {
	testutil.Privileged(t)
	for _, hook := range ingressHooks {
		t.Run(hook.name, func(t *testing.T) {
			l := newLab(t)
			addIPv6(t, l)
			d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, NodeIP6: v6Node, MaxServices: 16})
			if err != nil {
				t.Fatalf("%+v", err)
			}
			t.Cleanup(func() { d.Close() })
			http := model.ServicePort{Name: "http", Port: 80, Protocol: model.TCP}
			st := &model.State{Services: []model.Service{{
				Key: model.ServiceKey{Namespace: "default", Name: "web6"}, VIPs: []netip.Addr{v6VIP.Addr()},
				Ports: []model.ServicePort{http},
				Endpoints: []model.Endpoint{{Addr: v6Backend.Addr(), NodeName: "node2", Ready: true,
					Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}},
			}}}
			if _, err := d.Sync(st, "node1"); err != nil {
				t.Fatal(err)
			}
			prog := hook.prog(d.objs)
			delNeigh(t, l, v6Node2)
			delNeigh(t, l, v6Client.Addr())

			in, err := pkt.IPv6TCP(labClientMAC, labLan0MAC, v6Client, v6VIP)
			if err != nil {
				t.Fatal(err)
			}
			out := runNoNeigh(t, l, d, prog, hook.xdp, in, "fwd")
			src, dst, hop, mac := v6View(t, out)
			if dst != v6Backend || src.Addr() != v6Node || src.Port() < 61000 || hop != wantHop(hook.xdp) || !bytes.Equal(mac, labLan0MAC) {
				t.Fatalf("request %s -> %s hop %d to %s, want %s:61000+ -> %s hop %d, MACs untouched",
					src, dst, hop, mac, v6Node, v6Backend, wantHop(hook.xdp))
			}

			reply, err := pkt.IPv6TCP(labNode2MAC, labLan0MAC, v6Backend, src)
			if err != nil {
				t.Fatal(err)
			}
			out = runNoNeigh(t, l, d, prog, hook.xdp, reply, "revnat")
			rsrc, rdst, hop, _ := v6View(t, out)
			if rsrc != v6VIP || rdst != v6Client || hop != wantHop(hook.xdp) {
				t.Fatalf("reply %s -> %s hop %d, want %s -> %s hop %d", rsrc, rdst, hop, v6VIP, v6Client, wantHop(hook.xdp))
			}

			// The flow's next packet, established: still no neighbour, so
			// the same path, and nothing cached from the failed lookup.
			key := flowKey(v6Client, v6VIP, pkt.TCP)
			fibFlag := uint32(lbLbCtFlagsLB_CT_FIB)
			runNoNeigh(t, l, d, prog, hook.xdp, in, "fwd")
			var ct lbLbCt
			if err := d.objs.LbConntrack.Lookup(key, &ct); err != nil {
				t.Fatalf("conntrack entry: %v", err)
			}
			if ct.Flags&fibFlag != 0 {
				t.Errorf("entry caches a next hop (flags %#x, dmac %x) from a lookup that found no neighbour", ct.Flags, ct.Dmac)
			}

			// node2 resolved: the next packet caches it and the one after
			// goes the fast path from the cache. Then node2 is gone again
			// and the refresh comes due: passed (XDP), and the stale next
			// hop is no longer cached.
			if hook.xdp {
				setNeigh6(t, l, v6Node2, labNode2MAC)
				for range 2 {
					ret, out, err := l.run(prog, true, in)
					if err != nil {
						t.Fatal(err)
					}
					if _, _, _, mac := v6View(t, out); ret != sentBack.code(true) || !bytes.Equal(mac, labNode2MAC) {
						t.Fatalf("node2 resolved: verdict %d to %s, want XDP_TX to %s", ret, mac, labNode2MAC)
					}
				}
				if err := d.objs.LbConntrack.Lookup(key, &ct); err != nil || ct.Flags&fibFlag == 0 {
					t.Fatalf("node2 resolved: entry flags %#x (%v), want the next hop cached", ct.Flags, err)
				}
				delNeigh(t, l, v6Node2)
				ct.LastSeen = 1
				if err := d.objs.LbConntrack.Put(key, ct); err != nil {
					t.Fatal(err)
				}
				runNoNeigh(t, l, d, prog, true, in, "")
				if err := d.objs.LbConntrack.Lookup(key, &ct); err != nil || ct.Flags&fibFlag != 0 {
					t.Errorf("after the refresh without a neighbour: entry flags %#x (%v), want no cached next hop", ct.Flags, err)
				}
			}
		})
	}
}

func setNeigh6(t *testing.T, l *lab, a netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	err := l.ns.Do(func() error {
		return netlink.NeighSet(&netlink.Neigh{LinkIndex: l.lan0, Family: netlink.FAMILY_V6, State: netlink.NUD_PERMANENT,
			IP: a.AsSlice(), HardwareAddr: mac})
	})
	if err != nil {
		t.Fatalf("set neighbour %s: %v", a, err)
	}
}
