// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/status"
)

var (
	vip1    = netip.MustParseAddr("10.20.1.1")
	client1 = netip.MustParseAddrPort("10.20.0.200:40001")
	be1     = netip.MustParseAddrPort("10.241.2.10:8080")
)

func testState() *model.State {
	return &model.State{Services: []model.Service{{
		Key:       model.ServiceKey{Namespace: "default", Name: "web"},
		VIPs:      []netip.Addr{vip1},
		Ports:     []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
		Endpoints: []model.Endpoint{{Addr: be1.Addr(), NodeName: "node2", Ready: true}},
	}}}
}

func newFlow(client netip.AddrPort) datapath.FlowEvent {
	return datapath.FlowEvent{
		Time: time.Unix(1700000000, 0), Type: datapath.FlowNew, Reason: "fwd", Protocol: model.TCP,
		Client: client, VIP: netip.AddrPortFrom(vip1, 80), Backend: be1, SNATPort: 61001, SNAT: true,
	}
}

// fakeReader stands in for the ring buffer in the unit tests (the real one
// is exercised by the privileged tests in pkg/datapath and cmd/lbd).
type fakeReader struct {
	ch     chan datapath.FlowEvent
	closed chan struct{}
	once   sync.Once
}

func (f *fakeReader) Read() (datapath.FlowEvent, error) {
	select {
	case e := <-f.ch:
		return e, nil
	case <-f.closed:
		return datapath.FlowEvent{}, os.ErrClosed
	}
}

func (f *fakeReader) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

type fakeDatapath struct {
	mu    sync.Mutex
	opens int
	cur   *fakeReader
}

func (d *fakeDatapath) open() (Reader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur != nil {
		select {
		case <-d.cur.closed:
		default:
			return nil, datapath.ErrFlowsBusy
		}
	}
	d.opens++
	d.cur = &fakeReader{ch: make(chan datapath.FlowEvent, 16), closed: make(chan struct{})}
	return d.cur, nil
}

func (d *fakeDatapath) emit(e datapath.FlowEvent) {
	d.mu.Lock()
	r := d.cur
	d.mu.Unlock()
	r.ch <- e
}

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case e := <-s.Events():
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func TestIndexEvent(t *testing.T) {
	ix := newIndex(testState())
	got := ix.event(newFlow(client1))
	want := Event{
		Time: time.Unix(1700000000, 0), Verdict: VerdictNew, Reason: "fwd", Protocol: "TCP",
		Client: client1, VIP: netip.AddrPortFrom(vip1, 80), Service: "default/web", Backend: be1, Node: "node2", SNATPort: 61001,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		t.Errorf("new flow (-want +got):\n%s", diff)
	}
	aff := newFlow(client1)
	aff.Affinity = true
	if e := ix.event(aff); e.Verdict != VerdictAffinity {
		t.Errorf("affinity hit verdict = %q", e.Verdict)
	}
	drop := datapath.FlowEvent{Type: datapath.FlowDrop, Reason: "drop_no_port", Protocol: model.TCP, Client: client1,
		VIP: netip.AddrPortFrom(vip1, 81), NoService: true}
	if e := ix.event(drop); e.Verdict != VerdictDrop || e.Service != "" || e.Backend.IsValid() || e.Reason != "drop_no_port" {
		t.Errorf("drop = %+v", e)
	}
}

func TestFilter(t *testing.T) {
	ev := Event{Verdict: VerdictNew, Client: client1, VIP: netip.AddrPortFrom(vip1, 80), Service: "default/web"}
	for _, tc := range []struct {
		name  string
		query string
		match bool
	}{
		{"empty", "", true},
		{"vip", "vip=10.20.1.1", true},
		{"other vip", "vip=10.20.1.2", false},
		{"service full", "service=default/web", true},
		{"service name", "service=web", true},
		{"service other namespace", "service=prod/web", false},
		{"client prefix", "client=10.20.0.0/24", true},
		{"client address", "client=10.20.0.200", true},
		{"client outside", "client=192.168.0.0/16", false},
		{"verdict list", "verdict=drop,new", true},
		{"verdict repeated", "verdict=drop&verdict=affinity", false},
		{"all", "vip=10.20.1.1&service=web&client=10.20.0.0/22&verdict=new", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFilter(q)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Match(ev); got != tc.match {
				t.Errorf("Match = %v, want %v (filter %+v)", got, tc.match, f)
			}
			// Values round-trips.
			f2, err := ParseFilter(f.Values())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f, f2, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if !f.Match(Event{Verdict: VerdictLost, Lost: 3}) {
				t.Error("a lost report must pass every filter")
			}
		})
	}
	for _, bad := range []string{"vip=10.20.1", "client=nope", "verdict=forwarded"} {
		q, _ := url.ParseQuery(bad)
		if _, err := ParseFilter(q); err == nil {
			t.Errorf("ParseFilter(%q) accepted it", bad)
		}
	}
}

// TestHubOnOff: events are on exactly while someone subscribes, each
// subscriber gets what its filter matches, and a slow one loses events
// (counted) without holding the others up.
func TestHubOnOff(t *testing.T) {
	dp := &fakeDatapath{}
	var kernelLost atomic.Uint64
	h := NewHub(Config{Open: dp.open, State: testState, Buffer: 2,
		KernelLost: func() (uint64, error) { return kernelLost.Load(), nil }})
	if dp.opens != 0 {
		t.Fatal("events on before any subscriber")
	}
	all, err := h.Subscribe(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.Subscribe(Filter{Client: netip.MustParsePrefix("192.168.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if dp.opens != 1 {
		t.Fatalf("opens = %d after two subscribers, want 1", dp.opens)
	}
	dp.emit(newFlow(client1))
	if e := recv(t, all); e.Service != "default/web" || e.Node != "node2" {
		t.Errorf("event = %+v", e)
	}
	// The second subscriber's filter excludes the client.
	select {
	case e := <-other.Events():
		t.Errorf("filtered subscriber got %+v", e)
	case <-time.After(50 * time.Millisecond):
	}
	// Four events into a queue of two: two lost for this subscriber; the
	// kernel's losses since it subscribed count too.
	for i := range 4 {
		dp.emit(newFlow(netip.AddrPortFrom(client1.Addr(), uint16(50000+i))))
	}
	deadline := time.Now().Add(5 * time.Second)
	for all.Lost() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	kernelLost.Store(5)
	if got := all.Lost(); got != 7 {
		t.Errorf("Lost = %d, want 2 (queue full) + 5 (ring buffer)", got)
	}
	all.Close()
	if isClosed(dp.cur) {
		t.Error("events turned off with a subscriber left")
	}
	other.Close()
	other.Close() // idempotent
	if !isClosed(dp.cur) {
		t.Error("events still on after the last subscriber left")
	}
	// A new subscriber right after turns them on again.
	s, err := h.Subscribe(Filter{})
	if err != nil {
		t.Fatalf("resubscribe: %v", err)
	}
	defer s.Close()
	if dp.opens != 2 || h.Subscribers() != 1 {
		t.Errorf("opens %d subscribers %d, want 2 and 1", dp.opens, h.Subscribers())
	}
}

func isClosed(r *fakeReader) bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// TestStreamOverSocket: the handler on a real status socket, read by
// Stream with a filter; the subscription ends when the client stops.
func TestStreamOverSocket(t *testing.T) {
	dp := &fakeDatapath{}
	h := NewHub(Config{Open: dp.open, State: testState})
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- status.Serve(ctx, sock, func() status.Status { return status.Status{} }, status.WithHandler("GET /v1/flows", Handler(h)))
	}()
	// Emit until the stream sees an event: the subscription is made when
	// the request arrives, which the test cannot observe directly.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if h.Subscribers() > 0 {
				dp.emit(newFlow(netip.MustParseAddrPort("192.168.1.1:1000"))) // filtered out
				dp.emit(newFlow(client1))
			}
		}
	}()
	var got []Event
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	var err error
	for sctx.Err() == nil {
		err = Stream(sctx, sock, Filter{VIP: vip1, Client: netip.MustParsePrefix("10.20.0.0/22")}, func(e Event) error {
			got = append(got, e)
			if len(got) == 2 {
				return ErrStop
			}
			return nil
		})
		if !errors.Is(err, status.ErrNotRunning) {
			break // the socket was up
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range got {
		if e.Client != client1 || e.Service != "default/web" {
			t.Errorf("streamed %+v, want only %s's flows", e, client1)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.Subscribers() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.Subscribers(); n != 0 {
		t.Errorf("%d subscribers after the client left", n)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestLine(t *testing.T) {
	tm := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.Local)
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Time: tm, Verdict: VerdictNew, Protocol: "TCP", Client: client1, VIP: netip.AddrPortFrom(vip1, 80),
			Service: "default/web", Backend: be1, Node: "node2", SNATPort: 61001},
			"03:04:05.006 new         TCP  10.20.0.200:40001 -> 10.20.1.1:80 default/web -> 10.241.2.10:8080 node2 snat:61001"},
		{Event{Time: tm, Verdict: VerdictDrop, Reason: "drop_no_port", Protocol: "UDP", Client: client1, VIP: netip.AddrPortFrom(vip1, 81)},
			"03:04:05.006 drop        UDP  10.20.0.200:40001 -> 10.20.1.1:81 - drop_no_port"},
		{Event{Time: tm, Verdict: VerdictLost, Lost: 12},
			"03:04:05.006 lost        12 events not shown so far (ring buffer full or reader too slow)"},
	} {
		if got := Line(tc.e); got != tc.want {
			t.Errorf("Line =\n%q, want\n%q", got, tc.want)
		}
	}
}
