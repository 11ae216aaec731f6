// SPDX-License-Identifier: Apache-2.0

package config

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

func richResources() Resources {
	v4 := discoveryv1.AddressTypeIPv4
	inNS := func(ns string, s corev1.Service) corev1.Service { s.Namespace = ns; return s }
	return Resources{
		Nodes: []corev1.Node{
			node("c", nil, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.20.0.53"}),
			node("a", nil, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.20.0.51"}),
			node("b", nil, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.20.0.52"}),
		},
		Services: []corev1.Service{svc("web"), svc("api"), inNS("a-ns", svc("web")), svc("dns")},
		EndpointSlices: []discoveryv1.EndpointSlice{
			slice("web-2", "web", v4, httpPort,
				ep("10.241.0.9", func(e *discoveryv1.Endpoint) { e.NodeName = ptr("b") }), ep("10.241.0.1")),
			slice("web-1", "web", v4, httpPort,
				ep("10.241.0.9", func(e *discoveryv1.Endpoint) { e.NodeName = ptr("a") }), ep("10.241.0.5")),
			slice("api-1", "api", v4, httpPort, ep("10.241.1.3"), ep("10.241.1.2")),
		},
		Namespaces: []corev1.Namespace{
			{ObjectMeta: metav1.ObjectMeta{Name: "a-ns", Labels: map[string]string{"x": "y"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		},
		Pools: []v1alpha1.IPPool{
			pool("zeta", "10.20.1.0/24"),
			pool("alpha", "10.20.1.100-10.20.1.110"),
			pool("mid", "10.20.2.0/24"),
		},
		Announcements: []v1alpha1.L2Announcement{
			{ObjectMeta: metav1.ObjectMeta{Name: "z"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		},
	}
}

func shuffled[T any](r *rand.Rand, s []T) []T {
	s = slices.Clone(s)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

// TestOrderIndependent checks that every node computes the same State from
// the same objects listed in any order, and that the State is sorted.
func TestOrderIndependent(t *testing.T) {
	base := richResources()
	want, wantErr := For(base, Options{})
	if wantErr == nil {
		t.Fatal("want the zeta/alpha overlap reported")
	}
	names := func(st *model.State) [][]string {
		var p, n, s, a []string
		for _, x := range st.Pools {
			p = append(p, x.Name)
		}
		for _, x := range st.Nodes {
			n = append(n, x.Name)
		}
		for _, x := range st.Services {
			s = append(s, x.Key.String())
		}
		for _, x := range st.Announcements {
			a = append(a, x.Name)
		}
		return [][]string{p, n, s, a}
	}
	wantNames := [][]string{
		{"alpha", "mid"},
		{"a", "b", "c"},
		{"a-ns/web", "default/api", "default/dns", "default/web"},
		{"a", "z"},
	}
	if diff := cmp.Diff(wantNames, names(want)); diff != "" {
		t.Fatalf("State not sorted (-want +got):\n%s", diff)
	}
	web, _ := want.Service(model.ServiceKey{Namespace: "default", Name: "web"})
	var addrs []string
	for _, e := range web.Endpoints {
		addrs = append(addrs, e.Addr.String()+"@"+e.NodeName)
	}
	// 10.241.0.9 is in both slices; web-1 sorts first, so its node wins.
	if diff := cmp.Diff([]string{"10.241.0.1@", "10.241.0.5@", "10.241.0.9@a"}, addrs); diff != "" {
		t.Errorf("endpoints of default/web (-want +got):\n%s", diff)
	}

	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		in := Resources{
			Nodes:          shuffled(r, base.Nodes),
			Services:       shuffled(r, base.Services),
			EndpointSlices: shuffled(r, base.EndpointSlices),
			Namespaces:     shuffled(r, base.Namespaces),
			Pools:          shuffled(r, base.Pools),
			Announcements:  shuffled(r, base.Announcements),
		}
		got, err := For(in, Options{})
		if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
			t.Fatalf("permutation %d: state differs (-want +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(errStrings(t, wantErr), errStrings(t, err)); diff != "" {
			t.Fatalf("permutation %d: errors differ (-want +got):\n%s", i, diff)
		}
	}
}

// TestPartialState checks the error contract: the State holds every valid
// object and the error names every invalid one.
func TestPartialState(t *testing.T) {
	res := Resources{
		Pools:      []v1alpha1.IPPool{pool("good", "10.20.1.0/24"), pool("bad", "nope")},
		Services:   []corev1.Service{svc("good"), svc("bad", func(s *corev1.Service) { s.Spec.Ports[0].Port = -1 })},
		Namespaces: []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, {ObjectMeta: metav1.ObjectMeta{Name: "x"}}},
	}
	st, err := For(res, Options{})
	want := &model.State{Pools: []model.Pool{mpool("good", "10.20.1.0/24")}, Services: []model.Service{msvc("good")}}
	if diff := cmp.Diff(want, st, cmpOpts); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	wantErr := []string{
		`IPPool "bad": spec.addresses[0]: "nope": want a CIDR (10.20.1.0/25) or a range (10.20.1.1-10.20.1.127)`,
		`Namespace "x": metadata.name: duplicate object`,
		`Service "default/bad": spec.ports[0].port: "-1": port must be between 1 and 65535`,
	}
	if diff := cmp.Diff(wantErr, errStrings(t, err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
