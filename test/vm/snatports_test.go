// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// udpSNATLeakBug tolerates one known datapath bug in
// TestPrivilegedLabUDPFlowsToOneBackend: a UDP flow never closes, and
// lb_snat_stale frees a SNAT port only when its flow's connection-table
// entry is gone, moved or closing, so every UDP flow keeps its node port
// (61000-65535: 4 536 per backend) until LRU eviction, and once a remote
// backend's ports are used up its new UDP flows are dropped
// (drop_no_snat_port). With it true, failures that drop_no_snat_port
// accounts for are logged instead of failing. Fixed: an idle flow's port
// is reclaimed (lbd --udp-idle-timeout, default 30 s like netfilter's
// unreplied UDP timeout; this test sets 1 s).
const udpSNATLeakBug = false

// TestPrivilegedLabUDPFlowsToOneBackend sends more short UDP flows (a new
// source port each, one query and one answer, as a DNS client does) to a
// service with one backend on another node than the owner than there are
// SNAT ports: every one of them must be answered.
func TestPrivilegedLabUDPFlowsToOneBackend(t *testing.T) {
	// The shortest idle timeout, so that the ports of the burst's
	// finished flows come back within the burst: the default, 30 s, is
	// longer than the whole burst, and the burst opens up to ~2 000 flows
	// a second, so with 2 s nearly all 4 536 ports were busy at once.
	l := labWithLBD(t, Options{LBDArgs: []string{"--udp-idle-timeout", "1s"}})
	ctx := t.Context()
	client := l.Client()
	svc := ExtraService{Name: "udp-one", Endpoints: []*Pod{l.Nodes[0].Pods[0]}}
	v, owner := applyService(t, l, svc, svc.Endpoints)
	if owner == l.Nodes[0] {
		// The backend must be remote, so that every flow is SNATed.
		svc.Endpoints = []*Pod{l.Nodes[1].Pods[0]}
		v, owner = applyService(t, l, svc, svc.Endpoints)
	}
	before, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	const flows = 6000 // more than the 4 536 SNAT ports
	target := netip.AddrPortFrom(v.VIP, ServiceUDPPort)
	// Each lost answer costs the wait: stop after a few, which is
	// enough to tell.
	const maxLost = 5
	answered, failed := 0, 0
	firstFail := -1
	errStop := errors.New("enough lost answers")
	// A backend sustains SNAT ports / idle timeout new flows a second
	// (4 536 with the 1 s timeout above): unpaced, the lab opens about
	// 3 500 a second and the ports would be nearly all busy at once, so
	// flows start at a third of that rate at most. 6 000 flows still
	// take every port more than once.
	const rate = 1500
	start, n := time.Now(), 0
	_, err = client.Burst(ctx, flows, func(ctx context.Context) error {
		n++
		time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / rate)))
		if err := udpFlowShort(ctx, target); err != nil {
			if firstFail < 0 {
				firstFail = answered + failed
			}
			failed++
			if failed >= maxLost {
				return errStop
			}
		} else {
			answered++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	after, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	noPort := after.Reasons["drop_no_snat_port"] - before.Reasons["drop_no_snat_port"]
	t.Logf("UDP flows to %s (backend %s, owner %s): %d answered, %d unanswered (first at flow %d) in %s, drop_no_snat_port +%d, table %d entries",
		target, svc.Endpoints[0].Name, owner.Name, answered, failed, firstFail+1, time.Since(start).Round(time.Millisecond), noPort, after.Conntrack)
	switch {
	case failed == 0:
	case udpSNATLeakBug && noPort >= uint64(failed):
		t.Logf("known datapath bug: %d flows dropped for want of a SNAT port: UDP flows never free theirs", failed)
	default:
		t.Errorf("%d of %d UDP flows unanswered (drop_no_snat_port +%d)", failed, answered+failed, noPort)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
