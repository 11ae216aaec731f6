// SPDX-License-Identifier: Apache-2.0

package config

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/lbd-project/lbd/pkg/model"
)

func mep(addr string, mut ...func(*model.Endpoint)) model.Endpoint {
	e := model.Endpoint{Addr: ip(addr), Ready: true, Serving: true, Ports: mHTTPPort}
	for _, m := range mut {
		m(&e)
	}
	return e
}

func withEndpoints(eps ...model.Endpoint) func(*model.Service) {
	return func(s *model.Service) { s.Endpoints = eps }
}

func TestEndpoints(t *testing.T) {
	onNode := func(n string) func(*discoveryv1.Endpoint) {
		return func(e *discoveryv1.Endpoint) { e.NodeName = ptr(n) }
	}
	cond := func(ready, serving, terminating *bool) func(*discoveryv1.Endpoint) {
		return func(e *discoveryv1.Endpoint) {
			e.Conditions = discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}
		}
	}
	v4, v6 := discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6
	runConv(t, []convTest{
		{
			name: "joined by service-name label in the same namespace",
			res: Resources{
				Services: []corev1.Service{svc("web"), svc("api"), svc("cip", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeClusterIP
				})},
				EndpointSlices: []discoveryv1.EndpointSlice{
					slice("web-1", "web", v4, httpPort, ep("10.241.0.2", onNode("n1"))),
					slice("api-1", "api", v4, httpPort, ep("10.241.0.9")),
					func() discoveryv1.EndpointSlice {
						s := slice("web-other-ns", "web", v4, httpPort, ep("10.241.9.9"))
						s.Namespace = "other"
						return s
					}(),
					func() discoveryv1.EndpointSlice {
						s := slice("unlabelled", "web", v4, httpPort, ep("10.241.8.8"))
						s.Labels = nil
						return s
					}(),
					// Not lbd's: a broken slice of a ClusterIP Service is no error.
					slice("cip-1", "cip", v4, httpPort, ep("not-an-ip")),
					slice("gone-1", "gone", v4, httpPort, ep("10.241.7.7")),
				},
			},
			want: services(
				msvc("api", withEndpoints(mep("10.241.0.9"))),
				msvc("web", withEndpoints(mep("10.241.0.2", func(e *model.Endpoint) { e.NodeName = "n1" }))),
			),
		},
		{
			name: "merged across slices, deduplicated, sorted",
			res: Resources{
				Services: []corev1.Service{svc("web")},
				EndpointSlices: []discoveryv1.EndpointSlice{
					slice("web-b", "web", v4, httpPort,
						ep("10.241.0.30", onNode("n3")),
						ep("10.241.0.4", onNode("n1"), cond(ptr(false), ptr(false), ptr(true)))),
					slice("web-a", "web", v4, []discoveryv1.EndpointPort{{Name: ptr("metrics"), Port: ptr[int32](9090)}},
						ep("10.241.0.4", cond(ptr(true), nil, ptr(false)))),
					slice("web-v6", "web", v6, httpPort, ep("fd00:241::1", onNode("n2"))),
				},
			},
			want: services(msvc("web", withEndpoints(
				mep("10.241.0.4", func(e *model.Endpoint) {
					e.NodeName = "n1"
					// One copy ready and not terminating wins: the
					// address is one backend.
					e.Ports = []model.EndpointPort{
						{Name: "http", Port: 8080, Protocol: model.TCP},
						{Name: "metrics", Port: 9090, Protocol: model.TCP},
					}
				}),
				mep("10.241.0.30", func(e *model.Endpoint) { e.NodeName = "n3" }),
				mep("fd00:241::1", func(e *model.Endpoint) { e.NodeName = "n2" }),
			))),
		},
		{
			name: "conditions",
			res: Resources{
				Services: []corev1.Service{svc("web")},
				EndpointSlices: []discoveryv1.EndpointSlice{slice("web-1", "web", v4, httpPort,
					ep("10.241.0.1"), // all nil: ready, serving, not terminating
					ep("10.241.0.2", cond(ptr(false), nil, nil)),              // serving follows ready
					ep("10.241.0.3", cond(ptr(false), ptr(true), ptr(true))),  // terminating, still serving
					ep("10.241.0.4", cond(ptr(true), ptr(true), ptr(false))),  // explicit
					ep("10.241.0.5", cond(ptr(false), ptr(false), ptr(true))), // gone
				)},
			},
			want: services(msvc("web", withEndpoints(
				mep("10.241.0.1"),
				mep("10.241.0.2", func(e *model.Endpoint) { e.Ready, e.Serving = false, false }),
				mep("10.241.0.3", func(e *model.Endpoint) { e.Ready, e.Terminating = false, true }),
				mep("10.241.0.4"),
				mep("10.241.0.5", func(e *model.Endpoint) { e.Ready, e.Serving, e.Terminating = false, false, true }),
			))),
		},
		{
			name: "ports",
			res: Resources{
				Services: []corev1.Service{svc("web")},
				EndpointSlices: []discoveryv1.EndpointSlice{slice("web-1", "web", v4, []discoveryv1.EndpointPort{
					{Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(corev1.ProtocolTCP)},
					{Name: ptr("dns"), Port: ptr[int32](5353), Protocol: ptr(corev1.ProtocolUDP)},
					{Port: ptr[int32](7000)}, // no name, no protocol: "" and TCP
					{Name: ptr("any")},       // no port: unrestricted, skipped
				}, ep("10.241.0.1"))},
			},
			want: services(msvc("web", withEndpoints(mep("10.241.0.1", func(e *model.Endpoint) {
				e.Ports = []model.EndpointPort{
					{Name: "", Port: 7000, Protocol: model.TCP},
					{Name: "dns", Port: 5353, Protocol: model.UDP},
					{Name: "http", Port: 8080, Protocol: model.TCP},
				}
			})))),
		},
		{
			name: "FQDN slices skipped",
			res: Resources{
				Services:       []corev1.Service{svc("web")},
				EndpointSlices: []discoveryv1.EndpointSlice{slice("web-1", "web", discoveryv1.AddressTypeFQDN, httpPort, ep("backend.example.com"))},
			},
			want: services(msvc("web")),
		},
		{
			name: "bad slices are dropped, good ones kept",
			res: Resources{
				Services: []corev1.Service{svc("web")},
				EndpointSlices: []discoveryv1.EndpointSlice{
					slice("web-1", "web", v4, httpPort, ep("10.241.0.1")),
					slice("web-bad-ip", "web", v4, httpPort, ep("10.241.0.2"), ep("10.241.0.256")),
					slice("web-bad-family", "web", v4, httpPort, ep("fd00::1")),
					slice("web-bad-port", "web", v4, []discoveryv1.EndpointPort{{Port: ptr[int32](70000)}}, ep("10.241.0.3")),
					slice("web-bad-proto", "web", v4, []discoveryv1.EndpointPort{{Port: ptr[int32](80), Protocol: ptr(corev1.Protocol("ICMP"))}}, ep("10.241.0.4")),
					slice("web-no-addr", "web", v4, httpPort, discoveryv1.Endpoint{}),
				},
			},
			want: services(msvc("web", withEndpoints(mep("10.241.0.1")))),
			wantErr: []string{
				`EndpointSlice "default/web-bad-family": endpoints[0].addresses[0]: "fd00::1": address does not match addressType IPv4`,
				`EndpointSlice "default/web-bad-ip": endpoints[1].addresses[0]: "10.241.0.256": invalid IP address`,
				`EndpointSlice "default/web-bad-port": ports[0].port: "70000": port must be between 1 and 65535`,
				`EndpointSlice "default/web-bad-proto": ports[0].protocol: "ICMP": unsupported protocol, want TCP, UDP or SCTP`,
				`EndpointSlice "default/web-no-addr": endpoints[0].addresses: must not be empty`,
			},
		},
	})
}
