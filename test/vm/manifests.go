// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
)

// Services and pools the lab's manifest defines.
const (
	ServiceInternal = "default/web-internal"
	ServiceExternal = "default/web-external"
	PoolInternal    = "internal"
	PoolExternal    = "external"
	// LBTypeLabel selects the external pool.
	LBTypeLabel = "lb-type"
)

// Service ports.
const (
	ServiceHTTPPort = 80
	ServiceUDPPort  = 53
)

// Pool ranges; the first address of each is what a fresh lab allocates.
var (
	InternalRange = [2]netip.Addr{netip.MustParseAddr("10.20.1.1"), netip.MustParseAddr("10.20.1.127")}
	ExternalRange = [2]netip.Addr{netip.MustParseAddr("10.20.1.128"), netip.MustParseAddr("10.20.1.254")}
)

// Manifests returns the lab's desired state as one multi-document YAML:
// Nodes, the internal and external IPPools, the two Services and their
// EndpointSlices listing every pod as ready.
func (l *Lab) Manifests() ([]byte, error) {
	objs := append(l.LabDocs().objects(), l.dualStackDocs()...) // none unless Options.IPv6
	return marshalDocs(objs)
}

// marshalDocs renders objects as one multi-document YAML.
func marshalDocs(objs []any) ([]byte, error) {
	var buf bytes.Buffer
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("marshal manifest %d: %w", i, err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.Bytes(), nil
}

func (l *Lab) writeManifests() error {
	b, err := l.Manifests()
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.Manifest, b, 0o644); err != nil {
		return fmt.Errorf("write manifests: %w", err)
	}
	return nil
}

func pool(name string, r [2]netip.Addr, sel *metav1.LabelSelector, prio int) *v1alpha1.IPPool {
	return &v1alpha1.IPPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindIPPool},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.IPPoolSpec{
			Addresses:       []string{r[0].String() + "-" + r[1].String()},
			ServiceSelector: sel,
			Priority:        prio,
		},
	}
}

func service(name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			Selector:              map[string]string{"app": "web"},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
			Ports: []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: ServiceHTTPPort, TargetPort: intstr.FromInt32(PodHTTPPort)},
				{Name: "dns", Protocol: corev1.ProtocolUDP, Port: ServiceUDPPort, TargetPort: intstr.FromInt32(PodUDPPort)},
			},
		},
	}
}

func (l *Lab) endpointSlice(svc string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default",
			Name:      svc + "-lab",
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc,
				discoveryv1.LabelManagedBy:   "lbd-lab",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: new("http"), Protocol: new(corev1.ProtocolTCP), Port: new(int32(PodHTTPPort))},
			{Name: new("dns"), Protocol: new(corev1.ProtocolUDP), Port: new(int32(PodUDPPort))},
		},
	}
	for _, p := range l.Pods() {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.IP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)},
			NodeName:   new(p.Node.Name),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: p.Name},
		})
	}
	return es
}
