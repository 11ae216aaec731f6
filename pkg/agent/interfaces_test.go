// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// hasLabels is a model.Selector matching labels that hold all of its own.
type hasLabels map[string]string

func (h hasLabels) Matches(l map[string]string) bool {
	for k, v := range h {
		if l[k] != v {
			return false
		}
	}
	return true
}

func (h hasLabels) String() string { return "hasLabels" }

func TestAttachInterfaces(t *testing.T) {
	nodes := []model.Node{
		{Name: "edge1", Labels: map[string]string{"role": "edge"}},
		{Name: "core1", Labels: map[string]string{"role": "core"}},
	}
	withAnn := func(anns ...model.Announcement) *model.State {
		return &model.State{Nodes: nodes, Announcements: anns}
	}
	edge := model.Announcement{Name: "edge", Pools: []string{"ext"}, Interfaces: []string{"ext0", "ext1"}, NodeSelector: hasLabels{"role": "edge"}}
	all := model.Announcement{Name: "all", Interfaces: []string{"mgmt0"}}
	def := model.Announcement{Name: "default"} // no Interfaces: --interface
	for _, tc := range []struct {
		name string
		st   *model.State
		self string
		want []string
	}{
		{"no announcements", withAnn(), "edge1", []string{"eth0"}},
		{"selected", withAnn(edge, def), "edge1", []string{"eth0", "ext0", "ext1"}},
		{"not selected", withAnn(edge, def), "core1", []string{"eth0"}},
		{"union, sorted, once", withAnn(edge, all, model.Announcement{Name: "dup", Interfaces: []string{"ext0", "eth0"}}), "edge1", []string{"eth0", "ext0", "ext1", "mgmt0"}},
		// --interface stays attached even when no Announcement names it:
		// it carries the node address, SNAT replies and membership.
		{"only other interfaces", withAnn(all), "core1", []string{"eth0", "mgmt0"}},
		{"node unknown", withAnn(all), "ghost", []string{"eth0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := attachInterfaces(tc.st, tc.self, "eth0")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("attachInterfaces (-want +got):\n%s", diff)
			}
		})
	}
}

// An interface the datapath is not attached to gets no VIPs to answer for:
// answering there would draw traffic nothing balances.
func TestHoldUnattached(t *testing.T) {
	vip := netip.MustParseAddr("10.20.16.100")
	a := &Agent{}
	a.ifaces.failed = map[string]string{"eth1": "attach datapath to eth1: no such interface"}
	plan := map[string][]netip.Addr{"eth0": {vip}, "eth1": {vip}, "eth2": nil}
	a.holdUnattached(plan)
	want := map[string][]netip.Addr{"eth0": {vip}, "eth1": nil, "eth2": nil}
	if diff := cmp.Diff(want, plan, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}
