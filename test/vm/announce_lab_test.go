// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/status"
)

// announceLab builds a lab running the podserver and lbd on every node.
func announceLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	opts.PodServer, opts.LBD = bins[0], bins[1]
	return newLab(t, opts)
}

// waitOwnerNamed waits until vip has exactly one owner, want, by status and
// ARP.
func waitOwnerNamed(ctx context.Context, t *testing.T, l *Lab, vip netip.Addr, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := l.WaitOwner(ctx, vip, nil, 10*time.Second)
		if err == nil && n.Name == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("owner of %s: %v, %v; want %s", vip, nodeName(n), err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wantNoARPAnswer checks, a few times over a second, that nobody on the
// VLAN answers ARP for vip.
func wantNoARPAnswer(ctx context.Context, t *testing.T, l *Lab, vip netip.Addr) {
	t.Helper()
	for range 4 {
		macs, err := l.Client().ARPResponders(ctx, vip, 250*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(macs) != 0 {
			t.Errorf("ARP for %s answered by %v, want nobody", vip, macs)
			return
		}
	}
}

// TestPrivilegedLabL2Announcement checks L2Announcements and exclusion
// against real lbds: a node labelled exclude-from-external-load-balancers
// never owns, the internal pool goes only to the node its announcement
// selects, and the external pool, announced only on an interface the
// nodes lack, is answered by nobody on eth0. Then the internal pool's
// announcement widens to every zone-b node and its owner goes away: the
// VIP stays among the selected nodes.
func TestPrivilegedLabL2Announcement(t *testing.T) {
	testutil.Privileged(t)
	l := announceLab(t, Options{Nodes: 4})
	ctx := t.Context()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	internal, external := vips[0].VIP, vips[1].VIP

	d := l.LabDocs()
	zones := map[string]string{"node1": "zone-a", "node2": "zone-b", "node3": "zone-b", "node4": "zone-a"}
	for _, n := range d.Nodes {
		n.Labels[ZoneLabel] = zones[n.Name]
	}
	d.Node("node1").Labels[config.LabelExcludeFromLB] = ""
	d.Node("node2").Labels["lab.lbd.dev/announce"] = "internal"
	d.Node("node1").Labels["lab.lbd.dev/announce"] = "internal" // excluded wins
	d.Announce("internal", []string{PoolInternal}, nil, &metav1.LabelSelector{
		MatchLabels: map[string]string{"lab.lbd.dev/announce": "internal"},
	})
	d.Announce("external", []string{PoolExternal}, []string{"eth9"}, nil)
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	waitOwnerNamed(ctx, t, l, internal, "node2")
	if tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(internal, ServiceHTTPPort), 20); tally.OK != 20 {
		t.Errorf("HTTP to %s: %s", internal, tally)
	}
	wantNoARPAnswer(ctx, t, l, external)

	// Widen to zone-b: node2 and node3. The owner goes away (SIGKILL):
	// the other selected node takes over; node4 (zone-a, not selected)
	// and node1 (excluded) never do.
	d.Announcements[0].Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{ZoneLabel: "zone-b"}}
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	// Wait for every lbd to have the new selector before the failover.
	time.Sleep(1500 * time.Millisecond)
	res, old, err := l.Failover(ctx, internal, EventSigkill, takeoverLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", res)
	want := map[string]string{"node2": "node3", "node3": "node2"}[old.Name]
	if want == "" || res.NewOwner != want {
		t.Errorf("failover %s -> %s, want between node2 and node3", old.Name, res.NewOwner)
	}
	// The new owner counted the owner change (lbd_announce_owner_changes_total).
	if st, err := fullStatus(ctx, l, l.Node(res.NewOwner)); err != nil {
		t.Error(err)
	} else if st.Announce.OwnerChanges == 0 {
		t.Errorf("%s's status counts no owner change after taking %s over", res.NewOwner, internal)
	}
	if _, err := l.Restore(ctx, old, EventSigkill, []netip.Addr{internal}); err != nil {
		t.Fatal(err)
	}
	// Every lbd reports the owner and the ownership reasons agree.
	for _, n := range l.Nodes {
		st, err := l.StatusAnyHealth(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := st.VIPFor(ServiceInternal); !ok || (v.Owner != "node2" && v.Owner != "node3") {
			t.Errorf("%s's status: owner of %s is %q, want node2 or node3", n.Name, internal, v.Owner)
		}
	}
}

// TestPrivilegedLabFailoverLocal runs the internal Service with
// externalTrafficPolicy Local: only nodes with a ready local endpoint
// may own its VIP. The owner's last local endpoint goes away (its pods
// leave the EndpointSlice) while a client sends HTTP and UDP: the VIP
// moves to a node that has endpoints, traffic resumes through it, and
// only that node's pods answer.
func TestPrivilegedLabFailoverLocal(t *testing.T) {
	testutil.Privileged(t)
	l := announceLab(t, Options{})
	ctx := t.Context()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal)
	if err != nil {
		t.Fatal(err)
	}
	vip := vips[0].VIP
	d := l.LabDocs()
	d.Service(ServiceInternal).Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	// Local takes effect: answers come from the owner's pods only.
	var owner *Node
	deadline := time.Now().Add(20 * time.Second)
	for {
		owner, err = l.WaitOwner(ctx, vip, nil, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 20)
		if tally.OK == 20 && allPodsOf(tally.Pods(), owner) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Local policy on %s: %s, want answers from %s's pods only", vip, tally, owner.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}

	traffic := l.Client().StartVIPProbes(ctx, vip)
	time.Sleep(300 * time.Millisecond)
	// The owner's pods leave the EndpointSlice.
	es := d.Slice(ServiceInternal)
	es.Endpoints = slices.DeleteFunc(es.Endpoints, func(e discoveryv1.Endpoint) bool { return *e.NodeName == owner.Name })
	t0 := time.Now()
	if err := l.WriteDocs(d); err != nil {
		t.Fatal(err)
	}
	var next *Node
	for {
		next, err = l.WaitOwner(ctx, vip, nil, 10*time.Second)
		if err == nil && next != owner {
			break
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("owner of %s still %s 20s after its last local endpoint left (%v)", vip, owner.Name, err)
		}
	}
	moved := time.Since(t0)
	time.Sleep(500 * time.Millisecond)
	httpT, udpT := traffic.Stop()
	t.Logf("VIP %s moved %s -> %s within %s; during the move: HTTP %s; UDP %s", vip, owner.Name, next.Name, moved.Round(time.Millisecond), httpT, udpT)

	tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 20)
	if tally.OK != 20 || !allPodsOf(tally.Pods(), next) {
		t.Errorf("after the move: %s, want 20 answers from %s's pods only", tally, next.Name)
	}
	if ans, err := l.Client().UDPQuery(ctx, netip.AddrPortFrom(vip, ServiceUDPPort)); err != nil || !allPodsOf([]string{ans.Pod}, next) {
		t.Errorf("UDP after the move: %+v, %v; want an answer from %s's pods", ans, err, next.Name)
	}
	// VIPProbes resumed: the last requests of the run succeeded.
	if httpT.OK == 0 || udpT.OK == 0 {
		t.Errorf("no request succeeded during the move: HTTP %s; UDP %s", httpT, udpT)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// TestPrivilegedLabFailoverJoin starts with three of four nodes in the
// cluster; the fourth joins (its Node object appears and its lbd starts)
// while a client sends HTTP and UDP to the external VIP, which the
// rendezvous hash then gives to the new node. Ownership converges to one
// node per VIP, the VIP that moves is answered by the new node alone, and
// traffic carries on through the move.
func TestPrivilegedLabFailoverJoin(t *testing.T) {
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{Nodes: 4, PodServer: bins[0]})
	ctx := t.Context()
	l.opts.LBD = bins[1]
	if err := ensureBPFFS(); err != nil {
		t.Fatal(err)
	}
	first := l.Nodes[:3]
	if err := l.WriteDocs(l.LabDocs(first...)); err != nil {
		t.Fatal(err)
	}
	for _, n := range first {
		if err := l.StartNodeLBD(ctx, n, true); err != nil {
			t.Fatal(err)
		}
	}
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	before := map[netip.Addr]*Node{}
	for _, v := range vips {
		if before[v.VIP], err = l.WaitOwner(ctx, v.VIP, nil, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ext := vips[1].VIP
	if before[ext].Name != "node1" {
		t.Fatalf("external VIP %s owned by %s before the join, want node1 (the hash changed?)", ext, before[ext].Name)
	}

	traffic := map[netip.Addr]*VIPProbes{}
	for _, v := range vips {
		traffic[v.VIP] = l.Client().StartVIPProbes(ctx, v.VIP)
	}
	time.Sleep(300 * time.Millisecond)
	joiner := l.Nodes[3]
	if err := l.WriteDocs(l.LabDocs()); err != nil {
		t.Fatal(err)
	}
	if err := l.StartNodeLBD(ctx, joiner, true); err != nil {
		t.Fatal(err)
	}
	waitOwnerNamed(ctx, t, l, ext, joiner.Name)
	waitOwnerNamed(ctx, t, l, vips[0].VIP, before[vips[0].VIP].Name)
	// The client's entry moved to the new owner (its gratuitous ARP).
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, ok, err := l.Client().Neighbor(ext)
		if err == nil && ok && n.MAC.String() == joiner.MAC.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client's neighbour entry for %s: %+v %v %v, want %s's %s", ext, n, ok, err, joiner.Name, joiner.MAC)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	for _, v := range vips {
		h, u := traffic[v.VIP].Stop()
		t.Logf("VIP %s during the join: HTTP %s; UDP %s", v.VIP, h, u)
		// The move is a handover between two live nodes: the old owner's
		// datapath keeps serving until the client follows the new
		// owner's gratuitous ARP. A request or two may be lost to a
		// loaded machine, not a stream of them.
		if h.Failed() > 2 || u.Failed() > 2 || h.OK == 0 || u.OK == 0 {
			t.Errorf("VIP %s: traffic broke during the join: HTTP %s; UDP %s", v.VIP, h, u)
		}
	}
	tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(ext, ServiceHTTPPort), 40)
	if tally.OK != 40 {
		t.Errorf("HTTP to %s after the join: %s", ext, tally)
	}
	if !slices.ContainsFunc(tally.Pods(), func(p string) bool { return allPodsOf([]string{p}, joiner) }) {
		t.Logf("no answer from %s's pods among %v (Maglev may not pick them in 40 flows)", joiner.Name, tally.Pods())
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}

// fullStatus returns node n's complete status (lbd status -o json),
// whatever its health.
func fullStatus(ctx context.Context, l *Lab, n *Node) (*status.Status, error) {
	cmd := exec.CommandContext(ctx, l.opts.LBD, "status", "--socket", n.Socket, "-o", "json")
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || (ee.ExitCode() != 1 && ee.ExitCode() != 3)) {
		return nil, fmt.Errorf("run lbd status on %s: %w", n.Name, err)
	}
	var st status.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", n.Name, err)
	}
	return &st, nil
}

// allPodsOf reports whether every pod name is one of n's pods.
func allPodsOf(pods []string, n *Node) bool {
	for _, p := range pods {
		if !slices.ContainsFunc(n.Pods, func(q *Pod) bool { return q.Name == p }) {
			return false
		}
	}
	return len(pods) > 0
}
