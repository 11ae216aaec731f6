// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"testing"
	"time"
)

// TestPrivilegedLabCNIPolicy proves that lbd delivers to a pod on its own
// node through the node's stack, where a CNI enforces NetworkPolicy: a
// deny rule on the node's forward path to one pod (nft, in the node's
// namespace) drops VIP traffic to that pod and counts it, while the other
// pod keeps answering. With the opt-in --fast-local-redirect, lbd
// redirects straight to the pod's veth and bypasses the rule, as
// documented. A short run of each mode is measured and logged
// ("lab fast-mode-bench" measures longer).
func TestPrivilegedLabCNIPolicy(t *testing.T) {
	l := labWithLBD(t, Options{Nodes: 1})
	ctx := t.Context()
	client := l.Client()
	node := l.Nodes[0]
	denied, open := node.Pods[0], node.Pods[1]
	blocked := ExtraService{Name: "cni-denied", Endpoints: []*Pod{denied}}
	allowed := ExtraService{Name: "cni-open", Endpoints: []*Pod{open}}
	if err := l.ApplyServices(blocked, allowed); err != nil {
		t.Fatal(err)
	}
	bv, _, err := l.WaitService(ctx, blocked.Key(), blocked.Endpoints, serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	ov, _, err := l.WaitService(ctx, allowed.Key(), allowed.Endpoints, serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	bt, ot := netip.AddrPortFrom(bv.VIP, ServiceHTTPPort), netip.AddrPortFrom(ov.VIP, ServiceHTTPPort)
	// Both answer before the rule exists.
	for _, target := range []netip.AddrPort{bt, ot} {
		if _, err := client.Who(ctx, target, 0); err != nil {
			t.Fatalf("before the deny rule: %v", err)
		}
	}
	if err := l.DenyToPod(ctx, denied, PodHTTPPort); err != nil {
		t.Fatal(err)
	}
	defaultRate, err := client.BenchDelivery(ctx, ot, time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}

	check := func(mode string, wantBlocked bool) {
		t.Helper()
		st0, err := l.DatapathStatus(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		c0, err := l.DenyCount(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for range 3 {
			a, err := client.Who(ctx, bt, time.Second)
			switch {
			case err != nil:
				failed++
			case a.Pod != denied.Name:
				t.Errorf("%s: %s answered for %s", mode, a.Pod, blocked.Key())
			}
		}
		for range 10 {
			if a, err := client.Who(ctx, ot, 0); err != nil || a.Pod != open.Name {
				t.Errorf("%s: VIP of %s: %+v, %v; want %s", mode, allowed.Key(), a, err, open.Name)
			}
		}
		c1, err := l.DenyCount(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		st1, err := l.DatapathStatus(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		stack := st1.Reasons["fwd_stack"] - st0.Reasons["fwd_stack"]
		t.Logf("%s: %d/3 requests to the denied pod failed, deny rule counter +%d, fwd_stack +%d, fwd +%d",
			mode, failed, c1-c0, stack, st1.Reasons["fwd"]-st0.Reasons["fwd"])
		if wantBlocked {
			if failed != 3 {
				t.Errorf("%s: %d/3 requests through the VIP to the denied pod failed, want all: lbd bypassed the node's policy", mode, failed)
			}
			if c1-c0 < 3 {
				t.Errorf("%s: the deny rule counted %d packets, want at least the 3 SYNs", mode, c1-c0)
			}
			if stack == 0 {
				t.Errorf("%s: fwd_stack did not grow: local delivery did not go through the stack", mode)
			}
		} else {
			if failed != 0 {
				t.Errorf("%s: %d/3 requests to the denied pod failed, want none (the fast path bypasses the rule)", mode, failed)
			}
			if c1 != c0 {
				t.Errorf("%s: the deny rule counted %d packets, want none", mode, c1-c0)
			}
		}
	}
	check("default", true)

	// Restart lbd with the fast path: same pinned maps, new program.
	if err := l.StopLBD(node); err != nil {
		t.Fatal(err)
	}
	l.SetLBDArgs("--fast-local-redirect")
	if err := l.StartNodeLBD(ctx, node, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.WaitService(ctx, blocked.Key(), blocked.Endpoints, serviceWait); err != nil {
		t.Fatal(err)
	}
	check("fast-local-redirect", false)
	fastRate, err := client.BenchDelivery(ctx, ot, time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local pod, 1 s x 2 workers: default %.0f req/s %.0f conn/s; fast-local-redirect %.0f req/s %.0f conn/s",
		defaultRate.RPS, defaultRate.CPS, fastRate.RPS, fastRate.CPS)
	if defaultRate.Errors+fastRate.Errors > 0 {
		t.Errorf("bench errors: default %d, fast %d", defaultRate.Errors, fastRate.Errors)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
