// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"bytes"
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// TestPrivilegedNextHopCache: an established flow's packets go to the next
// hop cached in its connection-table entry (no bpf_fib_lookup per packet),
// and a changed neighbour is followed once the entry's last_seen refresh
// comes due (LB_CT_REFRESH_NS of activity), not before.
func TestPrivilegedNextHopCache(t *testing.T) {
	testutil.Privileged(t)
	for _, hook := range ingressHooks {
		t.Run(hook.name, func(t *testing.T) {
			e := newPktEnv(t, hook.xdp, hook.prog)
			d := e.d
			key := flowKey(client1, webHTTP, pkt.TCP)
			entry := func() lbLbCt {
				t.Helper()
				var ct lbLbCt
				if err := d.objs.LbConntrack.Lookup(key, &ct); err != nil {
					t.Fatalf("conntrack entry: %v", err)
				}
				return ct
			}
			send := func(flags uint8, wantMAC net.HardwareAddr) {
				t.Helper()
				got := e.forward(t, frame(client1, webHTTP, pkt.TCP, func(f *pkt.IPv4) { f.TCPFlags = flags })(e))
				if got.Dst != webBE || got.Src.Addr() != labNodeIP {
					t.Errorf("forwarded %s -> %s, want node -> %s", got.Src, got.Dst, webBE)
				}
				if !bytes.Equal(got.DstMAC, wantMAC) || !bytes.Equal(got.SrcMAC, labLan0MAC) {
					t.Errorf("MACs %s -> %s, want %s -> %s", got.SrcMAC, got.DstMAC, labLan0MAC, wantMAC)
				}
			}
			fibFlag := uint32(lbLbCtFlagsLB_CT_FIB)

			// The first packet (a new flow) looks the next hop up; the
			// second, established, caches it.
			send(pkt.SYN, labNode2MAC)
			if ct := entry(); ct.Flags&fibFlag != 0 {
				t.Errorf("new flow's entry has a cached next hop (flags %#x)", ct.Flags)
			}
			send(pkt.ACK, labNode2MAC)
			ct := entry()
			if ct.Flags&fibFlag == 0 || !bytes.Equal(ct.Dmac[:], labNode2MAC) || !bytes.Equal(ct.Smac[:], labLan0MAC) || ct.Oif != uint32(e.lab.lan0) {
				t.Fatalf("established entry: flags %#x dmac %x smac %x oif %d, want the cached next hop %s via %d",
					ct.Flags, ct.Dmac, ct.Smac, ct.Oif, labNode2MAC, e.lab.lan0)
			}

			// node2's MAC changes: until the refresh, packets still use the
			// cached one (proof that no lookup happens per packet).
			moved := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
			err := e.lab.ns.Do(func() error {
				return netlink.NeighSet(&netlink.Neigh{LinkIndex: e.lab.lan0, Family: netlink.FAMILY_V4,
					State: netlink.NUD_PERMANENT, IP: labNode2IP.AsSlice(), HardwareAddr: moved})
			})
			if err != nil {
				t.Fatalf("move node2's MAC: %v", err)
			}
			send(pkt.ACK, labNode2MAC)

			// The refresh comes due (last_seen long ago): the next packet
			// looks the next hop up again and caches the new one.
			ct = entry()
			ct.LastSeen = 1
			if err := d.objs.LbConntrack.Put(key, ct); err != nil {
				t.Fatal(err)
			}
			send(pkt.ACK, moved)
			if ct := entry(); ct.Flags&fibFlag == 0 || !bytes.Equal(ct.Dmac[:], moved) {
				t.Errorf("after the refresh: flags %#x dmac %x, want the new next hop %s cached", ct.Flags, ct.Dmac, moved)
			}
			send(pkt.ACK|pkt.PSH, moved)
		})
	}
}
