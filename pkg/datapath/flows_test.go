// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/internal/testutil/pkt"
	"github.com/lbd-project/lbd/pkg/model"
)

// nextEvent reads one event, failing the test when none comes in time.
func nextEvent(t *testing.T, r *FlowReader) FlowEvent {
	t.Helper()
	r.SetDeadline(time.Now().Add(2 * time.Second))
	e, err := r.Read()
	if err != nil {
		t.Fatalf("read flow event: %v", err)
	}
	return e
}

// noEvent checks that nothing else is in the ring buffer. The programs ran
// synchronously (test_run), so an event they emitted is already there: a
// short deadline proves absence.
func noEvent(t *testing.T, r *FlowReader) {
	t.Helper()
	r.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if e, err := r.Read(); err == nil {
		t.Errorf("unexpected flow event %+v", e)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read flow event: %v", err)
	}
}

// TestPrivilegedFlowEvents runs VIP packets through the XDP and TC ingress
// programs (BPF_PROG_TEST_RUN) and reads the flow ring buffer: nothing is
// emitted while no reader is open, and with one open a new flow emits
// exactly one event carrying client, VIP, backend, SNAT port, service id
// and protocol; drops carry their reason; established packets emit nothing
// unless sampled; an affinity hit is flagged.
func TestPrivilegedFlowEvents(t *testing.T) {
	testutil.Privileged(t)
	for _, hook := range ingressHooks {
		t.Run(hook.name, func(t *testing.T) {
			e := newPktEnv(t, hook.xdp, hook.prog)
			l, d, prog := e.lab, e.d, e.prog
			send := func(src, dst netip.AddrPort, flags uint8) {
				t.Helper()
				in := frame(src, dst, pkt.TCP, func(f *pkt.IPv4) { f.TCPFlags = flags })(nil)
				if _, _, err := l.run(prog, hook.xdp, in); err != nil {
					t.Fatal(err)
				}
			}
			stats := func() (uint64, uint64) {
				t.Helper()
				e, lost, err := d.FlowStats()
				if err != nil {
					t.Fatal(err)
				}
				return e, lost
			}

			// Off: a new flow and a drop emit nothing.
			raw, err := ringbuf.NewReader(d.objs.LbFlowEvents)
			if err != nil {
				t.Fatal(err)
			}
			send(ap(labClient, 41001), webHTTP, pkt.SYN)
			send(ap(labClient, 41002), ap(vipWeb, 81), pkt.SYN)
			raw.SetDeadline(time.Now().Add(50 * time.Millisecond))
			if rec, err := raw.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("with flow events off, ring buffer read = %x, %v; want nothing", rec.RawSample, err)
			}
			raw.Close()
			if e, lost := stats(); e != 0 || lost != 0 {
				t.Errorf("with flow events off: emitted %d, lost %d; want 0, 0", e, lost)
			}

			r, err := d.OpenFlows(0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.OpenFlows(0); !errors.Is(err, ErrFlowsBusy) {
				t.Errorf("second OpenFlows = %v, want ErrFlowsBusy", err)
			}
			ignore := cmpopts.IgnoreFields(FlowEvent{}, "Time")
			cmpAP := cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{})

			// A new flow: one event, with the backend and SNAT port the
			// connection table holds.
			c := ap(labClient, 41003)
			before := time.Now()
			send(c, webHTTP, pkt.SYN)
			got := nextEvent(t, r)
			var ct lbLbCt
			if err := d.objs.LbConntrack.Lookup(flowKey(c, webHTTP, pkt.TCP), &ct); err != nil {
				t.Fatal(err)
			}
			want := FlowEvent{
				Type: FlowNew, Reason: "fwd", Protocol: model.TCP, Client: c, VIP: webHTTP, Backend: webBE,
				SNATPort: htons(ct.SnatPort), SNAT: true, ServiceID: frontendID(t, d, vipWeb, 80),
			}
			if diff := cmp.Diff(want, got, ignore, cmpAP); diff != "" {
				t.Errorf("new flow event (-want +got):\n%s", diff)
			}
			if got.SNATPort < 61000 {
				t.Errorf("SNAT port %d outside 61000-65535", got.SNATPort)
			}
			if d := got.Time.Sub(before); d < -time.Second || d > 10*time.Second {
				t.Errorf("event time %v is %v from the send", got.Time, d)
			}
			noEvent(t, r)

			// The same flow again is established: not sampled, no event.
			send(c, webHTTP, pkt.ACK)
			noEvent(t, r)

			// Drops: outside loadBalancerSourceRanges, and a VIP port
			// without a service.
			send(ap(labClient, 41004), ap(vipRanges, 80), pkt.SYN)
			got = nextEvent(t, r)
			want = FlowEvent{Type: FlowDrop, Reason: "drop_src_range", Protocol: model.TCP,
				Client: ap(labClient, 41004), VIP: ap(vipRanges, 80), ServiceID: frontendID(t, d, vipRanges, 80)}
			if diff := cmp.Diff(want, got, ignore, cmpAP); diff != "" {
				t.Errorf("source range drop event (-want +got):\n%s", diff)
			}
			send(ap(labClient, 41005), ap(vipWeb, 81), pkt.SYN)
			got = nextEvent(t, r)
			want = FlowEvent{Type: FlowDrop, Reason: "drop_no_port", Protocol: model.TCP,
				Client: ap(labClient, 41005), VIP: ap(vipWeb, 81), ServiceID: 0xffffffff, NoService: true}
			if diff := cmp.Diff(want, got, ignore, cmpAP); diff != "" {
				t.Errorf("no-port drop event (-want +got):\n%s", diff)
			}
			// No ready backend: the client gets a RST, the event says why.
			send(ap(labClient, 41006), ap(vipEmpty, 80), pkt.SYN)
			got = nextEvent(t, r)
			if got.Type != FlowDrop || got.Reason != "reset_no_backend" || got.VIP != ap(vipEmpty, 80) {
				t.Errorf("no-backend event = %+v, want a reset_no_backend drop for %s:80", got, vipEmpty)
			}
			noEvent(t, r)

			// Affinity: the client's second flow reuses its backend.
			spread := ap(vipSpread, 80)
			send(ap(labClient, 41007), spread, pkt.SYN)
			first := nextEvent(t, r)
			send(ap(labClient, 41008), spread, pkt.SYN)
			second := nextEvent(t, r)
			if first.Affinity || !second.Affinity || second.Backend != first.Backend {
				t.Errorf("affinity: first %+v, second %+v; want the second flagged, same backend", first, second)
			}

			emitted, lost := stats()
			if emitted != 6 || lost != 0 {
				t.Errorf("emitted %d, lost %d; want 6, 0", emitted, lost)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			// Closed: emission is off again.
			send(ap(labClient, 41009), webHTTP, pkt.SYN)
			if e, _ := stats(); e != emitted {
				t.Errorf("after Close, emitted moved from %d to %d", emitted, e)
			}

			// Sampling 1: every established packet is reported.
			r, err = d.OpenFlows(1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			send(c, webHTTP, pkt.ACK)
			got = nextEvent(t, r)
			if got.Type != FlowEstablished || got.Client != c || got.Backend != webBE {
				t.Errorf("sampled established event = %+v", got)
			}
			noEvent(t, r)
		})
	}
}
