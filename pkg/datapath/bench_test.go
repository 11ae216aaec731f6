// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// How the XDP benchmarks measure what they claim.
//
// BPF_PROG_TEST_RUN with Repeat > 1 reruns the program on the buffer the
// previous run rewrote: after the first run a VIP frame has become a
// backend-bound frame and every later run measures the non-VIP path. So
// every iteration here is one test_run with Repeat 1 on a fresh copy of the
// frame, and ns/op is the kernel's own measurement of that one run
// (bpf_attr.test.duration, taken around the program only), summed over
// the iterations: the syscall, the copy in and out and the xdp_buff setup
// are excluded (they are reported apart as syscall-ns/op). cilium/ebpf's
// Program.Benchmark returns that duration but takes no context, and the
// context is needed (ingress ifindex = lan0, so bpf_fib_lookup resolves as
// on the node), hence the raw syscall below.
//
// The paths:
//   - established: the frame of a flow whose conntrack entry exists (one
//     warm-up run creates it): lookup, conntrack hit, DNAT+SNAT rewrite,
//     FIB lookup, MAC rewrite, XDP_TX.
//   - new_flow: each iteration changes the client port (and, every 60000
//     iterations, the client address), so each run misses conntrack and
//     takes Maglev, a SNAT port claim (revnat insert) and a conntrack
//     insert. Checksums of the mutated frames are not fixed up: the
//     datapath updates them incrementally and never verifies, so the work
//     is the same. The LRU tables are kept small (4096) so that they
//     evict in steady state as a full production table does, and so SNAT
//     ports (4536 per backend) never run out.
//   - non_vip: a TCP frame to a non-VIP address on the VLAN: parse, two
//     service lookups (frontend and VIP marker), XDP_PASS.
//   - non_vip_batched: the same frame, which the program leaves untouched,
//     run b.N times in one test_run (Repeat = b.N): the kernel times the
//     batch, not each run, so the gap to non_vip is the cost of timing
//     one run (two clock reads), which the other numbers include.
//
// After each sub-benchmark the lb_reasons counters must have moved by
// exactly the iteration count for the expected reason, so a benchmark that
// silently measured another path fails.

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

// testRunOnce runs prog once on data with the serialised context ctx and
// returns its verdict and the kernel-measured run time.
func testRunOnce(prog *ebpf.Program, data, ctx []byte) (uint32, time.Duration, error) {
	return testRun(prog, data, ctx, 1)
}

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
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(data)
		runtime.KeepAlive(ctx)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, 0, fmt.Errorf("bpf prog test run: %w", errno)
		}
		return attr.retval, time.Duration(attr.duration), nil
	}
}

// benchServices is a State of n single-port services with 10 backends
// each, drawn from 250 pods on node2, and the VIP of the one to hit.
func benchServices(n int) (*model.State, netip.AddrPort) {
	st := &model.State{}
	port := model.ServicePort{Name: "http", Port: 80, Protocol: model.TCP}
	for i := range n {
		svc := model.Service{
			Key:   model.ServiceKey{Namespace: "bench", Name: fmt.Sprintf("svc%d", i)},
			VIPs:  []netip.Addr{netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)})},
			Ports: []model.ServicePort{port},
		}
		for k := range 10 {
			svc.Endpoints = append(svc.Endpoints, model.Endpoint{
				Addr:     netip.AddrFrom4([4]byte{10, 241, 2, byte((i*10+k)%250 + 1)}),
				NodeName: "node2", Ready: true, Serving: true,
				Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}},
			})
		}
		st.Services = append(st.Services, svc)
	}
	return st, netip.AddrPortFrom(st.Services[n/2].VIPs[0], 80)
}

func BenchmarkPrivilegedXDP(b *testing.B) {
	testutil.Privileged(b)
	for _, n := range []int{1, 1000, 10000, 50000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			l := newLab(b)
			d, err := New(Options{PinDir: testPinDir(b), NodeIP4: labNodeIP, MaxServices: uint32(n), ConntrackSize: 4096})
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
			build := func(src, dst netip.AddrPort) []byte {
				return pkt.IPv4{SrcMAC: labClientMAC, DstMAC: labLan0MAC, Src: src, Dst: dst, Proto: pkt.TCP, TCPFlags: pkt.ACK, Payload: make([]byte, 64)}.MustBuild()
			}
			hit := frontendKey{VIP: vip.Addr(), Port: vip.Port(), Proto: model.TCP}
			// run measures b.N runs of frame and checks that every one
			// left with reason and that newPerRun new flows were counted
			// per run.
			run := func(b *testing.B, frame []byte, mutate func(frame []byte), want uint32, reason string, newPerRun uint64) {
				xdpCtx := append([]byte(nil), ctx...)
				binary.NativeEndian.PutUint32(xdpCtx[4:], uint32(len(frame))) // data_end
				before, err := d.Reasons()
				if err != nil {
					b.Fatal(err)
				}
				flowsBefore := newFlows(b, d, hit)
				var kernel time.Duration
				wall := time.Now()
				err = l.ns.Do(func() error {
					b.ResetTimer()
					for i := range b.N {
						if mutate != nil {
							mutate(frame)
						}
						ret, dur, err := testRunOnce(d.objs.LbXdp, frame, xdpCtx)
						if err != nil {
							return err
						}
						if ret != want {
							return fmt.Errorf("iteration %d: verdict %d, want %d", i, ret, want)
						}
						kernel += dur
					}
					b.StopTimer()
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(kernel.Nanoseconds())/float64(b.N), "ns/op")
				b.ReportMetric(float64(time.Since(wall).Nanoseconds())/float64(b.N), "syscall-ns/op")
				after, err := d.Reasons()
				if err != nil {
					b.Fatal(err)
				}
				if got := reasonDelta(before, after); len(got) != 1 || got[reason] != uint64(b.N) {
					b.Fatalf("measured the wrong path: lb_reasons moved %v over %d runs, want only %s", got, b.N, reason)
				}
				if got := newFlows(b, d, hit) - flowsBefore; got != newPerRun*uint64(b.N) {
					b.Fatalf("measured the wrong path: %d new flows over %d runs, want %d", got, b.N, newPerRun*uint64(b.N))
				}
			}

			b.Run("established", func(b *testing.B) {
				frame := build(netip.MustParseAddrPort("10.20.0.200:33000"), vip)
				// Warm-up: create the flow's conntrack and revnat entries.
				if ret, _, err := l.run(d.objs.LbXdp, true, frame); err != nil || ret != sentBack.code(true) {
					b.Fatalf("warm-up run: verdict %d, %v", ret, err)
				}
				orig := bytes.Clone(frame)
				run(b, frame, nil, sentBack.code(true), "fwd", 0)
				if !bytes.Equal(frame, orig) {
					b.Fatal("test_run changed the input frame")
				}
			})
			// The flow sequence outlives one round of the benchmark (the
			// framework calls it again with a larger b.N): a repeated
			// tuple could still be in conntrack and take the
			// established path.
			seq := 0
			b.Run("new_flow", func(b *testing.B) {
				frame := build(netip.MustParseAddrPort("10.20.2.0:1024"), vip)
				mutate := func(f []byte) {
					binary.BigEndian.PutUint16(f[14+20:], uint16(1024+seq%60000))   // TCP source port
					binary.BigEndian.PutUint16(f[14+12+2:], uint16(2<<8+seq/60000)) // client 10.20.x.y from 10.20.2.0
					seq++
				}
				run(b, frame, mutate, sentBack.code(true), "fwd", 1)
			})
			b.Run("non_vip", func(b *testing.B) {
				frame := build(netip.MustParseAddrPort("10.20.0.200:33001"), netip.MustParseAddrPort("10.20.0.99:80"))
				run(b, frame, nil, toStack.code(true), "pass", 0)
			})
			b.Run("non_vip_batched", func(b *testing.B) {
				frame := build(netip.MustParseAddrPort("10.20.0.200:33001"), netip.MustParseAddrPort("10.20.0.99:80"))
				xdpCtx := append([]byte(nil), ctx...)
				binary.NativeEndian.PutUint32(xdpCtx[4:], uint32(len(frame)))
				before, err := d.Reasons()
				if err != nil {
					b.Fatal(err)
				}
				var mean time.Duration
				err = l.ns.Do(func() error {
					b.ResetTimer()
					ret, dur, err := testRun(d.objs.LbXdp, frame, xdpCtx, uint32(b.N))
					b.StopTimer()
					if err == nil && ret != toStack.code(true) {
						err = fmt.Errorf("verdict %d, want XDP_PASS", ret)
					}
					mean = dur
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(mean.Nanoseconds()), "ns/op")
				after, err := d.Reasons()
				if err != nil {
					b.Fatal(err)
				}
				// Interrupted batches are resumed, not restarted: at least
				// b.N runs, all of them on the pass path.
				if got := reasonDelta(before, after); len(got) != 1 || got["pass"] < uint64(b.N) {
					b.Fatalf("measured the wrong path: lb_reasons moved %v over %d runs, want only pass", got, b.N)
				}
			})
		})
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
