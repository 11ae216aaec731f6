// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// How the XDP benchmarks measure what they claim.
//
// Every figure is the kernel's own per-run time of BPF_PROG_TEST_RUN with a
// large Repeat (bpf_attr.test.duration: the clock is read once before the
// first run and once after the last, then divided by Repeat), so neither
// the syscall nor the copy in and out nor the clock reads weigh on it.
// cilium/ebpf's Program.Benchmark is that same call, but it takes no
// context, and the context is needed (ingress ifindex = lan0, so
// bpf_fib_lookup resolves as on the node and a forwarded packet is XDP_TX):
// hence the raw syscall below, with Repeat.
//
// With Repeat > 1 the kernel reruns the program on the buffer the previous
// run rewrote. The hit service is built so that the rewritten packet takes
// the same path again: its one backend is its own VIP (on a remote node,
// so it is SNATed). A translated packet node:sport -> VIP:80 is therefore
// VIP traffic of the same service again:
//   - new_flow: client C:p -> VIP misses conntrack, takes Maglev, claims a
//     SNAT port s1 (revnat insert) and inserts conntrack; the result
//     node:s1 -> VIP is again a new flow, and so on: every run of the batch
//     is a new flow with a fresh SNAT port (ports are never reused while
//     their flow lives). Each batch starts from a new client port. The
//     connection and reverse tables are flushed (outside the timed
//     batches) every newFlowFlush flows, so the SNAT range stays mostly
//     free, as on a node whose LRU tables are sized for its load.
//   - established: one warm-up batch walks that chain from a start packet
//     once (creating the entries); the measured batches replay the same
//     start packet, so every run is a conntrack hit, SNAT+DNAT rewrite,
//     FIB lookup, MAC rewrite, XDP_TX.
//   - non_vip: a TCP frame to a non-VIP address on the VLAN, which the
//     program leaves untouched: parse, two service lookups (frontend and
//     VIP marker), node-address check, XDP_PASS.
//
// lbd decrements the TTL of what it forwards and drops at TTL 1, so a
// chain is at most 254 runs long: the forwarded cases use Repeat
// chainRepeat from TTL 255 (the clock overhead per run is then two clock
// reads / 250, well under 1 ns); non_vip uses a larger Repeat.
//
// After each sub-benchmark the lb_reasons counters must have moved by
// exactly the number of runs for the expected reason, and the hit
// service's new-flow counter by the number of runs (new_flow) or not at
// all (established, non_vip): a benchmark that silently measured another
// path fails.
//
// b.N counts packets (program runs); ns/op is the kernel's mean per run,
// wall-ns/op the wall-clock time per run including the syscalls.

const (
	chainRepeat  = 250
	nonVIPRepeat = 10000
	newFlowFlush = 8192
)

// testRunAttr is the BPF_PROG_TEST_RUN part of union bpf_attr.
type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      uint64
	dataOut     uint64
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       uint64
	ctxOut      uint64
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// errInterrupted is a test_run batch cut short by a signal (Go's runtime
// sends them): some of its runs happened, how many is unknown.
var errInterrupted = errors.New("test run interrupted")

// testRun runs prog repeat times (on the same, possibly rewritten, buffer)
// and returns the last verdict and the kernel-measured mean run time.
func testRun(prog *ebpf.Program, data, ctx []byte, repeat uint32) (uint32, time.Duration, error) {
	attr := testRunAttr{
		progFD:     uint32(prog.FD()),
		dataSizeIn: uint32(len(data)),
		dataIn:     uint64(uintptr(unsafe.Pointer(&data[0]))),
		repeat:     repeat,
		ctxSizeIn:  uint32(len(ctx)),
		ctxIn:      uint64(uintptr(unsafe.Pointer(&ctx[0]))),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(data)
	runtime.KeepAlive(ctx)
	if errno == unix.EINTR {
		return 0, 0, errInterrupted
	}
	if errno != 0 {
		return 0, 0, fmt.Errorf("bpf prog test run: %w", errno)
	}
	return attr.retval, time.Duration(attr.duration), nil
}

// benchVIPs is the range of the benchmark's VIPs, routed via node2 in the
// lab so that a packet to the hit VIP (its own backend) is forwarded.
var benchVIPs = netip.MustParsePrefix("10.30.0.0/16")

// benchServices is a State of n single-port services with 10 backends
// each, drawn from 250 pods on node2, and the VIP of the one to hit, whose
// only backend is its own VIP on node2 (see above).
func benchServices(n int) (*model.State, netip.AddrPort) {
	st := &model.State{}
	port := model.ServicePort{Name: "http", Port: 80, Protocol: model.TCP}
	hit := n / 2
	for i := range n {
		svc := model.Service{
			Key:   model.ServiceKey{Namespace: "bench", Name: fmt.Sprintf("svc%d", i)},
			VIPs:  []netip.Addr{netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)})},
			Ports: []model.ServicePort{port},
		}
		for k := range 10 {
			addr, p := netip.AddrFrom4([4]byte{10, 241, 2, byte((i*10+k)%250 + 1)}), uint16(8080)
			if i == hit {
				if k > 0 {
					break
				}
				addr, p = svc.VIPs[0], 80
			}
			svc.Endpoints = append(svc.Endpoints, model.Endpoint{
				Addr:     addr,
				NodeName: "node2", Ready: true, Serving: true,
				Ports: []model.EndpointPort{{Name: "http", Port: p, Protocol: model.TCP}},
			})
		}
		st.Services = append(st.Services, svc)
	}
	return st, netip.AddrPortFrom(st.Services[hit].VIPs[0], 80)
}

// xdpBench is one service count's datapath in the lab.
type xdpBench struct {
	l   *lab
	d   *Datapath
	ctx []byte // xdp_md without data_end
	hit frontendKey
}

// measure runs frame in batches of repeat until b.N runs, calling
// before(i) ahead of batch i (untimed), and checks that every run left
// with reason and counted newPerRun new flows on the hit service.
func (x *xdpBench) measure(b *testing.B, frame func(batch int) []byte, before func(batch int), repeat int, want uint32, reason string, newPerRun uint64) {
	b.Helper()
	reasons0, err := x.d.Reasons()
	if err != nil {
		b.Fatal(err)
	}
	flows0 := newFlows(b, x.d, x.hit)
	runs, interrupted := 0, 0
	var kernel time.Duration // sum of per-run mean x runs
	wall := time.Now()
	err = x.l.ns.Do(func() error {
		b.ResetTimer()
		for i := 0; runs < b.N; i++ {
			if before != nil {
				b.StopTimer()
				before(i)
				b.StartTimer()
			}
			f := frame(i)
			ctx := append([]byte(nil), x.ctx...)
			binary.NativeEndian.PutUint32(ctx[4:], uint32(len(f))) // data_end
			ret, mean, err := testRun(x.d.objs.LbXdp, f, ctx, uint32(repeat))
			if errors.Is(err, errInterrupted) {
				// Not timed, not counted: the counter checks below
				// allow for its runs. The next batch gets a fresh
				// frame (a new flow's start must be new).
				interrupted++
				continue
			}
			if err != nil {
				return err
			}
			if ret != want {
				r, _ := x.d.Reasons()
				n := 0
				var k lbLbFlowKey
				for err := x.d.objs.LbRevnat.NextKey(nil, &k); err == nil; err = x.d.objs.LbRevnat.NextKey(k, &k) {
					n++
				}
				return fmt.Errorf("batch %d: last verdict %d, want %d (lb_reasons moved %v) revnat %d", i, ret, want, reasonDelta(reasons0, r), n)
			}
			kernel += mean * time.Duration(repeat)
			runs += repeat
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(kernel.Nanoseconds())/float64(runs), "ns/op")
	b.ReportMetric(float64(time.Since(wall).Nanoseconds())/float64(runs), "wall-ns/op")
	reasons1, err := x.d.Reasons()
	if err != nil {
		b.Fatal(err)
	}
	// Every run, timed or in an interrupted batch, must have taken the
	// path: only reason moved, by at least the timed runs (exactly, but
	// for interrupted batches), and new flows moved with it (new_flow) or
	// not at all.
	got := reasonDelta(reasons0, reasons1)
	n := got[reason]
	if len(got) != 1 || n < uint64(runs) || (interrupted == 0 && n != uint64(runs)) || n > uint64(runs+interrupted*repeat) {
		b.Fatalf("measured the wrong path: lb_reasons moved %v over %d runs (%d batches interrupted), want only %s", got, runs, interrupted, reason)
	}
	if nf := newFlows(b, x.d, x.hit) - flows0; nf != newPerRun*n {
		b.Fatalf("measured the wrong path: %d new flows over %d runs, want %d", nf, n, newPerRun*n)
	}
	if interrupted > 0 {
		b.Logf("%d batches interrupted by signals and retried", interrupted)
	}
}

// flushFlows empties the connection and reverse tables.
func (x *xdpBench) flushFlows(b *testing.B) {
	b.Helper()
	for _, m := range []*ebpf.Map{x.d.objs.LbConntrack, x.d.objs.LbRevnat} {
		var keys []lbLbFlowKey
		var k lbLbFlowKey
		for err := m.NextKey(nil, &k); err == nil; err = m.NextKey(k, &k) {
			keys = append(keys, k)
		}
		for _, k := range keys {
			m.Delete(k)
		}
	}
}

func BenchmarkPrivilegedXDP(b *testing.B) {
	testutil.Privileged(b)
	for _, n := range []int{1, 1000, 10000, 50000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			l := newLab(b)
			err := l.ns.Do(func() error {
				r := netlink.Route{LinkIndex: l.lan0, Dst: ipNet(benchVIPs), Gw: labNode2IP.AsSlice()}
				return netlink.RouteAdd(&r)
			})
			if err != nil {
				b.Fatalf("route the VIPs via node2: %v", err)
			}
			// The whole port range for SNAT: new_flow claims a fresh
			// port per run (see above).
			d, err := New(Options{PinDir: testPinDir(b), NodeIP4: labNodeIP, MaxServices: uint32(n),
				ConntrackSize: 65536, SNATPortMin: 1024, SNATPortMax: 65535})
			if err != nil {
				b.Fatalf("%+v", err)
			}
			b.Cleanup(func() { d.Close() })
			st, vip := benchServices(n)
			start := time.Now()
			if _, err := d.Sync(st, "node1"); err != nil {
				b.Fatal(err)
			}
			b.Logf("sync of %d services took %v", n, time.Since(start))
			ctx, err := binary.Append(nil, binary.NativeEndian, xdpMd{IngressIfindex: uint32(l.lan0)})
			if err != nil {
				b.Fatal(err)
			}
			x := &xdpBench{l: l, d: d, ctx: ctx, hit: frontendKey{VIP: vip.Addr(), Port: vip.Port(), Proto: model.TCP}}
			build := func(src, dst netip.AddrPort) []byte {
				return pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: src, Dst: dst, Proto: pkt.TCP,
					TCPFlags: pkt.ACK, TTL: 255, Payload: make([]byte, 64)}.MustBuild()
			}
			fwd := sentBack.code(true)

			b.Run("established", func(b *testing.B) {
				start := build(netip.MustParseAddrPort("10.20.0.200:33000"), vip)
				// Warm-up: walk the chain once, creating its entries.
				x.measureWarm(b, start)
				x.measure(b, func(int) []byte { return start }, nil, chainRepeat, fwd, "fwd", 0)
			})
			// The client sequence outlives one round of the benchmark
			// (the framework calls it again with a larger b.N): a
			// repeated start could still be in conntrack.
			seq, claimed := 0, 0
			b.Run("new_flow", func(b *testing.B) {
				x.flushFlows(b)
				claimed = 0
				frame := func(int) []byte {
					seq++
					src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, 2, byte(seq / 50000)}), uint16(1024+seq%50000))
					return build(src, vip)
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
			b.Run("non_vip", func(b *testing.B) {
				frame := build(netip.MustParseAddrPort("10.20.0.200:33001"), netip.MustParseAddrPort("10.20.0.99:80"))
				x.measure(b, func(int) []byte { return frame }, nil, nonVIPRepeat, toStack.code(true), "pass", 0)
			})
		})
	}
}

// measureWarm runs start once as a chain of chainRepeat forwarded runs.
func (x *xdpBench) measureWarm(b *testing.B, start []byte) {
	b.Helper()
	ctx := append([]byte(nil), x.ctx...)
	binary.NativeEndian.PutUint32(ctx[4:], uint32(len(start)))
	err := x.l.ns.Do(func() error {
		ret, _, err := testRun(x.d.objs.LbXdp, start, ctx, chainRepeat)
		for errors.Is(err, errInterrupted) {
			// The part of the chain that ran is established now,
			// which is what the warm-up is for: run it to its end.
			ret, _, err = testRun(x.d.objs.LbXdp, start, ctx, chainRepeat)
		}
		if err == nil && ret != sentBack.code(true) {
			err = fmt.Errorf("verdict %d, want XDP_TX", ret)
		}
		return err
	})
	if err != nil {
		b.Fatalf("warm-up chain: %v", err)
	}
}

// newFlows reads the new-flow counter of frontend fk, summed over CPUs.
func newFlows(tb testing.TB, d *Datapath, fk frontendKey) uint64 {
	tb.Helper()
	fe, ok := d.frontends[fk]
	if !ok {
		tb.Fatalf("no frontend %v", fk)
	}
	var per []lbLbSvcStats
	if err := d.objs.LbStats.Lookup(fe.id, &per); err != nil {
		tb.Fatal(err)
	}
	var n uint64
	for _, s := range per {
		n += s.NewFlows
	}
	return n
}
