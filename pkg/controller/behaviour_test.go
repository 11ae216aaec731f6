// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

func (e *env) dyn() dynamic.Interface {
	e.t.Helper()
	dc, err := dynamicFor(e.cluster.AdminConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	return dc
}

// putPool creates or replaces an IPPool's spec.
func (e *env) putPool(name string, spec map[string]any) {
	e.t.Helper()
	ri := e.dyn().Resource(kube.IPPoolsResource)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "lbd.dev/v1alpha1", "kind": "IPPool",
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}}
	// The controller writes the pool's status concurrently, so an update
	// can race it: retry on conflict with a fresh read.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := ri.Get(e.ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = ri.Create(e.ctx, u, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Object["spec"] = spec
		_, err = ri.Update(e.ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("put IPPool %s: %v", name, err)
	}
}

func (e *env) deletePool(name string) {
	e.t.Helper()
	if err := e.dyn().Resource(kube.IPPoolsResource).Delete(e.ctx, name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatalf("delete IPPool %s: %v", name, err)
	}
}

// wantCondition waits until a pool's condition has status and reason and
// its message contains every one of msg; it returns the condition.
func (e *env) wantCondition(pool, typ string, status metav1.ConditionStatus, reason string, msg ...string) metav1.Condition {
	e.t.Helper()
	var got metav1.Condition
	e.eventually(fmt.Sprintf("IPPool %s condition %s=%s", pool, typ, status), func() (bool, string) {
		u, err := e.dyn().Resource(kube.IPPoolsResource).Get(e.ctx, pool, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var p v1alpha1.IPPool
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil {
			return false, fmt.Sprintf("no condition in %+v", p.Status)
		}
		got = *c
		if c.Status != status || c.Reason != reason || c.ObservedGeneration != p.Generation {
			return false, fmt.Sprintf("%+v", *c)
		}
		for _, m := range msg {
			if !strings.Contains(c.Message, m) {
				return false, fmt.Sprintf("message %q lacks %q", c.Message, m)
			}
		}
		return true, ""
	})
	return got
}

// warning waits for a Warning Event with reason on a Service and returns
// its message.
func (e *env) warning(name, reason string) string {
	e.t.Helper()
	var msg string
	e.eventually(reason+" warning on "+name, func() (bool, string) {
		l, err := e.admin.CoreV1().Events(ns).List(e.ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + name + ",reason=" + reason,
		})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range l.Items {
			if ev.Type == corev1.EventTypeWarning && ev.InvolvedObject.Kind == "Service" {
				msg = ev.Message
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none a Warning on the Service", len(l.Items))
	})
	return msg
}

func (e *env) update(name string, mutate func(*corev1.Service)) {
	e.t.Helper()
	// The controller writes status concurrently: retry on conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := e.admin.CoreV1().Services(ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(s)
		_, err = e.admin.CoreV1().Services(ns).Update(e.ctx, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("update Service %s: %v", name, err)
	}
}

func ports(p ...int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = nil
		for _, n := range p {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", n), Port: n, Protocol: corev1.ProtocolTCP})
		}
	}
}

func class(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }

// barrier creates a throwaway Service and waits for its address: every
// change made before it has been through at least one pass.
func (e *env) barrier(name string) {
	e.t.Helper()
	e.createService(name)
	e.eventually("barrier "+name, func() (bool, string) {
		got := e.ingress(name)
		return len(got) == 1, fmt.Sprintf("%q", got)
	})
}

func (e *env) wantNoIngress(name string) {
	e.t.Helper()
	if got := e.ingress(name); len(got) != 0 {
		e.t.Errorf("Service %s has status %q, want none", name, got)
	}
}

// TestBehaviour runs the controller's rules against a real API server, one
// control plane for all of them (each subtest uses its own names and
// addresses), with the controller using only lbd's RBAC identity.
func TestBehaviour(t *testing.T) {
	e := newEnv(t)
	stop := e.startController("lbd-a")

	t.Run("PoolConditions", func(t *testing.T) {
		e := e.sub(t)
		e.wantCondition("internal", controller.ConditionValid, metav1.ConditionTrue, controller.ReasonAccepted)
		e.wantCondition("internal", controller.ConditionExhausted, metav1.ConditionFalse, controller.ReasonNoServiceWaiting)
		// What the schema cannot express: a range running backwards,
		// and a range overlapping an earlier pool.
		e.putPool("backwards", map[string]any{"addresses": []any{"10.20.3.9-10.20.3.1"}})
		e.wantCondition("backwards", controller.ConditionValid, metav1.ConditionFalse, controller.ReasonInvalidSpec,
			"spec.addresses[0]", "10.20.3.9-10.20.3.1")
		e.putPool("overlap", map[string]any{"addresses": []any{"10.20.1.100/30"}})
		e.wantCondition("overlap", controller.ConditionValid, metav1.ConditionFalse, controller.ReasonConflict,
			"overlaps", `IPPool "internal"`)
		// Fixing the spec makes the pool valid, with usage.
		e.putPool("backwards", map[string]any{"addresses": []any{"10.20.3.1-10.20.3.9"}, "autoAssign": false})
		e.wantCondition("backwards", controller.ConditionValid, metav1.ConditionTrue, controller.ReasonAccepted)
		e.wantCondition("backwards", controller.ConditionExhausted, metav1.ConditionFalse, controller.ReasonNoServiceWaiting, "0 of 9")
		e.deletePool("overlap")
		e.deletePool("backwards")
	})

	t.Run("Exhaustion", func(t *testing.T) {
		e := e.sub(t)
		e.putPool("one", map[string]any{"addresses": []any{"10.20.2.10/32"}, "autoAssign": false})
		e.createService("one-a", annotate("lbd.dev/address-pool", "one"))
		e.wantIngress("one-a", "10.20.2.10")
		e.createService("one-b", annotate("metallb.io/address-pool", "one"))
		if msg := e.warning("one-b", controller.ReasonAllocationFailed); !strings.Contains(msg, "exhausted") {
			t.Errorf("AllocationFailed %q does not say the pool is exhausted", msg)
		}
		e.wantCondition("one", controller.ConditionExhausted, metav1.ConditionTrue, controller.ReasonServicesWaiting,
			"1 of 1 in use", "default/one-b")
		e.wantNoIngress("one-b")
		// Freeing the address resolves it, with no one acting.
		e.deleteService("one-a")
		e.wantIngress("one-b", "10.20.2.10")
		e.wantCondition("one", controller.ConditionExhausted, metav1.ConditionFalse, controller.ReasonNoServiceWaiting, "1 of 1")
		e.deleteService("one-b")
		e.deletePool("one")
	})

	t.Run("InternalNeverExternal", func(t *testing.T) {
		e := e.sub(t)
		e.createService("ext-holder", labels("lb-type", "external"), annotate("metallb.io/allow-shared-ip", "k1"), ports(443))
		var extIP string
		e.eventually("ext-holder address", func() (bool, string) {
			got := e.ingress("ext-holder")
			if len(got) == 1 {
				extIP = got[0]
			}
			return len(got) == 1, fmt.Sprintf("%q", got)
		})
		for _, tc := range []struct {
			name string
			opts []svcOpt
			want []string // in the AllocationFailed message
		}{
			{"by-spec-ip", []svcOpt{requestIP("10.20.1.200")}, []string{"10.20.1.200", "external", "lb-type"}},
			{"by-metallb-ips", []svcOpt{annotate("metallb.io/loadBalancerIPs", "10.20.1.201")}, []string{"10.20.1.201", "external"}},
			{"by-lbd-ips", []svcOpt{annotate("lbd.dev/loadBalancerIPs", "10.20.1.202")}, []string{"10.20.1.202", "external"}},
			{"by-metallb-pool", []svcOpt{annotate("metallb.io/address-pool", "external")}, []string{"external", "lb-type"}},
			{"by-lbd-pool", []svcOpt{annotate("lbd.dev/address-pool", "external")}, []string{"external", "lb-type"}},
			// Same sharing key as an external Service, asking for its
			// address, other ports: sharing would be allowed, the pool
			// is not.
			{"by-sharing", []svcOpt{annotate("metallb.io/allow-shared-ip", "k1"), requestIP(extIP), ports(80)}, []string{extIP, "external"}},
		} {
			e.createService("int-"+tc.name, tc.opts...)
			msg := e.warning("int-"+tc.name, controller.ReasonAllocationFailed)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s: AllocationFailed %q does not mention %q", tc.name, msg, w)
				}
			}
		}
		// The sharing key alone gets an internal address, never the
		// external one it shares a key with.
		e.createService("int-key-only", annotate("metallb.io/allow-shared-ip", "k1"), ports(80))
		e.eventually("int-key-only address", func() (bool, string) {
			got := e.ingress("int-key-only")
			return len(got) == 1, fmt.Sprintf("%q", got)
		})
		if got := e.ingress("int-key-only"); got[0] == extIP || !strings.HasPrefix(got[0], "10.20.1.") || lastOctet(got[0]) > 127 {
			t.Errorf("internal Service sharing a key with an external one got %s", got[0])
		}
		for _, tc := range []string{"by-spec-ip", "by-metallb-ips", "by-lbd-ips", "by-metallb-pool", "by-lbd-pool", "by-sharing"} {
			e.wantNoIngress("int-" + tc)
		}
	})

	t.Run("Sharing", func(t *testing.T) {
		e := e.sub(t)
		e.createService("share-a", annotate("lbd.dev/allow-shared-ip", "web"), ports(80))
		var ip string
		e.eventually("share-a address", func() (bool, string) {
			got := e.ingress("share-a")
			if len(got) == 1 {
				ip = got[0]
			}
			return len(got) == 1, fmt.Sprintf("%q", got)
		})
		e.createService("share-b", annotate("lbd.dev/allow-shared-ip", "web"), ports(443), requestIP(ip))
		e.wantIngress("share-b", ip)
		// Port 80 is taken on that address: refused, and told why.
		e.createService("share-c", annotate("lbd.dev/allow-shared-ip", "web"), ports(80), requestIP(ip))
		if msg := e.warning("share-c", controller.ReasonAllocationFailed); !strings.Contains(msg, "in use") || !strings.Contains(msg, ip) {
			t.Errorf("AllocationFailed %q does not say %s is in use", msg, ip)
		}
		// Without a common key the address is not shared at all.
		e.createService("share-d", ports(8080), requestIP(ip))
		if msg := e.warning("share-d", controller.ReasonAllocationFailed); !strings.Contains(msg, "in use") {
			t.Errorf("AllocationFailed %q does not say the address is in use", msg)
		}
		e.wantNoIngress("share-c")
		e.wantNoIngress("share-d")
		// Both holders gone: the refused one gets the address.
		e.deleteService("share-a")
		e.deleteService("share-b")
		e.wantIngress("share-c", ip)
	})

	t.Run("DualStack", func(t *testing.T) {
		e := e.sub(t)
		e.putPool("ds", map[string]any{"addresses": []any{"10.20.6.0/30", "fd00:20::/126"}, "autoAssign": false})
		e.createService("ds", annotate("lbd.dev/address-pool", "ds"), func(s *corev1.Service) {
			p := corev1.IPFamilyPolicyRequireDualStack
			s.Spec.IPFamilyPolicy = &p
		})
		e.wantIngress("ds", "10.20.6.0", "fd00:20::")
		e.createService("ds-v6", annotate("lbd.dev/address-pool", "ds"), func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		})
		e.wantIngress("ds-v6", "fd00:20::1")
	})

	t.Run("LoadBalancerClass", func(t *testing.T) {
		e := e.sub(t)
		e.createService("cls-ours", class("lbd.dev/lbd"))
		e.createService("cls-other", class("example.com/other-lb"))
		e.eventually("cls-ours address", func() (bool, string) {
			got := e.ingress("cls-ours")
			return len(got) == 1, fmt.Sprintf("%q", got)
		})
		e.barrier("cls-barrier")
		e.wantNoIngress("cls-other")
		// Another controller's status is left alone.
		e.setStatus("cls-other", "192.0.2.7")
		e.barrier("cls-barrier2")
		if got := e.ingress("cls-other"); !slices.Equal(got, []string{"192.0.2.7"}) {
			t.Errorf("other class's status became %q", got)
		}
		l, err := e.admin.CoreV1().Events(ns).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=cls-other"})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 0 {
			t.Errorf("lbd reported on a Service of another class: %+v", l.Items[0])
		}
	})

	t.Run("TypeChangeFrees", func(t *testing.T) {
		e := e.sub(t)
		e.putPool("tc", map[string]any{"addresses": []any{"10.20.7.1/32"}, "autoAssign": false})
		e.createService("tc-a", annotate("lbd.dev/address-pool", "tc"))
		e.wantIngress("tc-a", "10.20.7.1")
		e.createService("tc-b", annotate("lbd.dev/address-pool", "tc"))
		e.warning("tc-b", controller.ReasonAllocationFailed)
		e.update("tc-a", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
		})
		e.wantIngress("tc-a")
		e.wantIngress("tc-b", "10.20.7.1")
	})

	// Pool shrink and removal with live Services: they keep their
	// addresses (no silent move, no outage), get a Warning Event, and the
	// shrunk pool says so in a condition; nobody else is given those
	// addresses; a controller restart changes nothing; asking for another
	// address moves the Service.
	t.Run("PoolShrinkAndRemoval", func(t *testing.T) {
		e := e.sub(t)
		e.putPool("shrink", map[string]any{"addresses": []any{"10.20.8.1-10.20.8.4"}, "autoAssign": false})
		e.createService("sh-1", annotate("lbd.dev/address-pool", "shrink"))
		e.wantIngress("sh-1", "10.20.8.1")
		e.createService("sh-2", annotate("lbd.dev/address-pool", "shrink"))
		e.wantIngress("sh-2", "10.20.8.2")

		e.putPool("shrink", map[string]any{"addresses": []any{"10.20.8.1/32"}, "autoAssign": false})
		msg := e.warning("sh-2", controller.ReasonAddressOutsidePool)
		if !strings.Contains(msg, "10.20.8.2") {
			t.Errorf("AddressOutsidePool %q does not name the address", msg)
		}
		e.wantCondition("shrink", controller.ConditionStranded, metav1.ConditionTrue, controller.ReasonAddressesOutside,
			"default/sh-2 (10.20.8.2)")
		e.createService("sh-3", annotate("lbd.dev/address-pool", "shrink"))
		e.warning("sh-3", controller.ReasonAllocationFailed)
		e.wantIngress("sh-2", "10.20.8.2")
		e.wantNoIngress("sh-3")

		// Removed: both keep their addresses.
		e.deletePool("shrink")
		e.warning("sh-1", controller.ReasonAddressOutsidePool)
		e.barrier("sh-barrier")
		e.wantIngress("sh-1", "10.20.8.1")
		e.wantIngress("sh-2", "10.20.8.2")

		// A restart rebuilds from status: still nothing moves.
		stop()
		stop = e.startController("lbd-b")
		e.barrier("sh-barrier2")
		e.wantIngress("sh-1", "10.20.8.1")
		e.wantIngress("sh-2", "10.20.8.2")

		// The pool comes back: the addresses are its own again, and
		// the condition clears.
		e.putPool("shrink", map[string]any{"addresses": []any{"10.20.8.1-10.20.8.4"}, "autoAssign": false})
		e.wantIngress("sh-3", "10.20.8.3")
		e.wantCondition("shrink", controller.ConditionExhausted, metav1.ConditionFalse, controller.ReasonNoServiceWaiting, "3 of 4")

		// Asking for another address moves a stranded Service.
		e.putPool("shrink", map[string]any{"addresses": []any{"10.20.8.1/32", "10.20.8.3/32"}, "autoAssign": false})
		e.wantCondition("shrink", controller.ConditionStranded, metav1.ConditionTrue, controller.ReasonAddressesOutside,
			"default/sh-2 (10.20.8.2)")
		e.update("sh-2", func(s *corev1.Service) {
			delete(s.Annotations, "lbd.dev/address-pool")
			s.Spec.LoadBalancerIP = "10.20.1.99"
		})
		e.wantIngress("sh-2", "10.20.1.99")
		e.wantCondition("shrink", controller.ConditionStranded, metav1.ConditionFalse, controller.ReasonNoneOutside)
	})
}

// sub is e for a subtest: failures are reported on the subtest.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func lastOctet(ip string) int {
	var a, b, c, d int
	fmt.Sscanf(ip, "%d.%d.%d.%d", &a, &b, &c, &d)
	return d
}
