// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// labelsEqual is a model.Selector matching labels that hold all of its
// pairs (a matchLabels selector).
type labelsEqual map[string]string

func (s labelsEqual) Matches(l map[string]string) bool {
	for k, v := range s {
		if l[k] != v {
			return false
		}
	}
	return true
}
func (s labelsEqual) String() string { return "" }

func announcedState() *model.State {
	r := func(a, b string) model.AddrRange {
		return model.AddrRange{First: netip.MustParseAddr(a), Last: netip.MustParseAddr(b)}
	}
	return &model.State{
		Pools: []model.Pool{
			{Name: "external", Ranges: []model.AddrRange{r("10.20.1.128", "10.20.1.254")}},
			{Name: "internal", Ranges: []model.AddrRange{r("10.20.1.1", "10.20.1.127")}},
		},
		Nodes: []model.Node{
			{Name: "cp1", Labels: map[string]string{"role": "edge"}, Excluded: true},
			{Name: "edge1", Labels: map[string]string{"role": "edge"}},
			{Name: "edge2", Labels: map[string]string{"role": "edge"}},
			{Name: "worker1", Labels: map[string]string{"role": "worker"}},
		},
		Announcements: []model.Announcement{
			// The external pool only from edge nodes, on a dedicated
			// interface; the internal one everywhere on the default.
			{Name: "external", Pools: []string{"external"}, Interfaces: []string{"ext0"}, NodeSelector: labelsEqual{"role": "edge"}},
			{Name: "internal", Pools: []string{"internal"}},
		},
		Services: []model.Service{
			{Key: model.ServiceKey{Namespace: "ns", Name: "ext"}, VIPs: []netip.Addr{netip.MustParseAddr("10.20.1.128")}},
			{Key: model.ServiceKey{Namespace: "ns", Name: "int"}, VIPs: []netip.Addr{netip.MustParseAddr("10.20.1.1")}},
			// Outside every pool and every Announcement's pools.
			{Key: model.ServiceKey{Namespace: "ns", Name: "stray"}, VIPs: []netip.Addr{netip.MustParseAddr("10.20.2.1")}},
		},
	}
}

func TestEligibleByAnnouncement(t *testing.T) {
	st := announcedState()
	for _, tt := range []struct {
		vip  string
		want []string
	}{
		// cp1 matches the selector but is excluded from load balancers.
		{"10.20.1.128", []string{"edge1", "edge2"}},
		{"10.20.1.1", []string{"edge1", "edge2", "worker1"}},
		{"10.20.2.1", nil},
	} {
		vip := netip.MustParseAddr(tt.vip)
		if diff := cmp.Diff(tt.want, Eligible(st, &st.Services[0], vip, nil)); diff != "" {
			t.Errorf("Eligible(%s) (-want +got):\n%s", vip, diff)
		}
	}
	// No Announcement at all: every pool, every node that is not
	// excluded.
	st.Announcements = nil
	if diff := cmp.Diff([]string{"edge1", "edge2", "worker1"}, Eligible(st, &st.Services[0], netip.MustParseAddr("10.20.2.1"), nil)); diff != "" {
		t.Errorf("Eligible without Announcements (-want +got):\n%s", diff)
	}
}

func TestWhyNotAnnounced(t *testing.T) {
	st := announcedState()
	e := Elect(st, nil)
	ext := &st.Services[0]
	vip := ext.VIPs[0]
	if got := Why(e, "worker1", st, ext, vip, nil); got != ReasonNotAnnounced {
		t.Errorf("worker1 for %s: %q, want %q", vip, got, ReasonNotAnnounced)
	}
	if got := Why(e, "cp1", st, ext, vip, nil); got != ReasonExcluded {
		t.Errorf("cp1 for %s: %q, want %q", vip, got, ReasonExcluded)
	}
	owner, _ := e.Owner(vip)
	if owner != "edge1" && owner != "edge2" {
		t.Errorf("owner of %s is %q, want an edge node", vip, owner)
	}
	if _, ok := e.Owner(netip.MustParseAddr("10.20.2.1")); ok {
		t.Error("a VIP no Announcement covers has an owner")
	}
}

func TestInterfacesAndPlan(t *testing.T) {
	st := announcedState()
	ext, in := netip.MustParseAddr("10.20.1.128"), netip.MustParseAddr("10.20.1.1")
	for _, tt := range []struct {
		self string
		vip  netip.Addr
		want []string
	}{
		{"edge1", ext, []string{"ext0"}},
		{"edge1", in, []string{"eth0"}},
		{"worker1", ext, nil},
		{"ghost", in, nil},
	} {
		if diff := cmp.Diff(tt.want, Interfaces(st, tt.self, tt.vip, "eth0")); diff != "" {
			t.Errorf("Interfaces(%s, %s) (-want +got):\n%s", tt.self, tt.vip, diff)
		}
	}
	// A second Announcement of the external pool, without interfaces,
	// adds the default interface.
	st.Announcements = append(st.Announcements, model.Announcement{Name: "ext-default", Pools: []string{"external"}})
	if diff := cmp.Diff([]string{"eth0", "ext0"}, Interfaces(st, "edge2", ext, "eth0")); diff != "" {
		t.Errorf("Interfaces with two Announcements (-want +got):\n%s", diff)
	}

	// Plan: the owner of each VIP answers on its interfaces; an interface
	// that lost its last VIP is listed empty so that it gets closed.
	st = announcedState()
	st.Nodes = st.Nodes[:2] // cp1 (excluded) and edge1: edge1 owns both
	e := Elect(st, nil)
	got := Plan(st, e, "edge1", "eth0", []string{"eth0", "old0"})
	want := map[string][]netip.Addr{"eth0": {in}, "ext0": {ext}, "old0": nil}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Plan (-want +got):\n%s", diff)
	}
	if got := Plan(st, e, "cp1", "eth0", nil); len(got) != 0 {
		t.Errorf("Plan of an excluded node = %v, want nothing", got)
	}
}
