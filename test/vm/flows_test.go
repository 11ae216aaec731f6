// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bufio"
	"encoding/json"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/flows"
)

// streamFlows runs `lbd flows -o json args...` against n's socket and
// sends its events on the returned channel until the test ends.
func streamFlows(t *testing.T, l *Lab, n *Node, args ...string) <-chan flows.Event {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), l.opts.LBD, append([]string{"flows", "--socket", n.Socket, "-o", "json"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan flows.Event, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var e flows.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Verdict != flows.VerdictLost {
				ch <- e
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return ch
}

// TestPrivilegedLabFlows watches the internal VIP's traffic with lbd flows
// on its owner while the client sends HTTP requests through the lab: every
// request shows up as one new flow from the client to the VIP, naming the
// pod that answered it and that pod's node, SNATed when the pod is on
// another node (externalTrafficPolicy: Cluster). The other nodes see none
// of it: in L2 mode the owner alone carries a VIP's traffic.
func TestPrivilegedLabFlows(t *testing.T) {
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{PodServer: bins[0], LBD: bins[1]})
	ctx := t.Context()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal)
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.AddrPortFrom(vips[0].VIP, ServiceHTTPPort)
	owner, err := l.WaitOwner(ctx, vip.Addr(), nil, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pods := map[netip.Addr]*Pod{}
	for _, n := range l.Nodes {
		for _, p := range n.Pods {
			pods[p.IP] = p
		}
	}
	client := l.Client()
	events := streamFlows(t, l, owner, "--vip", vip.Addr().String(), "--verdict", "new")
	var others []<-chan flows.Event
	for _, n := range l.Nodes {
		if n != owner {
			others = append(others, streamFlows(t, l, n))
		}
	}

	// Until the streams are subscribed, requests go unseen: send one at a
	// time until the owner's stream shows one.
	deadline := time.Now().Add(30 * time.Second)
warmup:
	for {
		client.HTTPLoad(ctx, vip, 1)
		select {
		case <-events:
			break warmup
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("lbd flows on the owner showed no flow within 30s")
		}
	}
	time.Sleep(500 * time.Millisecond) // the other nodes' streams subscribe too
	for _, ch := range others {
		for len(ch) > 0 {
			<-ch
		}
	}

	const n = 20
	tally := client.HTTPLoad(ctx, vip, n)
	if tally.OK != n {
		t.Fatalf("HTTP through the VIP: %s", tally)
	}
	got := map[string]int{}
	for i := range n {
		var e flows.Event
		select {
		case e = <-events:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d new flows seen", i, n)
		}
		p := pods[e.Backend.Addr()]
		if e.Client.Addr() != client.IP || e.VIP != vip || e.Service != ServiceInternal || p == nil || e.Node != p.Node.Name {
			t.Errorf("event %+v: want %s -> %s (%s) -> a lab pod, with its node", e, client.IP, vip, ServiceInternal)
			continue
		}
		if remote := p.Node != owner; remote != (e.SNATPort != 0) {
			t.Errorf("event %+v: backend on %s, owner %s, SNAT port %d", e, p.Node.Name, owner.Name, e.SNATPort)
		}
		got[p.Name]++
	}
	select {
	case e := <-events:
		t.Errorf("more new flows than requests: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	// The flows name exactly the pods that answered, as often.
	if !maps.Equal(got, tally.ByPod) {
		t.Errorf("pods in lbd flows %v, pods that answered %v", got, tally.ByPod)
	}
	if len(got) < 2 {
		t.Errorf("all %d flows went to %v: want them spread", n, slices.Collect(maps.Keys(got)))
	}
	for _, ch := range others {
		if len(ch) > 0 {
			t.Errorf("a node that does not own %s saw %d flow events (first %+v)", vip.Addr(), len(ch), <-ch)
		}
	}
}
