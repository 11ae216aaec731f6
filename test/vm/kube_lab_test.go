// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/internal/testutil"
)

// apiDownFor is how long the fault test keeps the API server stopped.
const apiDownFor = 30 * time.Second

// TestPrivilegedLabKube runs the lab from a real API server instead of a
// static file: etcd and kube-apiserver run in a control-plane namespace on
// the VLAN, every node runs `lbd run --kubeconfig` as lbd's ServiceAccount
// (deploy/rbac only), and the test creates the pools, Services and
// EndpointSlices through the API. One lbd is elected, allocates the VIPs
// and writes them to Service status; every node programs them; a client on
// the VLAN gets HTTP answers from the VIP. Then the API server is stopped:
// traffic keeps flowing; started again: a new Service is allocated and
// served.
func TestPrivilegedLabKube(t *testing.T) {
	testutil.Privileged(t)
	kubetest.Require(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{PodServer: bins[0]})
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()

	cp, err := l.StartControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after newLab's cleanup, so it runs before the lab's
	// namespaces go.
	t.Cleanup(cp.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs are in %s/control-plane", l.Dir)
		}
	})
	if err := cp.ApplyManifests(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := l.StartKubeLBD(ctx, bins[1], cp); err != nil {
		t.Fatal(err)
	}
	// lbd stops before the API server does, as in a cluster being
	// drained: each releases its Lease and stops its informers cleanly.
	t.Cleanup(func() {
		for _, n := range l.Nodes {
			if err := l.StopLBD(n); err != nil {
				t.Errorf("stop lbd: %v", err)
			}
		}
	})

	// One leader, among the lab's nodes.
	leader := waitFor(t, ctx, "a leader in the Lease", func() (string, error) {
		lease, err := cp.Admin.CoordinationV1().Leases("lbd-system").Get(ctx, "lbd-ipam", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if lease.Spec.HolderIdentity == nil || l.Node(*lease.Spec.HolderIdentity) == nil {
			return "", fmt.Errorf("holder %v is not a lab node", lease.Spec.HolderIdentity)
		}
		return *lease.Spec.HolderIdentity, nil
	})
	t.Logf("leader: %s", leader)

	// The reference pools: the internal Service gets the first internal
	// address, the external one the first external address.
	internal := waitVIP(t, ctx, cp, "web-internal", InternalRange[0])
	external := waitVIP(t, ctx, cp, "web-external", ExternalRange[0])
	for _, vip := range []netip.Addr{internal, external} {
		serves(t, ctx, l, vip, "from the API server")
	}

	// The API server goes away: traffic keeps flowing, from the state
	// every lbd already has.
	if err := cp.Cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server stopped for %v", apiDownFor)
	down := time.Now()
	for time.Since(down) < apiDownFor {
		tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(internal, ServiceHTTPPort), 20)
		if tally.Failed() > 0 {
			t.Errorf("%v after the API server stopped: %s", time.Since(down).Round(time.Second), tally)
		}
		time.Sleep(2 * time.Second)
	}
	if err := l.CheckLBD(); err != nil {
		t.Fatalf("lbd did not survive the API server's absence: %v", err)
	}
	if err := cp.Cluster.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Log("API server started again")

	// Allocation resumes: a new Service (with the lab's pods behind it)
	// gets the next internal address and is served.
	svc := service("web-new", nil)
	es := l.endpointSlice("web-new")
	var doc []byte
	for _, o := range []any{svc, es} {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		doc = append(append(doc, "---\n"...), b...)
	}
	if err := retryAPI(ctx, func() error { return cp.Apply(ctx, doc) }); err != nil {
		t.Fatal(err)
	}
	next := InternalRange[0].Next()
	waitVIP(t, ctx, cp, "web-new", next)
	serves(t, ctx, l, next, "after the API server came back")
	if got := vipOf(ctx, cp, "web-internal"); got != internal {
		t.Errorf("web-internal moved from %s to %s across the outage", internal, got)
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}

	// A node drained while the control plane is down: lbd still stops
	// on SIGTERM within the lab's stop timeout (5 s), not after the
	// kubelet's SIGKILL.
	if err := cp.Cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // long enough for the informers to be in backoff
	for _, n := range l.Nodes {
		if err := l.StopLBD(n); err != nil {
			t.Errorf("SIGTERM with the API server down: %v", err)
		}
	}
}

// waitFor polls f every 200 ms for up to 2 minutes and returns its value.
func waitFor[T any](t *testing.T, ctx context.Context, what string, f func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		v, err := f()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: not within 2 min: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// retryAPI retries f while a client connection to the restarted API
// server is being re-established.
func retryAPI(ctx context.Context, f func() error) error {
	var err error
	for range 50 {
		if err = f(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	return err
}

func vipOf(ctx context.Context, cp *ControlPlane, name string) netip.Addr {
	s, err := cp.Admin.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil || len(s.Status.LoadBalancer.Ingress) != 1 {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
	return a
}

// waitVIP waits until Service name's status holds exactly want, as lbd's
// leader writes it, and until it has the IPAllocated Event.
func waitVIP(t *testing.T, ctx context.Context, cp *ControlPlane, name string, want netip.Addr) netip.Addr {
	t.Helper()
	waitFor(t, ctx, "status of "+name, func() (bool, error) {
		s, err := cp.Admin.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var got []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			got = append(got, in.IP)
		}
		if !slices.Equal(got, []string{want.String()}) {
			return false, fmt.Errorf("ingress %q, want [%s]", got, want)
		}
		return true, nil
	})
	waitFor(t, ctx, "IPAllocated event on "+name, func() (bool, error) {
		evs, err := cp.Admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "IPAllocated" && e.Type == corev1.EventTypeNormal && strings.Contains(e.Message, want.String()) {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d events, no IPAllocated for %s", len(evs.Items), want)
	})
	return want
}

// serves waits until the client gets answers from vip (announcement and
// datapath follow the status within moments), then checks that a batch of
// requests all succeed and reach pods.
func serves(t *testing.T, ctx context.Context, l *Lab, vip netip.Addr, when string) {
	t.Helper()
	target := netip.AddrPortFrom(vip, ServiceHTTPPort)
	waitFor(t, ctx, fmt.Sprintf("HTTP from %s %s", target, when), func() (string, error) {
		return l.Client().HTTPGet(ctx, target, "/")
	})
	tally := l.Client().HTTPLoad(ctx, target, 30)
	if tally.Failed() > 0 || len(tally.Pods()) < 2 {
		t.Errorf("%s %s: %s", target, when, tally)
	}
}
