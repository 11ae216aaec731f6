// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/source/static"
)

// plannedLab returns a lab with names and addresses planned and nothing
// created.
func plannedLab(t *testing.T) *Lab {
	t.Helper()
	l := &Lab{Prefix: "lbd-0000"}
	if err := l.opts.setDefaults(); err != nil {
		t.Fatal(err)
	}
	l.plan()
	return l
}

func TestManifests(t *testing.T) {
	l := plannedLab(t)
	b, err := l.Manifests()
	if err != nil {
		t.Fatal(err)
	}
	var (
		nodes     = map[string]string{} // name -> InternalIP
		pools     = map[string]v1alpha1.IPPool{}
		services  = map[string]corev1.Service{}
		endpoints = map[string][]string{} // service -> "pod ip node"
	)
	for _, doc := range strings.Split(string(b), "---\n")[1:] {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("unmarshal type of %q: %v", doc, err)
		}
		// Strict decoding into the real types: an unknown or misspelt
		// field fails here, before lbd ever sees it.
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Node":
			var n corev1.Node
			if err := yaml.UnmarshalStrict([]byte(doc), &n); err != nil {
				t.Fatal(err)
			}
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					nodes[n.Name] = a.Address
				}
			}
		case v1alpha1.GroupVersion.String() + " " + v1alpha1.KindIPPool:
			var p v1alpha1.IPPool
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				t.Fatal(err)
			}
			pools[p.Name] = p
		case "v1 Service":
			var s corev1.Service
			if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
				t.Fatal(err)
			}
			services[s.Namespace+"/"+s.Name] = s
		case "discovery.k8s.io/v1 EndpointSlice":
			var es discoveryv1.EndpointSlice
			if err := yaml.UnmarshalStrict([]byte(doc), &es); err != nil {
				t.Fatal(err)
			}
			svc := es.Namespace + "/" + es.Labels[discoveryv1.LabelServiceName]
			if diff := cmp.Diff(`[{"name":"http","protocol":"TCP","port":8080},{"name":"dns","protocol":"UDP","port":9000}]`, mustJSON(t, es.Ports)); diff != "" {
				t.Errorf("%s ports (-want +got):\n%s", es.Name, diff)
			}
			for _, e := range es.Endpoints {
				if e.Conditions.Ready == nil || !*e.Conditions.Ready {
					t.Errorf("%s: endpoint %v not ready", es.Name, e.Addresses)
				}
				endpoints[svc] = append(endpoints[svc], e.TargetRef.Name+" "+e.Addresses[0]+" "+*e.NodeName)
			}
		default:
			t.Errorf("unexpected document %s %s", tm.APIVersion, tm.Kind)
		}
	}

	if diff := cmp.Diff(map[string]string{"node1": "10.20.0.51", "node2": "10.20.0.52", "node3": "10.20.0.53"}, nodes); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	wantPools := map[string]string{
		"internal": `{"addresses":["10.20.1.1-10.20.1.127"],"serviceSelector":{"matchExpressions":[{"key":"lb-type","operator":"NotIn","values":["external"]}]}}`,
		"external": `{"addresses":["10.20.1.128-10.20.1.254"],"serviceSelector":{"matchLabels":{"lb-type":"external"}},"priority":10}`,
	}
	gotPools := map[string]string{}
	for n, p := range pools {
		gotPools[n] = mustJSON(t, p.Spec)
	}
	if diff := cmp.Diff(wantPools, gotPools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	for _, name := range []string{ServiceInternal, ServiceExternal} {
		s, ok := services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			t.Errorf("%s type %s", name, s.Spec.Type)
		}
		if diff := cmp.Diff(`[{"name":"http","protocol":"TCP","port":80,"targetPort":8080},{"name":"dns","protocol":"UDP","port":53,"targetPort":9000}]`, mustJSON(t, s.Spec.Ports)); diff != "" {
			t.Errorf("%s ports (-want +got):\n%s", name, diff)
		}
		want := []string{
			"node1-pod1 10.241.1.11 node1", "node1-pod2 10.241.1.12 node1",
			"node2-pod1 10.241.2.11 node2", "node2-pod2 10.241.2.12 node2",
			"node3-pod1 10.241.3.11 node3", "node3-pod2 10.241.3.12 node3",
		}
		if diff := cmp.Diff(want, endpoints[name]); diff != "" {
			t.Errorf("%s endpoints (-want +got):\n%s", name, diff)
		}
	}
	if got := services[ServiceExternal].Labels[LBTypeLabel]; got != "external" {
		t.Errorf("%s label %s = %q, want external", ServiceExternal, LBTypeLabel, got)
	}
	if got, ok := services[ServiceInternal].Labels[LBTypeLabel]; ok {
		t.Errorf("%s has label %s=%q, want none", ServiceInternal, LBTypeLabel, got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPlan(t *testing.T) {
	l := plannedLab(t)
	var got []string
	for _, n := range l.Nodes {
		got = append(got, strings.Join([]string{n.Name, n.NetNS, n.IP.String(), n.MAC.String(), n.PinDir}, " "))
		for _, p := range n.Pods {
			got = append(got, strings.Join([]string{"  " + p.Name, p.NetNS, p.IP.String(), p.HostVeth}, " "))
		}
	}
	for _, c := range l.Clients {
		got = append(got, strings.Join([]string{c.Name, c.NetNS, c.IP.String(), c.MAC.String()}, " "))
	}
	want := []string{
		"node1 lbd-0000-n1 10.20.0.51 02:00:0a:14:00:33 /sys/fs/bpf/lbd-0000-node1",
		"  node1-pod1 lbd-0000-n1p1 10.241.1.11 p1-1",
		"  node1-pod2 lbd-0000-n1p2 10.241.1.12 p1-2",
		"node2 lbd-0000-n2 10.20.0.52 02:00:0a:14:00:34 /sys/fs/bpf/lbd-0000-node2",
		"  node2-pod1 lbd-0000-n2p1 10.241.2.11 p2-1",
		"  node2-pod2 lbd-0000-n2p2 10.241.2.12 p2-2",
		"node3 lbd-0000-n3 10.20.0.53 02:00:0a:14:00:35 /sys/fs/bpf/lbd-0000-node3",
		"  node3-pod1 lbd-0000-n3p1 10.241.3.11 p3-1",
		"  node3-pod2 lbd-0000-n3p2 10.241.3.12 p3-2",
		"client1 lbd-0000-c1 10.20.0.200 02:00:0a:14:00:c8",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	for _, n := range append(append([]string{}, want...), "lbd-0000-sw") {
		if f := strings.Fields(n); len(f) > 1 && !nsNameRE.MatchString(f[1]) {
			t.Errorf("namespace %s does not match the lab pattern", f[1])
		}
	}
}

func TestCheckTarget(t *testing.T) {
	for addr, ok := range map[string]bool{
		"10.20.0.51":  true,
		"10.20.1.128": true,
		"10.20.3.255": true,
		"10.241.2.11": true,
		"10.20.4.1":   false,
		"10.242.0.1":  false,
		"127.0.0.1":   false,
		"192.0.2.1":   false,
		"8.8.8.8":     false,
	} {
		err := checkTarget(mustAddr(t, addr))
		if (err == nil) != ok {
			t.Errorf("checkTarget(%s) = %v, want allowed=%v", addr, err, ok)
		}
	}
}

// TestManifestsLoad feeds the manifest through the daemon's own static
// loader and converter, so a change on either side that breaks the lab
// shows up here rather than as a daemon that will not start.
func TestManifestsLoad(t *testing.T) {
	l := plannedLab(t)
	b, err := l.Manifests()
	if err != nil {
		t.Fatal(err)
	}
	res, err := static.LoadBytes("lab manifest", b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := config.For(res, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type pool struct {
		Name     string
		Ranges   string
		Priority int
		Internal bool // selects a service without labels
		External bool // selects a service labelled lb-type: external
	}
	var gotPools []pool
	for _, p := range st.Pools {
		var rs []string
		for _, r := range p.Ranges {
			rs = append(rs, r.String())
		}
		sel := func(labels map[string]string) bool {
			return p.ServiceSelector == nil || p.ServiceSelector.Matches(labels)
		}
		gotPools = append(gotPools, pool{p.Name, strings.Join(rs, ","), p.Priority,
			sel(nil), sel(map[string]string{LBTypeLabel: "external"})})
	}
	wantPools := []pool{
		{"external", "10.20.1.128-10.20.1.254", 10, false, true},
		{"internal", "10.20.1.1-10.20.1.127", 0, true, false},
	}
	if diff := cmp.Diff(wantPools, gotPools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
	var gotSvcs []string
	for _, s := range st.Services {
		line := s.Key.String() + " " + s.TrafficPolicy.String()
		for _, p := range s.Ports {
			line += fmt.Sprintf(" %s:%d/%s", p.Name, p.Port, p.Protocol)
		}
		ready := 0
		for _, e := range s.Endpoints {
			if e.Ready {
				ready++
			}
		}
		line += fmt.Sprintf(" ready=%d", ready)
		gotSvcs = append(gotSvcs, line)
	}
	wantSvcs := []string{
		"default/web-external Cluster http:80/TCP dns:53/UDP ready=6",
		"default/web-internal Cluster http:80/TCP dns:53/UDP ready=6",
	}
	if diff := cmp.Diff(wantSvcs, gotSvcs); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if got := len(st.Nodes); got != 3 {
		t.Errorf("%d nodes, want 3", got)
	}
}
