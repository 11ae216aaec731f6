// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/config"
)

// waitDP polls node n's datapath status (whatever its health) until ok
// accepts it.
func waitDP(ctx context.Context, t *testing.T, l *Lab, n *Node, what string, ok func(*DPStatus, *Status) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		ds, err := l.DatapathStatus(ctx, n)
		var st *Status
		if err == nil {
			st, err = l.StatusAnyHealth(ctx, n)
		}
		if err == nil && ok(ds, st) {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("attached %v, warnings %q", ds.Attached, st.Warnings)
		}
		if err := l.CheckLBD(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status never %s (last: %s)", n.Name, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func warnsAbout(st *Status, iface string) bool {
	return slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, "interface "+iface) })
}

// tcxIngressProgs returns the programs on iface's tcx ingress in node n.
func tcxIngressProgs(t *testing.T, n *Node, iface string) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := n.Do(func() error {
		ln, err := netlink.LinkByName(iface)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", iface, n.Name, err)
		}
		r, err := link.QueryPrograms(link.QueryOptions{Target: ln.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return fmt.Errorf("query tcx ingress of %s in %s: %w", iface, n.Name, err)
		}
		for _, p := range r.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func pinnedLinkID(t *testing.T, pin string) link.ID {
	t.Helper()
	pl, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatalf("load pinned link: %v", err)
	}
	defer pl.Close()
	info, err := pl.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

// TestPrivilegedLabSecondLink announces a pool on node1's second
// interface, eth1, which another client sits behind: VIP traffic arriving
// there must be load-balanced too, so lbd attaches its datapath to every
// interface it announces on. The L2Announcement comes before the
// interface exists (lbd warns and keeps running), then eth1 appears and
// is attached within seconds; HTTP and UDP through the VIP reach the pods
// of both nodes (the remote one SNATed, answering via eth0 and back out
// eth1); a restart reuses the pinned eth1 links; and removing the
// announcement detaches lbd from eth1.
func TestPrivilegedLabSecondLink(t *testing.T) {
	testutil.Privileged(t)
	l := announceLab(t, Options{Nodes: 2, PodsPerNode: 1})
	ctx := t.Context()
	node1 := l.Nodes[0]

	d := l.LabDocs()
	const poolSecond, svcSecond = "second", "web-second"
	d.Pools = append(d.Pools, pool(poolSecond, SecondRange, &metav1.LabelSelector{
		MatchLabels: map[string]string{LBTypeLabel: poolSecond},
	}, 20))
	svc := service(svcSecond, map[string]string{LBTypeLabel: poolSecond})
	svc.Annotations = map[string]string{config.AnnotationAddressPool: poolSecond}
	d.Services = append(d.Services, svc)
	d.Slices = append(d.Slices, l.endpointSlice(svcSecond))
	d.Announce("vlan", []string{PoolInternal, PoolExternal}, nil, nil)
	d.Announce("second", []string{poolSecond}, []string{SecondLinkIface}, &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/hostname": node1.Name},
	})
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	// eth1 does not exist yet: a warning, lbd keeps running, eth0 stays.
	waitDP(ctx, t, l, node1, "warned about the missing eth1", func(ds *DPStatus, st *Status) bool {
		return warnsAbout(st, SecondLinkIface) && ds.Attached["eth0"] != "" && ds.Attached[SecondLinkIface] == ""
	})

	appeared := time.Now()
	client, err := l.AddSecondLink(ctx, node1)
	if err != nil {
		t.Fatal(err)
	}
	waitDP(ctx, t, l, node1, "attached eth1", func(ds *DPStatus, st *Status) bool {
		return ds.Attached[SecondLinkIface] == "tcx" && !warnsAbout(st, SecondLinkIface)
	})
	t.Logf("eth1 attached %s after it appeared", time.Since(appeared).Round(time.Millisecond))
	ds, err := l.DatapathStatus(ctx, node1)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := ds.VIPFor("default/" + svcSecond)
	if !ok || !SecondNet.Contains(v.VIP) || v.Owner != node1.Name {
		t.Fatalf("%s's VIP %+v, want one in %s owned by %s", svcSecond, v.VIPStatus, SecondNet, node1.Name)
	}
	vip := v.VIP
	wantTraffic := func(when string) {
		t.Helper()
		tally := client.HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 40)
		if tally.OK != tally.Sent || len(tally.Pods()) != 2 {
			t.Errorf("%s: HTTP to %s from %s: %s; want every request answered by both nodes' pods", when, vip, client.Name, tally)
		}
		for i := range 5 {
			if _, err := client.UDPQuery(ctx, netip.AddrPortFrom(vip, ServiceUDPPort)); err != nil {
				t.Errorf("%s: UDP query %d to %s: %v", when, i, vip, err)
			}
		}
	}
	wantTraffic("eth1 attached")
	// The remote pod sees node1's address (Cluster SNAT), the local one
	// the client's.
	seen := map[string]bool{}
	for range 20 {
		ip, err := client.HTTPGet(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), "/clientip")
		if err != nil {
			t.Fatal(err)
		}
		seen[ip] = true
	}
	if !seen[node1.IP.String()] || !seen[client.IP.String()] {
		t.Errorf("pods saw clients %v, want node1's %s (SNAT to node2's pod) and the client's %s (node1's pod)", seen, node1.IP, client.IP)
	}

	// Restart: the pinned eth1 links are reused, not recreated.
	pin := node1.LinkPin(SecondLinkIface, "tcx-ingress")
	before := pinnedLinkID(t, pin)
	if err := l.StopLBD(node1); err != nil {
		t.Fatal(err)
	}
	if err := l.StartNodeLBD(ctx, node1, true); err != nil {
		t.Fatal(err)
	}
	waitDP(ctx, t, l, node1, "re-attached eth1 after the restart", func(ds *DPStatus, st *Status) bool {
		return ds.Attached[SecondLinkIface] == "tcx"
	})
	if after := pinnedLinkID(t, pin); after != before {
		t.Errorf("eth1 ingress link after restart = %d, want the pinned %d reused", after, before)
	}
	if got := tcxIngressProgs(t, node1, SecondLinkIface); len(got) != 1 {
		t.Errorf("eth1 tcx ingress after restart = %v, want lbd's program once", got)
	}
	wantTraffic("after restart")

	// The announcement goes: lbd detaches from eth1, and VIP traffic
	// arriving there is no longer balanced.
	d.Announcements = d.Announcements[:1]
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	waitDP(ctx, t, l, node1, "detached eth1", func(ds *DPStatus, st *Status) bool {
		return ds.Attached[SecondLinkIface] == "" && ds.Attached["eth0"] != ""
	})
	if got := tcxIngressProgs(t, node1, SecondLinkIface); len(got) != 0 {
		t.Errorf("eth1 tcx ingress after the announcement went = %v, want none", got)
	}
	for _, h := range []string{"tcx-ingress", "tcx-egress", "xdp"} {
		if _, err := os.Stat(node1.LinkPin(SecondLinkIface, h)); err == nil {
			t.Errorf("pin %s of eth1 survived detaching", h)
		}
	}
	if _, err := client.HTTPGet(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), "/"); err == nil {
		t.Errorf("HTTP to %s via eth1 still answered after detaching", vip)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
