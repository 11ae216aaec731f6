// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lbd-project/lbd/pkg/model"
)

// TestConverterMatchesFor runs a Converter through a series of changes
// (spec, status, endpoints, namespace labels, invalid objects, deletions)
// and checks that after each it says exactly what For says, errors
// included, and that it did not convert unchanged objects again.
func TestConverterMatchesFor(t *testing.T) {
	rv := 0
	bump := func(m *metav1.ObjectMeta) {
		rv++
		m.ResourceVersion = fmt.Sprint(rv)
	}
	withUID := func(m *metav1.ObjectMeta, uid string) {
		m.UID = types.UID(uid)
		bump(m)
	}
	var r Resources
	for i := range 4 {
		s := svc(fmt.Sprintf("s%d", i), annotate(AnnotationAllowSharedIP, "k"))
		withUID(&s.ObjectMeta, fmt.Sprintf("svc-%d", i))
		r.Services = append(r.Services, s)
		es := slice(fmt.Sprintf("s%d-1", i), s.Name, discoveryv1.AddressTypeIPv4, httpPort, ep(fmt.Sprintf("10.241.0.%d", i+1)))
		withUID(&es.ObjectMeta, fmt.Sprintf("es-%d", i))
		r.EndpointSlices = append(r.EndpointSlices, es)
	}
	bad := svc("bad", annotate(AnnotationLoadBalancerIPs, "10.0.0.300"))
	withUID(&bad.ObjectMeta, "svc-bad")
	r.Services = append(r.Services, bad)
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "a"}}}
	withUID(&ns.ObjectMeta, "ns-default")
	r.Namespaces = []corev1.Namespace{ns}

	c := NewConverter(Options{})
	check := func(step string) {
		t.Helper()
		want, wantErr := For(r, Options{})
		got, gotErr := c.For(r)
		// Revisions are the Converter's own (TestConverterRevisions).
		if diff := cmp.Diff(want, got, cmpOpts, cmpopts.IgnoreFields(model.Service{}, "Revision")); diff != "" {
			t.Errorf("%s: State (-For +Converter):\n%s", step, diff)
		}
		if diff := cmp.Diff(errStrings(t, wantErr), errStrings(t, gotErr), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: errors (-For +Converter):\n%s", step, diff)
		}
	}
	check("first")
	check("unchanged")
	if len(c.svcs) != 5 || len(c.slices) != 4 {
		t.Errorf("remembers %d Services and %d slices, want 5 and 4", len(c.svcs), len(c.slices))
	}

	r.Services[1].Spec.Ports[0].Port = 81
	bump(&r.Services[1].ObjectMeta)
	check("port changed")

	r.Services[2].Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.20.1.7"}}
	bump(&r.Services[2].ObjectMeta)
	check("status written")

	r.EndpointSlices[3].Endpoints[0].Addresses = []string{"10.241.0.99"}
	bump(&r.EndpointSlices[3].ObjectMeta)
	check("endpoint moved")

	r.Namespaces[0].Labels = map[string]string{"team": "b"}
	bump(&r.Namespaces[0].ObjectMeta)
	check("namespace relabelled")

	r.Services[4].Annotations[AnnotationLoadBalancerIPs] = "10.0.0.3"
	bump(&r.Services[4].ObjectMeta)
	check("invalid Service fixed")

	r.Services = r.Services[1:]
	r.EndpointSlices = r.EndpointSlices[1:]
	check("deleted")
	if len(c.svcs) != 4 || len(c.slices) != 3 {
		t.Errorf("after deletes remembers %d Services and %d slices, want 4 and 3", len(c.svcs), len(c.slices))
	}

	// An object without resourceVersion (static manifests) is always
	// converted, never remembered.
	r.Services[0].ResourceVersion = ""
	r.Services[0].Spec.Ports[0].Port = 82
	check("no resourceVersion")
}

// TestSliceOrderIrrelevant: slices are merged in whatever order the
// informer lists them; the State and the errors must not depend on it,
// including when two slices disagree about an address's node.
func TestSliceOrderIrrelevant(t *testing.T) {
	onNode := func(n string) func(*discoveryv1.Endpoint) {
		return func(e *discoveryv1.Endpoint) { e.NodeName = &n }
	}
	in := []discoveryv1.EndpointSlice{
		slice("a-1", "a", discoveryv1.AddressTypeIPv4, httpPort, ep("10.241.0.1", onNode("node2"))),
		slice("a-2", "a", discoveryv1.AddressTypeIPv4, httpPort, ep("10.241.0.1", onNode("node1")), ep("10.241.0.2")),
		slice("a-3", "a", discoveryv1.AddressTypeIPv4, httpPort, ep("fd00::1")),
		slice("a-0", "a", discoveryv1.AddressTypeIPv4, httpPort, ep("bogus")),
	}
	r := Resources{Services: []corev1.Service{svc("a")}, EndpointSlices: in}
	want, wantErr := For(r, Options{})
	rev := slices.Clone(in)
	slices.Reverse(rev)
	r.EndpointSlices = rev
	got, gotErr := For(r, Options{})
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("State depends on slice order (-forward +reversed):\n%s", diff)
	}
	if diff := cmp.Diff(errStrings(t, wantErr), errStrings(t, gotErr)); diff != "" {
		t.Errorf("errors depend on slice order (-forward +reversed):\n%s", diff)
	}
	if s, _ := got.Service(model.ServiceKey{Namespace: "default", Name: "a"}); len(s.Endpoints) == 0 || s.Endpoints[0].NodeName != "node1" {
		t.Errorf("endpoints %+v: want 10.241.0.1 on node1 (the smaller name)", s.Endpoints)
	}
	if len(errStrings(t, wantErr)) != 2 {
		t.Errorf("errors %q: want one for a-0 and one for a-3", errStrings(t, wantErr))
	}
}
