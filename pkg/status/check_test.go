// SPDX-License-Identifier: Apache-2.0

package status

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// healthy is a node with nothing to warn about: two VIPs with ready
// backends, a pool a quarter used, a healthy peer, tcx.
func healthy() Status {
	return Status{
		Node: "node1",
		Pools: []Pool{
			{Name: "internal", Ranges: []string{"10.20.1.1-10.20.1.4"}, Total: 4, Used: 1},
			{Name: "external", Ranges: []string{"10.20.1.128-10.20.1.131"}, Total: 4, Used: 1},
		},
		VIPs: []VIP{
			{VIP: "10.20.1.1", Pool: "internal", Owner: "node1", Owned: true, Services: []string{"default/web"},
				Ports: []Port{{Port: 80, Protocol: "TCP", Service: "default/web", Backends: []Backend{{Addr: "10.241.1.2:8080", Node: "node1", Ready: true, Local: true}}}}},
			{VIP: "10.20.1.128", Pool: "external", Owner: "node2", Services: []string{"web/public"},
				Ports: []Port{{Port: 443, Protocol: "TCP", Service: "web/public", Backends: []Backend{{Addr: "10.241.2.2:8443", Node: "node2", Ready: true}}}}},
		},
		Datapath: Datapath{Attached: map[string]string{"eth0": "tcx"}},
		Members:  []Member{{Node: "node1", Addr: "10.20.0.51", Healthy: true}, {Node: "node2", Addr: "10.20.0.52", Healthy: true}},
	}
}

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind)
	}
	return out
}

// TestCheck: each warning, from a state that triggers it, and only it.
func TestCheck(t *testing.T) {
	now := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	recent, old := now.Add(-time.Minute), now.Add(-SplitBrainWindow-time.Second)
	for _, tc := range []struct {
		name    string
		mod     func(*Status)
		want    []Finding
		wantOld bool // the agent's message for the same finding is already there
	}{
		{name: "healthy", mod: func(*Status) {}},
		{
			name: "no ready backend",
			mod:  func(s *Status) { s.VIPs[1].Ports[0].Backends[0].Ready = false },
			want: []Finding{{Kind: KindNoReadyBackend, VIP: "10.20.1.128", Pool: "external",
				Message: "VIP 10.20.1.128 port 443/TCP (web/public) has no ready backend"}},
		},
		{
			name: "no backend at all",
			mod:  func(s *Status) { s.VIPs[0].Ports[0].Backends = nil },
			want: []Finding{{Kind: KindNoReadyBackend, VIP: "10.20.1.1", Pool: "internal",
				Message: "VIP 10.20.1.1 port 80/TCP (default/web) has no ready backend"}},
		},
		{
			name: "pool nearly full",
			mod:  func(s *Status) { s.Pools[0].Total, s.Pools[0].Used = 100, 91 },
			want: []Finding{{Kind: KindPoolNearlyFull, Pool: "internal", Message: "pool internal is 91% full"}},
		},
		{name: "pool at 89%", mod: func(s *Status) { s.Pools[0].Total, s.Pools[0].Used = 100, 89 }},
		{
			name: "split brain, recent",
			mod:  func(s *Status) { s.Announce.Conflicts, s.Announce.LastConflict = 3, &recent },
			want: []Finding{{Kind: KindSplitBrain, Node: "node1",
				Message: "split brain: another MAC answered ARP/NDP for a VIP this node owns (3 conflicting answers since lbd started, the last noticed 1m0s ago)"}},
		},
		{name: "split brain, long ago", mod: func(s *Status) { s.Announce.Conflicts, s.Announce.LastConflict = 3, &old }},
		{
			name: "peer down",
			mod:  func(s *Status) { s.Members[1].Healthy = false },
			want: []Finding{{Kind: KindPeerDown, Node: "node2",
				Message: "membership: peer node2 (10.20.0.52) is down: its VIPs moved to the live nodes"}},
		},
		{
			name: "fenced",
			mod: func(s *Status) {
				s.Members[0].Healthy = false
				s.Members = append(s.Members, Member{Node: "node3", Addr: "10.20.0.53"})
			},
			want: []Finding{
				{Kind: KindPeerDown, Node: "node3", Message: "membership: peer node3 (10.20.0.53) is down: its VIPs moved to the live nodes"},
				{Kind: KindFenced, Node: "node1", Message: "fenced: this node hears 1 of 2 peers and announces nothing"},
			},
		},
		{
			name: "generic XDP",
			mod:  func(s *Status) { s.Datapath.Attached["eth0"] = "xdpgeneric" },
			want: []Finding{{Kind: KindGenericXDP, Node: "node1",
				Message: "datapath on eth0 runs in generic XDP mode, slower than driver XDP and tcx: use --attach-mode=auto"}},
		},
		{
			// The agent reports this one itself: Annotate must not
			// repeat it.
			name:    "agent already warned",
			mod:     func(s *Status) { s.Pools[0].Used = 4 },
			want:    []Finding{{Kind: KindPoolNearlyFull, Pool: "internal", Message: "pool internal is 100% full"}},
			wantOld: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := healthy()
			tc.mod(&st)
			if tc.wantOld {
				st.Warnings = []string{tc.want[0].Message}
			}
			Annotate(&st, now)
			if diff := cmp.Diff(tc.want, st.Findings); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			var msgs []string
			for _, f := range tc.want {
				msgs = append(msgs, f.Message)
			}
			if diff := cmp.Diff(msgs, st.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckerSplitBrain: the Checker notices the conflict counter grow and
// keeps the warning for SplitBrainWindow after the last growth.
func TestCheckerSplitBrain(t *testing.T) {
	st := healthy()
	clock := time.Date(2026, 11, 24, 20, 0, 0, 0, time.UTC)
	c := NewChecker(func() Status { return st })
	c.now = func() time.Time { return clock }
	split := func() bool { return slices.Contains(kinds(c.Snapshot().Findings), KindSplitBrain) }

	if split() {
		t.Fatal("split brain without conflicts")
	}
	st.Announce.Conflicts = 2
	clock = clock.Add(time.Minute)
	if !split() {
		t.Fatal("no split brain after the conflict counter grew")
	}
	clock = clock.Add(SplitBrainWindow - time.Second)
	if !split() {
		t.Error("split brain warning gone before the window ended")
	}
	clock = clock.Add(2 * time.Second)
	if split() {
		t.Error("split brain warning still up after the window, with no new conflict")
	}
	st.Announce.Conflicts = 3
	if !split() {
		t.Error("a new conflict did not bring the warning back")
	}
}

// TestForVIP: `lbd status VIP` keeps that VIP, its pool, and the findings
// about it, its pool or the node.
func TestForVIP(t *testing.T) {
	st := healthy()
	st.VIPs[0].Ports[0].Backends = nil                       // 10.20.1.1
	st.VIPs[1].Ports[0].Backends[0].Ready = false            // 10.20.1.128
	st.Pools[1].Used = 4                                     // external full
	st.Datapath.Attached["eth0"] = "xdpgeneric"              // node-wide
	st.Warnings = []string{"something only the agent knows"} // kept
	Annotate(&st, time.Now())
	if !ForVIP(&st, "10.20.1.1") {
		t.Fatal("ForVIP did not find 10.20.1.1")
	}
	if len(st.VIPs) != 1 || st.VIPs[0].VIP != "10.20.1.1" || len(st.Pools) != 1 || st.Pools[0].Name != "internal" {
		t.Errorf("narrowed to VIPs %+v pools %+v", st.VIPs, st.Pools)
	}
	if diff := cmp.Diff([]string{KindNoReadyBackend, KindGenericXDP}, kinds(st.Findings)); diff != "" {
		t.Errorf("findings kept (-want +got):\n%s", diff)
	}
	if len(st.Warnings) != 3 || st.Warnings[0] != "something only the agent knows" {
		t.Errorf("warnings kept: %q", st.Warnings)
	}
	if ForVIP(&st, "10.20.1.99") {
		t.Error("ForVIP found an unknown VIP")
	}
}

func TestRenderVIP(t *testing.T) {
	st := healthy()
	st.VIPs[0].Ports[0].Backends = append(st.VIPs[0].Ports[0].Backends,
		Backend{Addr: "10.241.2.3:8080", Node: "node2", Ready: true, Terminating: true},
		Backend{Addr: "10.241.2.4:8080", Node: "node2"})
	st.VIPs[0].Ports[0].Counters = Counters{Packets: 10, Bytes: 640, NewFlows: 2, Drops: 1}
	st.Members[1].Healthy = false
	Annotate(&st, time.Now())
	ForVIP(&st, "10.20.1.1")
	var b bytes.Buffer
	RenderVIP(&b, &st)
	out := b.String()
	for _, want := range []string{
		"VIP:       10.20.1.1",
		"pool:      internal (10.20.1.1-10.20.1.4, 1/4 used)",
		"owner:     node1 (this node)",
		"port 80/TCP  service default/web",
		"10 packets, 640 bytes, 2 new flows, 1 drops",
		"10.241.1.2:8080  node1  ready        local",
		"10.241.2.3:8080  node2  terminating  remote",
		"10.241.2.4:8080  node2  not ready    remote",
		"membership: node1 (this node) healthy, node2 DOWN",
		"warning: membership: peer node2 (10.20.0.52) is down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRender(t *testing.T) {
	st := healthy()
	st.Reconcile = ReconcileInfo{Runs: 7, SyncErrors: 1}
	st.VIPs[0].Service = "default/web"
	st.Members[1].Healthy = false
	st.Errors = []string{"datapath sync: boom"}
	Annotate(&st, time.Now())
	var b bytes.Buffer
	Render(&b, &st)
	out := b.String()
	for _, want := range []string{
		"internal  10.20.1.1-10.20.1.4",
		"10.20.1.1    default/web  internal  node1 (this node)  80/TCP",
		"datapath: attached eth0 (tcx)",
		"reconcile: 7 passes, 1 with sync errors",
		"membership: node1 (this node) healthy, node2 DOWN",
		"error: datapath sync: boom",
		"warning: membership: peer node2 (10.20.0.52) is down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
