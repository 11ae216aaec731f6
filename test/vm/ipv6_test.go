// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// dualVIPs waits until every lbd reports service svc with one IPv4 and
// one IPv6 VIP and agrees on their owner, and returns them with the owner
// of the IPv6 one.
func dualVIPs(ctx context.Context, t *testing.T, l *Lab, svc string) (v4, v6 netip.Addr, owner6 *Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		v4, v6, owner6, last = dualVIPsOnce(ctx, l, svc)
		if last == nil {
			return v4, v6, owner6
		}
		if err := l.CheckLBD(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("dual-stack VIPs of %s: %v", svc, last)
	return
}

func dualVIPsOnce(ctx context.Context, l *Lab, svc string) (v4, v6 netip.Addr, owner6 *Node, err error) {
	owners := map[netip.Addr]string{}
	for i, n := range l.Nodes {
		ds, err := l.DatapathStatus(ctx, n)
		if err != nil {
			return v4, v6, nil, err
		}
		seen := 0
		for _, v := range ds.VIPs {
			if !slices.ContainsFunc(v.Ports, func(p DPPort) bool { return p.Service == svc }) {
				continue
			}
			seen++
			if v.Owner == "" {
				return v4, v6, nil, fmt.Errorf("%s: %s has no owner", n.Name, v.VIP)
			}
			if i > 0 && owners[v.VIP] != v.Owner {
				return v4, v6, nil, fmt.Errorf("%s says %s is owned by %s, %s says %q", n.Name, v.VIP, v.Owner, l.Nodes[0].Name, owners[v.VIP])
			}
			owners[v.VIP] = v.Owner
			if v.VIP.Is4() {
				v4 = v.VIP
			} else {
				v6 = v.VIP
			}
		}
		if seen != 2 || !v4.IsValid() || !v6.IsValid() {
			return v4, v6, nil, fmt.Errorf("%s: %s has VIPs %v, want one IPv4 and one IPv6", n.Name, svc, owners)
		}
	}
	return v4, v6, l.Node(owners[v6]), nil
}

// TestPrivilegedLabIPv6 runs a RequireDualStack Service with an IPv6 VIP
// end to end: the client resolves the VIP by NDP to its owner's MAC and
// reaches it over HTTP and UDP. With externalTrafficPolicy Cluster the
// pod on the other node sees the owner's IPv6 address (SNAT) and the
// owner's own pod the client's; the IPv4 VIP of the same Service works
// alongside. With Local only the owner's pod answers and sees the client.
func TestPrivilegedLabIPv6(t *testing.T) {
	testutil.Privileged(t)
	l := announceLab(t, Options{Nodes: 2, PodsPerNode: 1, IPv6: true})
	ctx := t.Context()
	client := l.Client()

	v4, v6, owner := dualVIPs(ctx, t, l, ServiceDual)
	if !DualRange6[0].Less(v6.Next()) || DualRange6[1].Less(v6) {
		t.Errorf("IPv6 VIP %s outside the dual pool's %s-%s", v6, DualRange6[0], DualRange6[1])
	}
	other := l.Nodes[0]
	if other == owner {
		other = l.Nodes[1]
	}
	t.Logf("%s: %s and %s, owner %s", ServiceDual, v4, v6, owner.Name)
	// Status lists each VIP's backends of its own family, as the
	// datapath uses them.
	ds, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range ds.VIPs {
		if v.VIP != v4 && v.VIP != v6 {
			continue
		}
		for _, p := range v.Ports {
			got := p.ReadyBackends()
			if len(got) != len(l.Pods()) || slices.ContainsFunc(got, func(b netip.Addr) bool { return b.Is4() != v.VIP.Is4() }) {
				t.Errorf("status of %s port %d: ready backends %v, want the %d pods' addresses of its family", v.VIP, p.Port, got, len(l.Pods()))
			}
		}
	}

	tally := client.HTTPLoad(ctx, netip.AddrPortFrom(v6, ServiceHTTPPort), 40)
	if tally.OK != tally.Sent || len(tally.Pods()) != 2 {
		t.Errorf("HTTP to [%s]: %s; want every request answered, by both nodes' pods", v6, tally)
	}
	// NDP resolved the VIP to the owner, and to the owner alone.
	if nb, ok, err := client.Neighbor6(v6); err != nil {
		t.Fatal(err)
	} else if !ok || nb.MAC.String() != owner.MAC.String() {
		t.Errorf("client's neighbour entry for %s = %+v (found %v), want %s's MAC %s", v6, nb, ok, owner.Name, owner.MAC)
	}

	// Cluster: the other node's pod sees the owner's IPv6 address (SNAT
	// with the node address), the owner's pod sees the client.
	want := map[string]string{owner.Pods[0].Name: client.IP6().String(), other.Pods[0].Name: owner.IP6().String()}
	udpSeen := map[string]string{}
	for range 20 {
		ans, err := client.UDPQuery(ctx, netip.AddrPortFrom(v6, ServiceUDPPort))
		if err != nil {
			t.Errorf("UDP to [%s]:%d: %v", v6, ServiceUDPPort, err)
			continue
		}
		udpSeen[ans.Pod] = ans.Client.Addr().String()
	}
	for pod, src := range udpSeen {
		if want[pod] != src {
			t.Errorf("UDP via %s: %s saw source %s, want %s", v6, pod, src, want[pod])
		}
	}
	if len(udpSeen) != 2 {
		t.Errorf("UDP via %s answered by %v, want both pods", v6, udpSeen)
	}
	httpSeen := map[string]bool{}
	for range 20 {
		ip, err := client.HTTPGet(ctx, netip.AddrPortFrom(v6, ServiceHTTPPort), "/clientip")
		if err != nil {
			t.Fatal(err)
		}
		httpSeen[ip] = true
	}
	if !httpSeen[owner.IP6().String()] || !httpSeen[client.IP6().String()] || len(httpSeen) != 2 {
		t.Errorf("HTTP via %s: pods saw %v, want the owner's %s and the client's %s", v6, httpSeen, owner.IP6(), client.IP6())
	}

	// The IPv4 VIP of the same Service.
	if tally := client.HTTPLoad(ctx, netip.AddrPortFrom(v4, ServiceHTTPPort), 20); tally.OK != tally.Sent {
		t.Errorf("HTTP to %s (IPv4 VIP of the dual-stack Service): %s", v4, tally)
	}
	if _, err := client.UDPQuery(ctx, netip.AddrPortFrom(v4, ServiceUDPPort)); err != nil {
		t.Errorf("UDP to %s: %v", v4, err)
	}

	// Local: only the owner's own pod, which sees the client.
	_, lv6, lowner := dualVIPs(ctx, t, l, ServiceDualLocal)
	for range 10 {
		ans, err := client.UDPQuery(ctx, netip.AddrPortFrom(lv6, ServiceUDPPort))
		if err != nil {
			t.Errorf("UDP to [%s] (Local): %v", lv6, err)
			continue
		}
		if ans.Pod != lowner.Pods[0].Name || ans.Client.Addr() != client.IP6() {
			t.Errorf("UDP to [%s] (Local): %s saw %s, want %s seeing %s", lv6, ans.Pod, ans.Client, lowner.Pods[0].Name, client.IP6())
		}
	}
	if tally := client.HTTPLoad(ctx, netip.AddrPortFrom(lv6, ServiceHTTPPort), 20); tally.OK != tally.Sent || !slices.Equal(tally.Pods(), []string{lowner.Pods[0].Name}) {
		t.Errorf("HTTP to [%s] (Local): %s; want every request answered by %s", lv6, tally, lowner.Pods[0].Name)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// The IPv6 plan mirrors the IPv4 one, and lab hosts may send only to the
// lab's IPv6 prefixes.
func TestIPv6Plan(t *testing.T) {
	l := &Lab{opts: Options{Nodes: 2, PodsPerNode: 2, Clients: 1}}
	l.plan()
	got := map[string]string{}
	for _, n := range l.Nodes {
		got[n.Name] = n.IP6().String()
		got[n.Name+" pods"] = n.PodCIDR6().String()
		got[n.Name+" gw"] = n.NodeGateway6().String()
		for _, p := range n.Pods {
			got[p.Name] = p.IP6().String()
		}
	}
	got["client1"] = l.Client().IP6().String()
	want := map[string]string{
		"node1": "fd00:20::51", "node1 pods": "fd00:241:1::/64", "node1 gw": "fd00:241:1::1",
		"node1-pod1": "fd00:241:1::11", "node1-pod2": "fd00:241:1::12",
		"node2": "fd00:20::52", "node2 pods": "fd00:241:2::/64", "node2 gw": "fd00:241:2::1",
		"node2-pod1": "fd00:241:2::11", "node2-pod2": "fd00:241:2::12",
		"client1": "fd00:20::200",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s, want %s", k, got[k], w)
		}
	}
	for addr, ok := range map[string]bool{
		"fd00:20::1:1":   true,
		"fd00:241:2::11": true,
		"fd00:21::1":     false,
		"fd00:242::1":    false,
		"::1":            false,
		"2001:db8::1":    false,
	} {
		if err := checkTarget(netip.MustParseAddr(addr)); (err == nil) != ok {
			t.Errorf("checkTarget(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}
