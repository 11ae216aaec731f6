// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lbd-project/lbd/pkg/model"
)

// TestConverterRevisions: a Converter gives a Service the same non-zero
// Revision while none of its objects (the Service, its namespace, its
// EndpointSlices) has a new resourceVersion, and another one as soon as
// one has, without touching the other Services' revisions. For, and any
// object without versions, give 0 (unknown).
func TestConverterRevisions(t *testing.T) {
	rv := 0
	bump := func(m *metav1.ObjectMeta) {
		rv++
		m.ResourceVersion = fmt.Sprint(rv)
	}
	var r Resources
	for i := range 3 {
		s := svc(fmt.Sprintf("s%d", i))
		s.UID = types.UID(fmt.Sprintf("svc-%d", i))
		bump(&s.ObjectMeta)
		r.Services = append(r.Services, s)
		es := slice(fmt.Sprintf("s%d-1", i), s.Name, discoveryv1.AddressTypeIPv4, httpPort, ep(fmt.Sprintf("10.241.0.%d", i+1)))
		es.UID = types.UID(fmt.Sprintf("es-%d", i))
		bump(&es.ObjectMeta)
		r.EndpointSlices = append(r.EndpointSlices, es)
	}
	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default", UID: "ns-default"}}
	bump(&ns.ObjectMeta)
	r.Namespaces = []corev1.Namespace{ns}

	c := NewConverter(Options{})
	revs := func() map[string]uint64 {
		t.Helper()
		st, err := c.For(r)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, s := range st.Services {
			out[s.Key.Name] = s.Revision
		}
		return out
	}
	// step applies a change and checks which services got a new revision.
	prev := revs()
	for _, name := range []string{"s0", "s1", "s2"} {
		if prev[name] == 0 {
			t.Fatalf("%s: revision 0 with every object versioned", name)
		}
	}
	step := func(what string, changed ...string) {
		t.Helper()
		cur := revs()
		for name, v := range cur {
			want := prev[name] != v
			got := false
			for _, c := range changed {
				got = got || c == name
			}
			if want != got {
				t.Errorf("%s: %s revision %x -> %x, changed=%v, want changed=%v", what, name, prev[name], v, want, got)
			}
			if v == 0 {
				t.Errorf("%s: %s revision 0", what, name)
			}
		}
		prev = cur
	}
	step("unchanged")
	r.Services[1].Spec.Ports[0].Port = 81
	bump(&r.Services[1].ObjectMeta)
	step("port changed", "s1")
	r.EndpointSlices[2].Endpoints[0].Addresses = []string{"10.241.0.99"}
	bump(&r.EndpointSlices[2].ObjectMeta)
	step("endpoint moved", "s2")
	extra := slice("s0-2", "s0", discoveryv1.AddressTypeIPv4, httpPort, ep("10.241.1.1"))
	extra.UID = "es-extra"
	bump(&extra.ObjectMeta)
	r.EndpointSlices = append(r.EndpointSlices, extra)
	step("slice added", "s0")
	r.EndpointSlices = r.EndpointSlices[:3]
	step("slice removed", "s0")
	r.Namespaces[0].Labels = map[string]string{"team": "b"}
	bump(&r.Namespaces[0].ObjectMeta)
	step("namespace relabelled", "s0", "s1", "s2")

	// Unversioned inputs: unknown.
	r.EndpointSlices[0].ResourceVersion = ""
	if got := revs()["s0"]; got != 0 {
		t.Errorf("slice without resourceVersion: revision %x, want 0", got)
	}
	st, err := For(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Services {
		if s.Revision != 0 {
			t.Errorf("For: %s revision %x, want 0", s.Key, s.Revision)
		}
	}
	if _, ok := st.Service(model.ServiceKey{Namespace: "default", Name: "s0"}); !ok {
		t.Fatal("s0 missing")
	}
}
