// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

// ManifestNode is a Node of the manifest.
type ManifestNode struct {
	Name string
	IP   netip.Addr
}

// PoolRanges are the bench pool's ranges: the lab's VIP range and the
// fillers' range.
var PoolRanges = []string{"10.20.1.0/24", "10.30.0.0/18"}

// Manifest returns a multi-document manifest for "lbd run --manifests":
// nodes, one pool, and one LoadBalancer Service (with spec.loadBalancerIP)
// plus one EndpointSlice per distinct Service of svcs. Entries of svcs with
// the same namespace and name are ports of one Service (same VIP). The
// documents are JSON, which is YAML, and much faster to write and read at
// 10 000 services.
func Manifest(nodes []ManifestNode, svcs []Service) ([]byte, error) {
	var docs []any
	for _, n := range nodes {
		docs = append(docs, &corev1.Node{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{"kubernetes.io/hostname": n.Name}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IP.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			}},
		})
	}
	docs = append(docs, &v1alpha1.IPPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindIPPool},
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec:       v1alpha1.IPPoolSpec{Addresses: PoolRanges},
	})
	type group struct {
		first Service
		ports []Service
	}
	var order []model.ServiceKey
	groups := map[model.ServiceKey]*group{}
	for _, s := range svcs {
		g, ok := groups[s.Key()]
		if !ok {
			g = &group{first: s}
			groups[s.Key()] = g
			order = append(order, s.Key())
		}
		if s.VIP != g.first.VIP {
			return nil, fmt.Errorf("build manifest: service %s has two VIPs", s.Key())
		}
		g.ports = append(g.ports, s)
	}
	for _, k := range order {
		g := groups[k]
		svc := &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name},
			Spec: corev1.ServiceSpec{
				Type:                  corev1.ServiceTypeLoadBalancer,
				LoadBalancerIP:        g.first.VIP.String(),
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			},
		}
		es := &discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{
				Namespace: k.Namespace, Name: k.Name + "-bench",
				Labels: map[string]string{discoveryv1.LabelServiceName: k.Name},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		// Endpoints by address; a port of the Service adds its port to
		// the slice. The bench's services use one target port per
		// service port on every backend.
		eps := map[netip.Addr]int{}
		for _, p := range g.ports {
			proto := corev1.ProtocolTCP
			if p.Proto == model.UDP {
				proto = corev1.ProtocolUDP
			}
			svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
				Name: p.PortName, Protocol: proto, Port: int32(p.Port),
				TargetPort: intstr.FromInt32(int32(p.Backends[0].Port())),
			})
			es.Ports = append(es.Ports, discoveryv1.EndpointPort{
				Name: new(p.PortName), Protocol: new(proto), Port: new(int32(p.Backends[0].Port())),
			})
			for i, b := range p.Backends {
				if _, ok := eps[b.Addr()]; ok {
					continue
				}
				eps[b.Addr()] = len(es.Endpoints)
				es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{b.Addr().String()},
					Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
					NodeName:   new(p.Nodes[i]),
				})
			}
		}
		docs = append(docs, svc, es)
	}
	var buf bytes.Buffer
	for i, d := range docs {
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("marshal manifest document %d: %w", i, err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}
