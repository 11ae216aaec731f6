// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// rssLimit bounds how much an lbd may grow during a fault scenario.
const rssLimit = 32 << 20

// TestPrivilegedLabEndpointChurn rewrites a service's EndpointSlice 1 000
// times (pods going ready, terminating, away and back; at least one always
// ready) while new connections and keep-alive connections flow: no request
// fails, no established connection changes pod, lbd's memory stays
// bounded, and after the churn only the final ready pods get new flows.
func TestPrivilegedLabEndpointChurn(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "churn"}
	v, owner := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	streams, err := client.StartStreams(ctx, target, 12, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer streams.Stop()
	conns := client.StartNewConns(ctx, target, 10*time.Millisecond, 3*time.Second)
	defer conns.Stop()
	rss0 := map[string]uint64{}
	for _, n := range l.Nodes {
		if rss0[n.Name], err = n.LBD.RSS(); err != nil {
			t.Fatal(err)
		}
	}

	const updates = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	pods := l.Pods()
	start := time.Now()
	for i := range updates {
		var ready, term []*Pod
		for _, p := range pods {
			switch rng.IntN(3) {
			case 0:
				ready = append(ready, p)
			case 1:
				term = append(term, p)
			}
		}
		if len(ready) == 0 {
			ready = append(ready, pods[i%len(pods)])
			term = slices.DeleteFunc(term, func(p *Pod) bool { return p == ready[0] })
		}
		svc.Endpoints, svc.Terminating = ready, term
		if err := l.ApplyServices(svc); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		if i%100 == 99 {
			if err := l.CheckLBD(); err != nil {
				t.Fatal(err)
			}
		}
	}
	churn := time.Since(start)
	final := []*Pod{pods[0], pods[3]}
	svc.Endpoints, svc.Terminating = final, nil
	applyService(t, l, svc, final)
	outcomes := conns.Stop()
	results := streams.Stop()
	failed, first := Failures(outcomes)
	if failed > 0 {
		t.Errorf("%d of %d new connections failed during the churn: %q", failed, len(outcomes), first)
	}
	for _, s := range results {
		if f := s.Failed(); len(f) > 0 {
			t.Errorf("connection %s (on %s) failed: %v", s.Local, s.FirstPod, f[0].Err)
		}
		for pod := range s.Pods() {
			if pod != s.FirstPod {
				t.Errorf("connection %s moved from %s to %s", s.Local, s.FirstPod, pod)
			}
		}
	}
	tally := client.HTTPLoad(ctx, target, 60)
	if want := []string{final[0].Name, final[1].Name}; tally.OK != 60 || !cmp.Equal(tally.Pods(), want) {
		t.Errorf("after the churn: %s; want 60/60 from %v", tally, want)
	}
	for _, n := range l.Nodes {
		rss, err := n.LBD.RSS()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lbd on %s: RSS %.1f MiB before, %.1f MiB after %d updates", n.Name, mib(rss0[n.Name]), mib(rss), updates)
		if rss > rss0[n.Name]+rssLimit {
			t.Errorf("lbd on %s grew from %.1f to %.1f MiB", n.Name, mib(rss0[n.Name]), mib(rss))
		}
	}
	t.Logf("%d updates in %s (owner %s); %d new connections, %d keep-alive connections, %d failed", updates, churn.Round(time.Millisecond), owner.Name, len(outcomes), len(results), failed)
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// revnatEvictionBug tolerates one known datapath bug in
// TestPrivilegedLabConntrackFull: when the tables are full, the LRU can
// evict a live flow's lb_revnat entry while its lb_conntrack entry stays,
// and since a connection-table hit never re-creates the reverse entry, the
// replies of that established connection are no longer translated (the
// connection hangs). With it true, only that exact shape of failure is
// logged instead of failing. Fixed: lb_revnat is twice lb_conntrack's size
// and a connection-table hit re-creates a missing reverse entry
// (lb_rev_ensure, counted as revnat_evicted).
const revnatEvictionBug = false

// TestPrivilegedLabConntrackFull runs lbd with a 512-flow connection table
// and opens four times as many UDP flows plus TCP connections: the LRU
// evicts old flows, every query is answered, the established keep-alive
// connections survive, lbd keeps running and status shows the table full.
func TestPrivilegedLabConntrackFull(t *testing.T) {
	const size = 512
	l := labWithLBD(t, Options{LBDArgs: []string{"--conntrack-size", "512"}})
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "ctfull"}
	v, owner := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	streams, err := client.StartStreams(ctx, target, 8, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer streams.Stop()

	udp := netip.AddrPortFrom(v.VIP, ServiceUDPPort)
	const flows = 4 * size
	// A lost answer is checked against the tables at once, before the
	// LRU moves on: the known bug leaves the flow in lb_conntrack without
	// its lb_revnat entry (a client port reused while its old flow is
	// still in the table hits exactly that).
	answered, lostKnown := 0, 0
	errStop := errors.New("too many lost answers")
	_, err = client.Burst(ctx, flows, func(ctx context.Context) error {
		local, err := udpFlow(ctx, udp, time.Second)
		if err == nil {
			answered++
			return nil
		}
		why := owner.ExplainFlow(local, udp, 17)
		if revnatEvictionBug && strings.Contains(why, ", reverse entries []") {
			lostKnown++
			t.Logf("known datapath bug: UDP flow %s lost: %s", local, why)
			if lostKnown < 5 {
				return nil
			}
			return errStop
		}
		return fmt.Errorf("UDP flow %d (%s): %w; %s", answered+lostKnown+1, local, err, why)
	})
	if err != nil && !errors.Is(err, errStop) {
		t.Error(err)
	}
	tcp := client.HTTPLoad(ctx, target, 200)
	if tcp.OK != tcp.Sent {
		t.Errorf("TCP with a full table: %s", tcp)
	}
	results := streams.Stop()
	ct, err := owner.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := owner.RevnatClients()
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, s := range results {
		f := s.Failed()
		if len(f) == 0 {
			continue
		}
		inCT := slices.ContainsFunc(ct, func(f Flow) bool { return f.Src == s.Local })
		inRev := slices.Contains(rev, s.Local)
		msg := fmt.Sprintf("keep-alive connection %s (on %s) failed: %v (connection-table entry %v, reverse entry %v)", s.Local, s.FirstPod, f[0].Err, inCT, inRev)
		if revnatEvictionBug && inCT && !inRev {
			lost++
			t.Log("known datapath bug: " + msg)
			continue
		}
		t.Error(msg)
	}
	if lost > 0 {
		t.Logf("%d of %d established connections black-holed: lb_revnat (LRU, same size as lb_conntrack) evicted their reverse entry while lb_conntrack kept the flow, and a connection-table hit never re-creates it", lost, len(results))
	}
	st, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := st.Port(svc.Key(), ServiceUDPPort, "UDP")
	t.Logf("%d UDP flows answered, %d TCP; table %d/%d entries (%.0f%% full), %d new UDP flows counted, so at least %d evicted; %d evicted reverse entries re-created (revnat_evicted)",
		answered, tcp.OK, st.Conntrack, size, 100*float64(st.Conntrack)/size, p.Counters.NewFlows, int(p.Counters.NewFlows)-size, st.Reasons["revnat_evicted"])
	if st.Conntrack > size || st.Conntrack < size/2 {
		t.Errorf("status shows %d connection-table entries, want a full table (%d..%d)", st.Conntrack, size/2, size)
	}
	// A few flows reuse a source port of an earlier one that is still in
	// the table: those are hits, not new flows.
	if p.Counters.NewFlows < uint64(answered)*9/10 {
		t.Errorf("%d new UDP flows counted, want about %d", p.Counters.NewFlows, answered)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// TestPrivilegedLabRestartAll stops every lbd at once and starts them all
// again, by SIGKILL and by SIGTERM: no VIP changes address, each changes
// owner at most once (seen by the client's ARP, probed all along), never
// two nodes answer for one VIP, and traffic flows afterwards.
func TestPrivilegedLabRestartAll(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	before, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			watch := l.WatchARP(ctx, client, []netip.Addr{before[0].VIP, before[1].VIP}, 100*time.Millisecond)
			time.Sleep(300 * time.Millisecond)
			if err := l.KillAllLBD(sig); err != nil {
				t.Fatal(err)
			}
			if err := l.StartLBD(ctx); err != nil {
				t.Fatal(err)
			}
			after, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range before {
				if _, err := l.WaitOwner(ctx, v.VIP, nil, 10*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(500 * time.Millisecond)
			seen := watch.Stop()
			for i, v := range before {
				if after[i].VIP != v.VIP {
					t.Errorf("%s changed address %s -> %s", v.Service, v.VIP, after[i].VIP)
				}
				owners := seen[v.VIP]
				if changes := owners.Changes(); changes > 1 {
					t.Errorf("VIP %s changed owner %d times: %v", v.VIP, changes, owners.Sequence())
				}
				if owners.Conflicts > 0 {
					t.Errorf("VIP %s answered by two nodes in %d probes", v.VIP, owners.Conflicts)
				}
				t.Logf("VIP %s: owners over time %v (%d probes, %d unanswered)", v.VIP, owners.Sequence(), owners.Probes, owners.Unanswered)
				if tally := client.HTTPLoad(ctx, netip.AddrPortFrom(v.VIP, ServiceHTTPPort), 20); tally.OK != 20 {
					t.Errorf("HTTP to %s after the restart: %s", v.VIP, tally)
				}
			}
		})
	}
}

// TestPrivilegedLabNodeRemoved deletes the namespace of the node owning a
// VIP, as a machine that vanishes: its VIPs move to the other nodes, which
// keep serving; once the node and its endpoints are gone from the
// manifest too, no request fails and no VIP changes address.
func TestPrivilegedLabNodeRemoved(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "noderm"}
	v, victim := applyService(t, l, svc, l.Pods())
	before, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	conns := client.StartNewConns(ctx, target, 20*time.Millisecond, time.Second)
	defer conns.Stop()
	time.Sleep(300 * time.Millisecond)

	t0 := time.Now()
	if err := l.RemoveNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	newOwner, err := l.WaitOwner(ctx, v.VIP, victim, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	moved := time.Since(t0)
	// The API server catches up: the node and its endpoints go.
	_, owner2 := applyService(t, l, svc, l.Pods())
	converged := time.Now()
	time.Sleep(2 * time.Second)
	outcomes := conns.Stop()
	var window, afterFails, afterN int
	for _, o := range outcomes {
		switch {
		case o.Start.Before(converged):
			if o.Err != nil {
				window++
			}
		default:
			afterN++
			if o.Err != nil {
				afterFails++
			}
		}
	}
	t.Logf("%s removed: VIP %s moved to %s in %s; %d requests failed before the manifest caught up, %d/%d after",
		victim.Name, v.VIP, newOwner.Name, moved.Round(time.Millisecond), window, afterFails, afterN)
	if owner2 == victim || newOwner == victim {
		t.Errorf("VIP still owned by the removed %s", victim.Name)
	}
	if afterFails > 0 || afterN == 0 {
		t.Errorf("%d of %d requests failed after the removal was known", afterFails, afterN)
	}
	after, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range before {
		if after[i].VIP != b.VIP {
			t.Errorf("%s changed address %s -> %s", b.Service, b.VIP, after[i].VIP)
		}
		if after[i].Owner == victim.Name {
			t.Errorf("%s still owned by the removed %s", b.Service, victim.Name)
		}
		tally := client.HTTPLoad(ctx, netip.AddrPortFrom(after[i].VIP, ServiceHTTPPort), 30)
		if tally.OK != 30 {
			t.Errorf("HTTP to %s: %s", after[i].VIP, tally)
		}
		for pod := range tally.ByPod {
			if p := l.podNamed(pod); p == nil {
				t.Errorf("answer from %s, not a pod of the remaining nodes", pod)
			}
		}
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
