// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// BenchmarkPrivilegedFlowEvents measures what flow events cost the XDP
// path (BenchmarkPrivilegedXDP's lab, one service): off (nobody listens),
// on (a reader drains the ring buffer: new flows emit, established packets
// do not) and on with every established packet sampled. Compare "off" with
// BenchmarkPrivilegedXDP for the price of the call sites themselves.
func BenchmarkPrivilegedFlowEvents(b *testing.B) {
	testutil.Privileged(b)
	l := newLab(b)
	if err := l.ns.Do(func() error {
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.lan0, Dst: ipNet(benchVIPs), Gw: labNode2IP.AsSlice()})
	}); err != nil {
		b.Fatal(err)
	}
	d, err := New(Options{PinDir: testPinDir(b), NodeIP4: labNodeIP, MaxServices: 1,
		ConntrackSize: 65536, SNATPortMin: 1024, SNATPortMax: 65535})
	if err != nil {
		b.Fatalf("%+v", err)
	}
	b.Cleanup(func() { d.Close() })
	st, vip := benchServices(1)
	if _, err := d.Sync(st, "node1"); err != nil {
		b.Fatal(err)
	}
	ctx, err := binary.Append(nil, binary.NativeEndian, xdpMd{IngressIfindex: uint32(l.lan0)})
	if err != nil {
		b.Fatal(err)
	}
	x := &xdpBench{l: l, d: d, ctx: ctx, hit: frontendKey{VIP: vip.Addr(), Port: vip.Port(), Proto: model.TCP}}
	build := func(src netip.AddrPort) []byte {
		return pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: src, Dst: vip, Proto: pkt.TCP,
			TCPFlags: pkt.ACK, TTL: 255, Payload: make([]byte, 64)}.MustBuild()
	}
	fwd := sentBack.code(true)
	seq := 0
	for _, mode := range []struct {
		name   string
		on     bool
		sample uint32
	}{{"on", true, 0}, {"off", false, 0}, {"on_sample_all", true, 1}, {"off_again", false, 0}} {
		b.Run(mode.name, func(b *testing.B) {
			if mode.on {
				r, err := d.OpenFlows(mode.sample)
				if err != nil {
					b.Fatal(err)
				}
				drained := make(chan int)
				go func() {
					n := 0
					for {
						if _, err := r.Read(); errors.Is(err, os.ErrClosed) {
							drained <- n
							return
						}
						n++
					}
				}()
				e0, l0, _ := d.FlowStats()
				defer func() {
					r.Close()
					n := <-drained
					e1, l1, _ := d.FlowStats()
					b.ReportMetric(float64(e1-e0), "events")
					b.ReportMetric(float64(l1-l0), "lost")
					b.Logf("%s: %d events written, %d lost (ring buffer full), %d read", mode.name, e1-e0, l1-l0, n)
				}()
			}
			b.Run("established", func(b *testing.B) {
				start := build(netip.MustParseAddrPort("10.20.0.200:33000"))
				x.measureWarm(b, start)
				x.measure(b, func(int) []byte { return start }, nil, chainRepeat, fwd, "fwd", 0)
			})
			claimed := 0
			b.Run("new_flow", func(b *testing.B) {
				x.flushFlows(b)
				claimed = 0
				frame := func(int) []byte {
					seq++
					return build(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, 2, byte(seq / 50000)}), uint16(1024+seq%50000)))
				}
				flush := func(int) {
					if claimed+chainRepeat > newFlowFlush {
						x.flushFlows(b)
						claimed = 0
					}
					claimed += chainRepeat
				}
				x.measure(b, frame, flush, chainRepeat, fwd, "fwd", 1)
			})
		})
	}
}
