// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// restartGossipTimeout is the peers' failure-detection timeout in the
// restart scenario: longer than an lbd restart takes, so the restart is
// not mistaken for the node's loss. With the default (400 ms, tuned for
// fast failover) the peers take the VIP over during the restart, and
// every established connection through it is reset, because the new
// owner has no connection-table entry and SNATs them with its own
// address: see TestPrivilegedLabRestartDefaultTimeout.
const restartGossipTimeout = "5s"

// TestPrivilegedLabRestartUnderLoad kills the VIP owner's lbd with SIGKILL
// while keep-alive connections and a stream of new connections flow
// through it, and starts it again: the datapath (pinned maps and links)
// keeps forwarding while no lbd runs, the restarted lbd adopts the
// connection table, no established connection is reset or moved, and no
// new connection fails.
func TestPrivilegedLabRestartUnderLoad(t *testing.T) {
	l := labWithLBD(t, Options{LBDArgs: []string{"--gossip-timeout", restartGossipTimeout}})
	r := restartUnderLoad(t, l)
	for _, s := range r.streams {
		if f := s.Failed(); len(f) > 0 {
			t.Errorf("connection %s (on %s) failed at +%s: %v", s.Local, s.FirstPod, f[0].Start.Sub(r.t0).Round(time.Millisecond), f[0].Err)
		}
	}
	if r.owner2 != r.owner {
		t.Errorf("owner changed from %s to %s across the restart", r.owner.Name, r.owner2.Name)
	}
}

// TestPrivilegedLabRestartDefaultTimeout is the same restart with the
// default failure detection: the peers see the owner's lbd as dead and
// take its VIP over before it is back, then hand it back. New
// connections must keep working and the connection table must survive;
// the established connections reset by the two takeovers are counted
// and logged, as the price of the default's fast failover.
func TestPrivilegedLabRestartDefaultTimeout(t *testing.T) {
	l := labWithLBD(t, Options{})
	r := restartUnderLoad(t, l)
	reset := 0
	for _, s := range r.streams {
		if len(s.Failed()) > 0 {
			reset++
		}
	}
	t.Logf("default gossip timeout: %d of %d established connections reset by the takeover during the restart", reset, len(r.streams))
	if r.owner2 != r.owner {
		t.Errorf("owner after the restart is %s, want %s back", r.owner2.Name, r.owner.Name)
	}
}

type restartResult struct {
	t0            time.Time
	owner, owner2 *Node
	streams       []Stream
}

// restartUnderLoad SIGKILLs and restarts the owner's lbd under load and
// checks what holds whatever the failure detection: new connections never
// fail, no connection changes pod, and the connection table outlives the
// process.
func restartUnderLoad(t *testing.T, l *Lab) restartResult {
	t.Helper()
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "restart"}
	v, owner := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	streams, err := client.StartStreams(ctx, target, 20, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer streams.Stop()
	conns := client.StartNewConns(ctx, target, 20*time.Millisecond, 2*time.Second)
	defer conns.Stop()
	time.Sleep(500 * time.Millisecond)

	if err := owner.LBD.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for done := false; !done; done, _ = owner.LBD.Exited() {
		time.Sleep(10 * time.Millisecond)
	}
	// With no lbd running, the pinned datapath still forwards.
	time.Sleep(300 * time.Millisecond)
	before, err := owner.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartNodeLBD(ctx, owner, true); err != nil {
		t.Fatal(err)
	}
	gap := time.Since(t0)
	_, owner2, err := l.WaitService(ctx, svc.Key(), l.Pods(), serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // traffic through the restarted lbd
	after, err := owner.ConntrackFlows()
	if err != nil {
		t.Fatal(err)
	}
	outcomes := conns.Stop()
	results := streams.Stop()

	inTable := func(fs []Flow, src netip.AddrPort) bool {
		for _, f := range fs {
			if f.Src == src && f.Dst == target {
				return true
			}
		}
		return false
	}
	requests := 0
	for _, s := range results {
		requests += len(s.Outcomes)
		for pod := range s.Pods() {
			if pod != s.FirstPod {
				t.Errorf("connection %s moved from %s to %s", s.Local, s.FirstPod, pod)
			}
		}
		if len(s.Failed()) > 0 {
			continue // reset: its entry may rightly be gone
		}
		if !inTable(before, s.Local) || !inTable(after, s.Local) {
			t.Errorf("connection %s: in the table while lbd was down %v, after the restart %v; want both", s.Local, inTable(before, s.Local), inTable(after, s.Local))
		}
	}
	failed, first := Failures(outcomes)
	if failed > 0 {
		t.Errorf("%d of %d new connections failed: %q", failed, len(outcomes), first)
	}
	t.Logf("lbd on %s down and back in %s; %d keep-alive requests on %d connections, %d new connections (%d failed); table %d entries while down, %d after",
		owner.Name, gap.Round(time.Millisecond), requests, len(results), len(outcomes), failed, len(before), len(after))
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
	return restartResult{t0: t0, owner: owner, owner2: owner2, streams: results}
}
