// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// ownerAmong waits until the lbds of nodes agree that want owns vip and
// a fresh ARP request from the client is answered by want's MAC alone.
func ownerAmong(ctx context.Context, l *Lab, nodes []*Node, vip netip.Addr, want *Node, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		agreed := true
		for _, n := range nodes {
			st, err := l.StatusAnyHealth(ctx, n)
			if err != nil {
				agreed, last = false, err.Error()
				break
			}
			if v := vipStatus(st, vip); v.Owner != want.Name {
				agreed, last = false, fmt.Sprintf("%s says owner %q", n.Name, v.Owner)
				break
			}
		}
		if agreed {
			macs, err := l.Client().ARPResponders(ctx, vip, 200*time.Millisecond)
			if err == nil && len(macs) == 1 && macs[0].String() == want.MAC.String() {
				return nil
			}
			last = fmt.Sprintf("ARP answered by %v (%v)", macs, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to own %s: %w (last: %s)", want.Name, vip, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func vipStatus(st *Status, vip netip.Addr) VIPStatus {
	for _, v := range st.VIPs {
		if v.VIP == vip {
			return v
		}
	}
	return VIPStatus{}
}

// TestPrivilegedLabFailoverZone spreads five nodes over three zones and
// cuts a whole zone off the VLAN (both of its nodes lose their link)
// while a client sends HTTP and UDP to both VIPs. The two VIPs were
// owned in different zones, so losing zone-a takes only the internal
// one: it moves to a node of another zone, and the external VIP, owned
// in zone-b, is not touched. The cut-off nodes hear only each other (one
// of four peers) and fence themselves; the survivors hear two of four
// and carry on.
func TestPrivilegedLabFailoverZone(t *testing.T) {
	testutil.Privileged(t)
	l := announceLab(t, Options{Nodes: 5, PodsPerNode: 1})
	ctx := t.Context()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	internal, external := vips[0].VIP, vips[1].VIP
	zones := map[string]string{"node1": "zone-a", "node3": "zone-a", "node2": "zone-b", "node4": "zone-b", "node5": "zone-c"}
	d := l.LabDocs()
	for _, n := range d.Nodes {
		n.Labels[ZoneLabel] = zones[n.Name]
	}
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	// Rendezvous preferences (fixed by the names and addresses): the
	// internal VIP prefers node3 (zone-a), the external one node4
	// (zone-b).
	n := l.Node
	if err := ownerAmong(ctx, l, l.Nodes, internal, n("node3"), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ownerAmong(ctx, l, l.Nodes, external, n("node4"), 20*time.Second); err != nil {
		t.Fatal(err)
	}

	probes := map[netip.Addr]*VIPProbes{}
	for _, v := range []netip.Addr{internal, external} {
		probes[v] = l.Client().StartVIPProbes(ctx, v)
	}
	time.Sleep(300 * time.Millisecond)
	lost := []*Node{n("node1"), n("node3")}
	survivors := []*Node{n("node2"), n("node4"), n("node5")}
	for _, ln := range lost {
		if err := ipIn(ctx, l.Switch, "link", "set", switchPort(ln), "down"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("zone-a (node1, node3) cut off")
	// The internal VIP goes to its best candidate outside zone-a.
	if err := ownerAmong(ctx, l, survivors, internal, n("node5"), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ownerAmong(ctx, l, survivors, external, n("node4"), 5*time.Second); err != nil {
		t.Error(err)
	}
	time.Sleep(500 * time.Millisecond)
	hi, ui := probes[internal].Stop()
	he, ue := probes[external].Stop()
	t.Logf("internal %s (moved node3 -> node5): HTTP %s; UDP %s", internal, hi, ui)
	t.Logf("external %s (stayed on node4): HTTP %s; UDP %s", external, he, ue)
	// The external VIP never moved: its traffic went on. Flows to
	// backends in zone-a fail until the owner's datapath stops
	// choosing them (they stay in the EndpointSlice: no kubelet
	// here marks them unready), so count only that the VIP kept
	// answering.
	if he.OK == 0 || ue.OK == 0 {
		t.Errorf("external VIP stopped answering when zone-a was lost: HTTP %s; UDP %s", he, ue)
	}
	for _, v := range []netip.Addr{internal, external} {
		ok := 0
		for range 20 {
			if _, err := l.Client().UDPQuery(ctx, netip.AddrPortFrom(v, ServiceUDPPort)); err == nil {
				ok++
			}
		}
		if ok == 0 {
			t.Errorf("%s answers no UDP query after zone-a was lost", v)
		}
	}
	// The cut-off nodes fenced themselves.
	for _, ln := range lost {
		st, err := l.StatusAnyHealth(ctx, ln)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range st.VIPs {
			if v.Owner == ln.Name {
				t.Errorf("cut-off %s still names itself owner of %s", ln.Name, v.VIP)
			}
		}
	}
	// Zone-a comes back: the internal VIP returns to node3.
	for _, ln := range lost {
		if err := ipIn(ctx, l.Switch, "link", "set", switchPort(ln), "up"); err != nil {
			t.Fatal(err)
		}
	}
	if err := ownerAmong(ctx, l, l.Nodes, internal, n("node3"), 20*time.Second); err != nil {
		t.Error(err)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
