// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/announce"
	"github.com/lbd-project/lbd/pkg/model"
)

type recordedEvent struct {
	Svc    string
	VIP    string
	Owned  bool
	Reason string
}

type eventLog []recordedEvent

func (l *eventLog) OwnershipChanged(svc model.ServiceKey, vip netip.Addr, owned bool, reason string) {
	*l = append(*l, recordedEvent{svc.String(), vip.String(), owned, reason})
}

// observeElection counts owner changes from the second election on, and
// reports this node's takeovers and releases with their reasons.
func TestObserveElection(t *testing.T) {
	var events eventLog
	ag, err := New(Config{NodeName: "node1", Interface: "eth0", Membership: MembershipConfig{Disabled: true}, Events: &events}, fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	st := &model.State{Nodes: []model.Node{{Name: "node1"}, {Name: "node2"}}}
	for i := range 8 {
		st.Services = append(st.Services, model.Service{
			Key:  model.ServiceKey{Namespace: "ns", Name: fmt.Sprintf("s%d", i)},
			VIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 1, byte(i + 1)})},
		})
	}
	all := announce.Elect(st, nil)
	mine, theirs := all.Owned("node1"), all.Owned("node2")
	if len(mine) == 0 || len(theirs) == 0 {
		t.Fatalf("node1 owns %v, node2 %v: pick VIPs that split", mine, theirs)
	}
	svcOf := func(v netip.Addr) string { return fmt.Sprintf("ns/s%d", v.As4()[3]-1) }

	// Start: the baseline, no change counted; node1 takes its VIPs.
	ag.observeElection(st, all)
	var want eventLog
	for _, v := range mine {
		want = append(want, recordedEvent{svcOf(v), v.String(), true, announce.ReasonOwner})
	}
	check := func(step string, changes uint64) {
		t.Helper()
		if diff := cmp.Diff(want, events); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", step, diff)
		}
		if got := ag.OwnerChanges(); got != changes {
			t.Errorf("%s: owner changes %d, want %d", step, got, changes)
		}
		if got := ag.Snapshot().Announce.OwnerChanges; got != changes {
			t.Errorf("%s: status owner changes %d, want %d", step, got, changes)
		}
		events, want = nil, nil
	}
	check("start", 0)

	// node2 dies: its VIPs move to node1.
	noNode2 := func(n string) bool { return n != "node2" }
	ag.observeElection(st, announce.Elect(st, noNode2))
	for _, v := range theirs {
		want = append(want, recordedEvent{svcOf(v), v.String(), true, announce.ReasonOwner})
	}
	check("node2 down", uint64(len(theirs)))

	// node2 is back: they move back, node1 releases them to it.
	ag.observeElection(st, all)
	for _, v := range theirs {
		want = append(want, recordedEvent{svcOf(v), v.String(), false, announce.ReasonOwnedByPrefix + "node2"})
	}
	check("node2 back", uint64(2*len(theirs)))

	// The same election again changes nothing.
	ag.observeElection(st, all)
	check("no change", uint64(2*len(theirs)))
}
