// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

const ns = "default"

// env is a control plane with the reference pools, an admin client for
// fixtures and lbd's own (RBAC-limited) clients for the code under test.
type env struct {
	t       *testing.T
	ctx     context.Context
	cluster *kubetest.Cluster
	admin   kubernetes.Interface
	lbd     kube.Clients
}

func newEnv(t *testing.T) *env {
	c := kubetest.Start(t)
	c.DumpLogsOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	if err := c.ApplyFile(ctx, "deploy/examples/reference-pools.yaml"); err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	lbd, err := kube.NewClients(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, cluster: c, admin: admin, lbd: lbd}
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startController runs a controller as lbd and returns a stop function
// that waits for Run to return.
func (e *env) startController(identity string) (stop func()) {
	e.t.Helper()
	c, err := controller.New(controller.Config{Clients: e.lbd, Identity: identity, Log: testLog(e.t).With("id", identity)})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("controller %s: %v", identity, err)
			}
		case <-time.After(15 * time.Second):
			e.t.Errorf("controller %s did not stop within 15 s", identity)
		}
	}
	e.t.Cleanup(stop)
	e.eventually(fmt.Sprintf("%s leads", identity), func() (bool, string) { return c.Leading(), "not leading" })
	return stop
}

type svcOpt func(*corev1.Service)

func labels(kv ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Labels[kv[i]] = kv[i+1]
		}
	}
}

func requestIP(ip string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }

func annotate(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}

func (e *env) createService(name string, opts ...svcOpt) {
	e.t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	if _, err := e.admin.CoreV1().Services(ns).Create(e.ctx, s, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create Service %s: %v", name, err)
	}
}

func (e *env) deleteService(name string) {
	e.t.Helper()
	if err := e.admin.CoreV1().Services(ns).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("delete Service %s: %v", name, err)
	}
}

// setStatus writes a Service's status as a previous leader would have.
func (e *env) setStatus(name string, ips ...string) {
	e.t.Helper()
	s, err := e.admin.CoreV1().Services(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	s.Status.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	if _, err := e.admin.CoreV1().Services(ns).UpdateStatus(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatalf("set status of %s: %v", name, err)
	}
}

func (e *env) ingress(name string) []string {
	e.t.Helper()
	s, err := e.admin.CoreV1().Services(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatalf("get Service %s: %v", name, err)
	}
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return ips
}

// eventually polls cond for up to 15 s; cond returns what it saw.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("%s: not within 15 s; last seen: %s", what, last)
}

// wantIngress waits until a Service's status holds exactly ips.
func (e *env) wantIngress(name string, ips ...string) {
	e.t.Helper()
	e.eventually("status of "+name, func() (bool, string) {
		got := e.ingress(name)
		return cmp.Equal(ips, got, cmpEmpty), fmt.Sprintf("%q, want %q", got, ips)
	})
}

var cmpEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

// event waits for an Event with reason on a Service and returns its message.
func (e *env) event(name, reason string) string {
	e.t.Helper()
	var msg string
	e.eventually(reason+" event on "+name, func() (bool, string) {
		l, err := e.admin.CoreV1().Events(ns).List(e.ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil {
			return false, err.Error()
		}
		if len(l.Items) == 0 {
			return false, "no event"
		}
		msg = l.Items[0].Message
		return true, msg
	})
	return msg
}

// TestController runs the reference scenario against a real API server,
// with the controller using only lbd's RBAC identity.
func TestController(t *testing.T) {
	e := newEnv(t)
	stopA := e.startController("lbd-a")

	// The reference pools: everything not labelled external gets the
	// internal range, and only lb-type: external gets the external one.
	e.createService("internal")
	e.createService("public", labels("lb-type", "external"))
	e.wantIngress("internal", "10.20.1.1")
	e.wantIngress("public", "10.20.1.128")
	if msg := e.event("internal", controller.ReasonIPAllocated); !strings.Contains(msg, "10.20.1.1") || !strings.Contains(msg, "internal") {
		t.Errorf("IPAllocated message %q does not name the address and the pool", msg)
	}

	// An internal Service asking for an external address is refused,
	// and told why.
	e.createService("sneaky", requestIP("10.20.1.130"))
	msg := e.event("sneaky", controller.ReasonAllocationFailed)
	for _, want := range []string{"10.20.1.130", "external", "lb-type"} {
		if !strings.Contains(msg, want) {
			t.Errorf("AllocationFailed message %q does not mention %q", msg, want)
		}
	}
	if got := e.ingress("sneaky"); len(got) != 0 {
		t.Errorf("refused Service sneaky has status %q", got)
	}

	// Restart: stop the leader; while none runs, a Service gets status
	// from an earlier leader (10.20.1.2) and another one, sorting first,
	// arrives without. The new leader must restore before assigning, or
	// it would hand 10.20.1.2 out twice.
	stopA()
	e.createService("preset")
	e.setStatus("preset", "10.20.1.2")
	e.createService("a-new")
	e.startController("lbd-b")
	e.wantIngress("a-new", "10.20.1.3")
	for name, ip := range map[string]string{"internal": "10.20.1.1", "public": "10.20.1.128", "preset": "10.20.1.2"} {
		if got := e.ingress(name); !slices.Equal(got, []string{ip}) {
			t.Errorf("after restart %s has %q, want [%s]", name, got, ip)
		}
	}
	if got := e.ingress("sneaky"); len(got) != 0 {
		t.Errorf("after restart refused Service sneaky has status %q", got)
	}

	// A Service that stops being a LoadBalancer loses its status and its
	// address, which is handed out again.
	e.update("internal", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.Ports[0].NodePort = 0
	})
	e.wantIngress("internal")
	e.createService("reuse")
	e.wantIngress("reuse", "10.20.1.1")

	// A deleted Service's address is reused.
	e.deleteService("a-new")
	e.createService("reuse2")
	e.wantIngress("reuse2", "10.20.1.3")

	// Exhaustion resolves itself: a one-address pool (a new pool also
	// rebuilds the allocator, restoring every allocation), one holder,
	// one refused; when the holder goes, the refused one gets it.
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "lbd.dev/v1alpha1", "kind": "IPPool",
		"metadata": map[string]any{"name": "tiny"},
		"spec":     map[string]any{"addresses": []any{"10.20.2.1/32"}, "autoAssign": false},
	}}
	dyn := e.cluster.AdminConfig()
	dc, err := dynamicFor(dyn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Resource(kube.IPPoolsResource).Create(e.ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.createService("tiny-1", annotate("lbd.dev/address-pool", "tiny"))
	e.wantIngress("tiny-1", "10.20.2.1")
	e.createService("tiny-2", annotate("lbd.dev/address-pool", "tiny"))
	if msg := e.event("tiny-2", controller.ReasonAllocationFailed); !strings.Contains(msg, "exhausted") {
		t.Errorf("AllocationFailed message %q does not say the pool is exhausted", msg)
	}
	e.deleteService("tiny-1")
	e.wantIngress("tiny-2", "10.20.2.1")

	// A Service pkg/config rejects is told why, and gets nothing.
	e.createService("garbled", annotate("lbd.dev/loadBalancerIPs", "10.20.1.300"))
	if msg := e.event("garbled", controller.ReasonInvalidService); !strings.Contains(msg, "10.20.1.300") {
		t.Errorf("InvalidService message %q does not name the bad address", msg)
	}
	if got := e.ingress("garbled"); len(got) != 0 {
		t.Errorf("invalid Service garbled has status %q", got)
	}

	// Pool usage is published in IPPool status: internal holds preset,
	// reuse and reuse2; external holds public; tiny holds tiny-2.
	for pool, want := range map[string][2]string{"internal": {"127", "3"}, "external": {"127", "1"}, "tiny": {"1", "1"}} {
		e.eventually("status of IPPool "+pool, func() (bool, string) {
			u, err := dc.Resource(kube.IPPoolsResource).Get(e.ctx, pool, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			total, _, _ := unstructured.NestedString(u.Object, "status", "addressesTotal")
			used, _, _ := unstructured.NestedString(u.Object, "status", "addressesUsed")
			got := [2]string{total, used}
			return got == want, fmt.Sprintf("total/used %q, want %q", got, want)
		})
	}

	// Nothing moved along the way.
	for name, ip := range map[string]string{"public": "10.20.1.128", "preset": "10.20.1.2", "reuse": "10.20.1.1", "reuse2": "10.20.1.3"} {
		if got := e.ingress(name); !slices.Equal(got, []string{ip}) {
			t.Errorf("at the end %s has %q, want [%s]", name, got, ip)
		}
	}
}

// TestFailover runs two controllers at once: exactly one leads, and when
// it stops the other takes over and keeps allocating without moving or
// duplicating anything.
func TestFailover(t *testing.T) {
	e := newEnv(t)
	var ctls [2]*controller.Controller
	var stops [2]func()
	for i, id := range []string{"lbd-a", "lbd-b"} {
		c, err := controller.New(controller.Config{Clients: e.lbd, Identity: id, Log: testLog(t).With("id", id)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		stops[i] = sync.OnceFunc(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("controller %s: %v", id, err)
			}
		})
		t.Cleanup(stops[i])
		ctls[i] = c
	}
	leader := -1
	e.eventually("one leader", func() (bool, string) {
		a, b := ctls[0].Leading(), ctls[1].Leading()
		if a && b {
			t.Fatal("both controllers lead")
		}
		switch {
		case a:
			leader = 0
		case b:
			leader = 1
		}
		return a != b, fmt.Sprintf("leading: %v %v", a, b)
	})
	e.createService("one")
	e.wantIngress("one", "10.20.1.1")

	stops[leader]()
	other := 1 - leader
	e.eventually("the other leads", func() (bool, string) { return ctls[other].Leading(), "not yet" })
	e.createService("two")
	e.wantIngress("two", "10.20.1.2")
	if got := e.ingress("one"); !slices.Equal(got, []string{"10.20.1.1"}) {
		t.Errorf("after failover one has %q, want [10.20.1.1]", got)
	}
}
