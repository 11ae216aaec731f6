// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"testing"
	"time"
)

// TestPrivilegedLabBackendRemovedMidStream keeps long-lived connections
// busy on every pod and takes one pod out of the EndpointSlice, first as
// terminating (serving, not ready), then removed altogether: its
// established connections keep being answered by it until the client
// closes them, no new connection goes to it, and no connection on another
// pod ever changes pod.
func TestPrivilegedLabBackendRemovedMidStream(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "drain"}
	v, owner := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	streams, err := client.StartStreams(ctx, target, 30, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer streams.Stop()
	perPod := map[string]int{}
	for _, s := range streams.Snapshot() {
		perPod[s.FirstPod]++
	}
	var gone *Pod
	for _, p := range l.Pods() {
		if gone == nil || perPod[p.Name] > perPod[gone.Name] {
			gone = p
		}
	}
	t.Logf("VIP %s (owner %s): 30 connections over %v; taking %s out", v.VIP, owner.Name, perPod, gone.Name)
	var rest []*Pod
	for _, p := range l.Pods() {
		if p != gone {
			rest = append(rest, p)
		}
	}

	checkNew := func(phase string) {
		t.Helper()
		for range 30 {
			a, err := client.Who(ctx, target, 0)
			if err != nil {
				t.Errorf("%s: new connection: %v", phase, err)
				continue
			}
			if a.Pod == gone.Name {
				t.Errorf("%s: a new connection went to %s", phase, gone.Name)
			}
		}
	}
	out := time.Now()
	for _, phase := range []struct {
		name        string
		terminating []*Pod
	}{
		{"terminating", []*Pod{gone}},
		{"removed", nil},
	} {
		svc.Endpoints, svc.Terminating = rest, phase.terminating
		applyService(t, l, svc, rest)
		checkNew(phase.name)
		time.Sleep(time.Second) // the streams keep going
	}

	// The client closes the connections on the gone pod; the others go on.
	closed := streams.CloseWhere(func(pod string) bool { return pod == gone.Name })
	time.Sleep(500 * time.Millisecond)
	answeredAfter := 0
	for _, s := range streams.Stop() {
		if f := s.Failed(); len(f) > 0 {
			t.Errorf("connection %s (on %s) failed: %v", s.Local, s.FirstPod, f[0].Err)
		}
		for pod, n := range s.Pods() {
			if pod != s.FirstPod {
				t.Errorf("connection %s moved from %s to %s (%d answers)", s.Local, s.FirstPod, pod, n)
			}
		}
		if s.FirstPod == gone.Name {
			for _, o := range s.Outcomes {
				if o.Err == nil && o.Start.After(out) {
					answeredAfter++
				}
			}
		}
	}
	if answeredAfter == 0 {
		t.Errorf("the %d connections on %s got no answer after it left the endpoints", closed, gone.Name)
	}
	t.Logf("%d connections on %s answered %d requests after it left; closed by the client", closed, gone.Name, answeredAfter)
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
