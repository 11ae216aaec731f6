// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
)

// FuzzPoolAddresses feeds arbitrary strings as an IPPool's addresses. Either
// the pool is accepted with well-formed ranges that contain what the
// string names, or it is rejected with a FieldError naming the IPPool, the
// field and the value; never a panic. Two disjoint CIDRs that net/netip
// reads as canonical (no host bits) must be accepted.
func FuzzPoolAddresses(f *testing.F) {
	for _, s := range []string{
		"10.20.1.1-10.20.1.127", "10.20.1.0/25", "fd00::/120", "fd00::1-fd00::ff", "10.0.0.1/32",
		"10.0.0.9-10.0.0.1", "10.0.0.1-fd00::1", "10.0.0.300/24", "::ffff:10.0.0.1/128", "fe80::1%eth0/64",
		"0.0.0.0/0", "::/0", " 10.0.0.0/8 ", "10.0.0.1-", "-", "/", "10.0.0.0/33", "1.2.3.4/-1", "",
	} {
		f.Add(s, "10.99.0.0/24")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.IPPoolSpec{Addresses: []string{a, b}}}
		st, err := For(Resources{Pools: []v1alpha1.IPPool{p}}, Options{})
		if st == nil {
			t.Fatal("nil State")
		}
		if err != nil {
			checkPoolErrors(t, err, []string{a, b})
			if len(st.Pools) != 0 {
				t.Errorf("rejected pool is in the State: %+v", st.Pools)
			}
			if prefixOK(a) && prefixOK(b) && !overlapping(a, b) {
				t.Errorf("CIDRs %q, %q rejected: %v", a, b, err)
			}
			return
		}
		if len(st.Pools) != 1 || len(st.Pools[0].Ranges) != 2 {
			t.Fatalf("accepted pool converted to %+v", st.Pools)
		}
		for i, r := range st.Pools[0].Ranges {
			if !r.First.IsValid() || r.First.BitLen() != r.Last.BitLen() || r.Last.Less(r.First) || r.First.Zone() != "" {
				t.Errorf("range %d of %q is malformed: %v-%v", i, []string{a, b}[i], r.First, r.Last)
			}
		}
		if pr, err := netip.ParsePrefix(strings.TrimSpace(a)); err == nil && !st.Pools[0].Ranges[0].Contains(pr.Masked().Addr()) {
			t.Errorf("range of %q does not contain %v", a, pr.Masked().Addr())
		}
	})
}

func prefixOK(s string) bool {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	// lbd refuses a CIDR with host bits set ("did you mean ...?").
	return err == nil && p.Addr().Zone() == "" && !p.Addr().Is4In6() && p == p.Masked()
}

func overlapping(a, b string) bool {
	pa, _ := netip.ParsePrefix(strings.TrimSpace(a))
	pb, _ := netip.ParsePrefix(strings.TrimSpace(b))
	return pa.Masked().Overlaps(pb.Masked())
}

// checkPoolErrors: every problem is a FieldError on IPPool "p" naming a
// spec field, and one about an address names the value as given.
func checkPoolErrors(t *testing.T, err error, values []string) {
	t.Helper()
	for _, e := range unjoin(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %q is not a FieldError", e)
		}
		if fe.Kind != v1alpha1.KindIPPool || fe.Name != "p" || !strings.HasPrefix(fe.Field, "spec.") || fe.Err == nil {
			t.Errorf("unclear error %+v: %q", fe, e)
		}
		if strings.HasPrefix(fe.Field, "spec.addresses[") && fe.Value != "" {
			found := false
			for _, v := range values {
				found = found || fe.Value == v
			}
			if !found {
				t.Errorf("error %q names value %q, not one given", e, fe.Value)
			}
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// FuzzSelector feeds arbitrary label selectors into a pool's
// serviceSelector. Either it converts, and then selects a Service exactly
// when Kubernetes' own selector does, or the pool is rejected with a
// FieldError on spec.serviceSelector; never a panic.
func FuzzSelector(f *testing.F) {
	f.Add("lb-type", "external", "lb-type", "In", "external", "lb-type", "external")
	f.Add("lb-type", "external", "lb-type", "NotIn", "external,internal", "lb-type", "internal")
	f.Add("a", "", "b", "Exists", "", "b", "")
	f.Add("a", "", "b", "DoesNotExist", "x", "a", "")
	f.Add("bad key!", "v", "k", "Near", "", "k", "v")
	f.Add("", "", "example.com/k", "In", "", "", "")
	f.Add("a/b/c", "v", "k", "In", "-bad-", "k", "-bad-")
	f.Fuzz(func(t *testing.T, mk, mv, ek, op, vals, lk, lv string) {
		var values []string
		if vals != "" {
			values = strings.Split(vals, ",")
		}
		sel := &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: ek, Operator: metav1.LabelSelectorOperator(op), Values: values}},
		}
		if mk != "" {
			sel.MatchLabels = map[string]string{mk: mv}
		}
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: v1alpha1.IPPoolSpec{
			Addresses: []string{"10.0.0.0/24"}, ServiceSelector: sel,
		}}
		st, err := For(Resources{Pools: []v1alpha1.IPPool{p}}, Options{})
		want, kerr := metav1.LabelSelectorAsSelector(sel)
		if (err == nil) != (kerr == nil) {
			t.Fatalf("lbd says %v, Kubernetes says %v", err, kerr)
		}
		if err != nil {
			checkPoolErrors(t, err, nil)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "spec.serviceSelector" {
				t.Errorf("selector error %q is not on spec.serviceSelector", err)
			}
			return
		}
		labels := map[string]string{lk: lv}
		if got := st.Pools[0].ServiceSelector.Matches(labels); got != want.Matches(mapLabels(labels)) {
			t.Errorf("selector %v on %v: lbd %v, Kubernetes %v", sel, labels, got, !got)
		}
	})
}

type mapLabels map[string]string

func (m mapLabels) Has(k string) bool              { _, ok := m[k]; return ok }
func (m mapLabels) Get(k string) string            { return m[k] }
func (m mapLabels) Lookup(k string) (string, bool) { v, ok := m[k]; return v, ok }

// FuzzService feeds a Service's free-form inputs (annotations for requested
// addresses, pool and sharing key, spec.loadBalancerIP, an ingress
// address): the Service converts or is rejected with a FieldError naming
// it; never a panic.
func FuzzService(f *testing.F) {
	f.Add("10.20.1.5", "10.20.1.6,fd00::1", "internal", "key", "10.20.1.7", "RequireDualStack")
	f.Add("10.20.1.300", "", "", "", "", "SingleStack")
	f.Add("", "fd00::1,fd00::2", "x", "", "not-an-ip", "PreferDualStack")
	f.Add("::ffff:1.2.3.4", "1.2.3.4 , ", "", "", "fe80::1%eth0", "Bogus")
	f.Fuzz(func(t *testing.T, lbIP, ipsAnn, pool, key, ingress, policy string) {
		pol := corev1.IPFamilyPolicy(policy)
		svc := corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s", Annotations: map[string]string{
				AnnotationLoadBalancerIPs: ipsAnn, AnnotationAddressPool: pool, AnnotationAllowSharedIP: key,
			}},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerIP: lbIP, IPFamilyPolicy: &pol,
				Ports: []corev1.ServicePort{{Port: 80}},
			},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ingress}}}},
		}
		st, err := For(Resources{Services: []corev1.Service{svc}}, Options{})
		if st == nil {
			t.Fatal("nil State")
		}
		for _, e := range unjoin(err) {
			if e == nil {
				continue
			}
			var fe *FieldError
			if !errors.As(e, &fe) || fe.Kind != "Service" || fe.Name != "s" || fe.Err == nil {
				t.Errorf("unclear error %q", e)
			}
		}
		if err == nil && len(st.Services) != 1 {
			t.Errorf("valid Service left out")
		}
		if err != nil && len(st.Services) != 0 {
			t.Errorf("invalid Service kept: %+v", st.Services)
		}
		for _, s := range st.Services {
			for _, a := range append(append([]netip.Addr{}, s.RequestedIPs...), s.VIPs...) {
				if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
					t.Errorf("Service kept malformed address %v", a)
				}
			}
		}
	})
}
