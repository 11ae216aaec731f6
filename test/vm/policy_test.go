// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// serviceWait bounds waiting for every lbd to apply a manifest change.
const serviceWait = 30 * time.Second

// labWithLBD builds a lab running the real lbd and pod servers.
func labWithLBD(t *testing.T, opts Options) *Lab {
	t.Helper()
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	opts.PodServer, opts.LBD = bins[0], bins[1]
	return newLab(t, opts)
}

// applyService writes svc into the lab's manifest and waits until every lbd
// serves it from the ready pods; it returns the VIP's status and owner.
func applyService(t *testing.T, l *Lab, svc ExtraService, ready []*Pod) (VIPStatus, *Node) {
	t.Helper()
	if err := l.ApplyServices(svc); err != nil {
		t.Fatal(err)
	}
	v, owner, err := l.WaitService(t.Context(), svc.Key(), ready, serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	return v, owner
}

// podNamed returns the lab pod called name, or nil.
func (l *Lab) podNamed(name string) *Pod {
	for _, p := range l.Pods() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// TestPrivilegedLabTrafficPolicy checks externalTrafficPolicy end to end:
// with Cluster, a pod on another node than the VIP's owner sees the
// owner's address (SNAT) and a pod on the owner sees the client; with
// Local, only the owner's own pods answer, every one of them sees the
// client's address, and the owner is a node with a ready local endpoint.
func TestPrivilegedLabTrafficPolicy(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	n2, n3 := l.Nodes[1], l.Nodes[2]
	cluster := ExtraService{Name: "policy-cluster"}
	// No endpoint on node1: it must never own the Local VIP.
	local := ExtraService{Name: "policy-local", Local: true, Endpoints: []*Pod{n2.Pods[0], n3.Pods[0], n3.Pods[1]}}
	if err := l.ApplyServices(cluster, local); err != nil {
		t.Fatal(err)
	}
	cv, cowner, err := l.WaitService(ctx, cluster.Key(), l.Pods(), serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	lv, lowner, err := l.WaitService(ctx, local.Key(), local.Endpoints, serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Cluster VIP %s owned by %s, Local VIP %s owned by %s", cv.VIP, cowner.Name, lv.VIP, lowner.Name)

	t.Run("Cluster", func(t *testing.T) {
		target := netip.AddrPortFrom(cv.VIP, ServiceHTTPPort)
		remote, onOwner := 0, 0
		for range 60 {
			a, err := client.Who(ctx, target, 0)
			if err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			p := l.podNamed(a.Pod)
			if p == nil {
				t.Fatalf("answer from unknown pod %q", a.Pod)
			}
			// A pod on the owner is reached through the owner's own
			// stack, without SNAT; any other pod needs the reply to come
			// back through the owner, hence its address.
			want := cowner.IP
			if p.Node == cowner {
				want = client.IP
				onOwner++
			} else {
				remote++
			}
			if a.Client.Addr() != want {
				t.Errorf("%s (on %s) saw client %s, want %s", p.Name, p.Node.Name, a.Client, want)
			}
		}
		if remote == 0 || onOwner == 0 {
			t.Errorf("60 flows reached %d remote and %d owner-local pods; want both kinds", remote, onOwner)
		}
		ans, err := client.UDPQuery(ctx, netip.AddrPortFrom(cv.VIP, ServiceUDPPort))
		if err != nil {
			t.Fatal(err)
		}
		if p := l.podNamed(ans.Pod); p == nil {
			t.Errorf("UDP answer from unknown pod %q", ans.Pod)
		} else if want := map[bool]netip.Addr{true: client.IP, false: cowner.IP}[p.Node == cowner]; ans.Client.Addr() != want {
			t.Errorf("UDP: %s saw %s, want %s", p.Name, ans.Client, want)
		}
	})

	t.Run("Local", func(t *testing.T) {
		if lowner != n2 && lowner != n3 {
			t.Fatalf("Local VIP owned by %s, which has no ready endpoint", lowner.Name)
		}
		// The owner alone answers ARP; node1 never does.
		if n, err := l.WaitOwner(ctx, lv.VIP, nil, 10*time.Second); err != nil {
			t.Fatal(err)
		} else if n != lowner {
			t.Fatalf("ARP owner %s, status owner %s", n.Name, lowner.Name)
		}
		var want []string
		for _, p := range local.Endpoints {
			if p.Node == lowner {
				want = append(want, p.Name)
			}
		}
		target := netip.AddrPortFrom(lv.VIP, ServiceHTTPPort)
		seen := map[string]int{}
		for range 40 {
			a, err := client.Who(ctx, target, 0)
			if err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			seen[a.Pod]++
			if !slices.Contains(want, a.Pod) {
				t.Errorf("answer from %s, want only %s's local endpoints %v", a.Pod, lowner.Name, want)
			}
			if a.Client.Addr() != client.IP {
				t.Errorf("%s saw client %s, want the client's own %s", a.Pod, a.Client, client.IP)
			}
		}
		if len(seen) != len(want) {
			t.Errorf("answers by pod %v, want every one of %v", seen, want)
		}
		ans, err := client.UDPQuery(ctx, netip.AddrPortFrom(lv.VIP, ServiceUDPPort))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(want, ans.Pod) || ans.Client.Addr() != client.IP {
			t.Errorf("UDP answer %+v, want one of %v seeing %s", ans, want, client.IP)
		}
	})
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// TestPrivilegedLabSessionAffinity checks sessionAffinity: ClientIP: all
// new connections of one client land on one pod; when that pod leaves the
// endpoints, the client moves to another and stays there while the
// affinity lasts, even once the first pod is back; after timeoutSeconds
// without a new connection, the choice is made afresh, which with the
// same backend set is the first pod again (the pick hashes the client
// address into the same Maglev table).
func TestPrivilegedLabSessionAffinity(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	client := l.Client()
	const timeout = 3
	svc := ExtraService{Name: "affinity", AffinityTimeout: timeout}
	v, _ := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	sticky := func(phase string, n int) string {
		t.Helper()
		seen := map[string]int{}
		for range n {
			a, err := client.Who(ctx, target, 0)
			if err != nil {
				t.Fatalf("%s: GET %s: %v", phase, target, err)
			}
			seen[a.Pod]++
		}
		if len(seen) != 1 {
			t.Fatalf("%s: %d new connections spread over %v, want one pod", phase, n, seen)
		}
		for p := range seen {
			t.Logf("%s: %d connections, all on %s", phase, n, p)
			return p
		}
		return ""
	}
	first := sticky("fresh", 20)

	// The pod leaves: the affinity entry pointing at it must go too.
	p := l.podNamed(first)
	var rest []*Pod
	for _, q := range l.Pods() {
		if q != p {
			rest = append(rest, q)
		}
	}
	svc.Endpoints = rest
	applyService(t, l, svc, rest)
	second := sticky("pod removed", 10)
	if second == first {
		t.Fatalf("still on %s after it left the endpoints", first)
	}

	// The pod comes back: the client's affinity still holds.
	svc.Endpoints = nil
	applyService(t, l, svc, l.Pods())
	if got := sticky("pod back", 10); got != second {
		t.Errorf("moved to %s when %s came back, want to stay on %s within the affinity timeout", got, first, second)
	}

	// Idle past the timeout: a fresh pick.
	time.Sleep(timeout*time.Second + 1500*time.Millisecond)
	if got := sticky("after timeout", 10); got != first {
		t.Errorf("after the %ds timeout the client is on %s, want the fresh pick %s again", timeout, got, first)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// TestPrivilegedLabSourceRanges checks loadBalancerSourceRanges: a client
// inside the range is served, one outside gets no answer, the drops are
// counted, and a SYN flood from the blocked client creates no
// connection-table entry (read from the pinned map), while the same SYNs
// from the allowed client do create entries.
func TestPrivilegedLabSourceRanges(t *testing.T) {
	l := labWithLBD(t, Options{Clients: 2})
	ctx := t.Context()
	allowed, blocked := l.Clients[0], l.Clients[1]
	svc := ExtraService{Name: "ranges", SourceRanges: []netip.Prefix{netip.PrefixFrom(allowed.IP, 32)}}
	v, owner := applyService(t, l, svc, l.Pods())
	target := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	before, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := allowed.Who(ctx, target, 0); err != nil {
			t.Fatalf("allowed client: %v", err)
		}
	}
	const tries = 3
	for range tries {
		if a, err := blocked.Who(ctx, target, time.Second); err == nil {
			t.Fatalf("blocked client got an answer from %s", a.Pod)
		}
	}
	if _, err := blocked.UDPQuery(ctx, netip.AddrPortFrom(v.VIP, ServiceUDPPort)); err == nil {
		t.Error("blocked client got a UDP answer")
	}
	flows := func(h *Host) int {
		t.Helper()
		fs, err := owner.ConntrackFlows()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range fs {
			if f.Src.Addr() == h.IP && f.Dst.Addr() == v.VIP {
				n++
			}
		}
		return n
	}
	if n := flows(blocked); n != 0 {
		t.Errorf("%d connection-table entries from the blocked client", n)
	}

	const flood = 3000
	sent, err := blocked.SYNFlood(owner.MAC, target, flood)
	if err != nil {
		t.Fatal(err)
	}
	allowedBefore := flows(allowed)
	const control = 200
	if _, err := allowed.SYNFlood(owner.MAC, target, control); err != nil {
		t.Fatal(err)
	}
	// Let the SYNs drain through the veths before reading counters.
	time.Sleep(500 * time.Millisecond)
	after, err := l.DatapathStatus(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if n := flows(blocked); n != 0 {
		t.Errorf("after %d SYNs from the blocked range: %d connection-table entries from it, want 0", sent, n)
	}
	if n := flows(allowed) - allowedBefore; n < control/2 {
		t.Errorf("the same SYNs from the allowed client made %d new entries, want about %d (the check above would prove nothing)", n, control)
	}
	dropped := after.Reasons["drop_src_range"] - before.Reasons["drop_src_range"]
	if dropped < uint64(sent) {
		t.Errorf("drop_src_range grew by %d, want at least the %d flood SYNs", dropped, sent)
	}
	pb, _ := before.Port(svc.Key(), ServiceHTTPPort, "TCP")
	pa, _ := after.Port(svc.Key(), ServiceHTTPPort, "TCP")
	if d := pa.Counters.Drops - pb.Counters.Drops; d < uint64(sent) {
		t.Errorf("service drops grew by %d, want at least %d", d, sent)
	}
	t.Logf("flood: %d SYNs from %s sent, drop_src_range +%d, service drops +%d, conntrack %d -> %d entries",
		sent, blocked.IP, dropped, pa.Counters.Drops-pb.Counters.Drops, before.Conntrack, after.Conntrack)
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
