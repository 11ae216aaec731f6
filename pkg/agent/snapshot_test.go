// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/status"
)

type fakeSource struct{}

func (fakeSource) Run(ctx context.Context, _ func(*model.State)) error { <-ctx.Done(); return nil }
func (fakeSource) Name() string                                        { return "test" }

func testState() *model.State {
	a := netip.MustParseAddr
	return &model.State{
		Pools: []model.Pool{{Name: "internal", AutoAssign: true,
			Ranges: []model.AddrRange{{First: a("10.20.1.1"), Last: a("10.20.1.10")}}}},
		Nodes: []model.Node{{Name: "node1", Addrs: []netip.Addr{a("10.20.0.51")}}, {Name: "node2", Addrs: []netip.Addr{a("10.20.0.52")}}},
		Services: []model.Service{
			{
				Key: model.ServiceKey{Namespace: "default", Name: "web"}, Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
				Endpoints: []model.Endpoint{{Addr: a("10.241.1.10"), NodeName: "node1", Ready: true, Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}},
			},
			{
				Key: model.ServiceKey{Namespace: "default", Name: "empty"}, Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
				Endpoints: []model.Endpoint{{Addr: a("10.241.2.10"), NodeName: "node2", Ready: false, Terminating: true, Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}},
			},
		},
	}
}

// reconciledSnapshot runs the allocation path of reconcile without a
// datapath or announcer and returns the snapshot.
func reconciledSnapshot(t *testing.T, in *model.State, extra func(*Agent)) status.Status {
	t.Helper()
	a, err := New(Config{NodeName: "node1", Interface: "eth0", StaticIPAM: true, Version: "test"}, fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	st, errs := a.allocate(in)
	if len(errs) > 0 {
		t.Fatalf("allocate: %v", errs)
	}
	a.state = st
	a.owned = map[netip.Addr]bool{}
	if extra != nil {
		extra(a)
	}
	return a.Snapshot()
}

func TestSnapshotVIPsAndWarnings(t *testing.T) {
	s := reconciledSnapshot(t, testState(), nil)
	if len(s.VIPs) != 2 {
		t.Fatalf("got %d VIPs, want 2: %+v", len(s.VIPs), s.VIPs)
	}
	// "default/empty" sorts first, so it gets 10.20.1.1.
	if s.VIPs[0].VIP != "10.20.1.1" || s.VIPs[0].Service != "default/empty" || s.VIPs[0].Pool != "internal" {
		t.Errorf("first VIP = %+v", s.VIPs[0])
	}
	if s.VIPs[1].Ports[0].Backends[0].Addr != "10.241.1.10:8080" || !s.VIPs[1].Ports[0].Backends[0].Local {
		t.Errorf("web backends = %+v", s.VIPs[1].Ports[0].Backends)
	}
	for _, v := range s.VIPs {
		if v.Owner != "node1" && v.Owner != "node2" {
			t.Errorf("VIP %s has owner %q", v.VIP, v.Owner)
		}
	}
	// The agent reports the data; the warning is status.Check's, added
	// once by the Checker every consumer goes through.
	if hasLine(s.Warnings, "no ready backend") {
		t.Errorf("agent computed the no-ready-backend warning itself: %q", s.Warnings)
	}
	status.Annotate(&s, time.Now())
	if n := countLines(s.Warnings, "VIP 10.20.1.1 port 80/TCP (default/empty) has no ready backend"); n != 1 {
		t.Errorf("warnings = %q, want the no-ready-backend warning once", s.Warnings)
	}
	if hasLine(s.Warnings, "pool internal") {
		t.Errorf("pool warning with 2 of 10 used: %q", s.Warnings)
	}
}

func TestSnapshotPoolNearlyFull(t *testing.T) {
	st := testState()
	// 2 services in a 2-address pool: 100% used.
	st.Pools[0].Ranges[0].Last = netip.MustParseAddr("10.20.1.2")
	s := reconciledSnapshot(t, st, nil)
	if hasLine(s.Warnings, "full") {
		t.Errorf("agent computed the pool warning itself: %q", s.Warnings)
	}
	status.Annotate(&s, time.Now())
	if countLines(s.Warnings, "pool internal is 100% full") != 1 {
		t.Errorf("warnings = %q, want pool internal is 100%% full", s.Warnings)
	}
	if s.Pools[0].Used != 2 || s.Pools[0].Total != 2 {
		t.Errorf("pool = %+v", s.Pools[0])
	}
}

func TestSnapshotRenderAndErrors(t *testing.T) {
	s := reconciledSnapshot(t, testState(), func(a *Agent) {
		a.errs = []string{"service default/x: not allowed"}
	})
	status.Annotate(&s, time.Now())
	var b bytes.Buffer
	if err := status.Render(&b, &s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"node node1", "internal", "10.20.1.1", "default/empty", "80/TCP",
		"error: service default/x: not allowed",
		"warning: VIP 10.20.1.1 port 80/TCP (default/empty) has no ready backend",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendered status lacks %q:\n%s", want, out)
		}
	}
}

func countLines(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func hasLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
