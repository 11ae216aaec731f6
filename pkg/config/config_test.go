// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

func ptr[T any](v T) *T { return &v }

var ip = netip.MustParseAddr

// cmpOpts compares States: addresses by value, selectors by their
// rendering (their behaviour is tested separately with Matches).
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b model.Selector) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return a.String() == b.String()
	}),
	cmpopts.EquateEmpty(),
}

// errStrings flattens a joined error into its messages, and checks that
// each one is a *FieldError.
func errStrings(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	var out []string
	for _, e := range list {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Errorf("error %q is not a *FieldError", e)
		}
		out = append(out, e.Error())
	}
	return out
}

// svc is a minimal valid LoadBalancer Service in namespace "default".
func svc(name string, mut ...func(*corev1.Service)) corev1.Service {
	s := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, m := range mut {
		m(&s)
	}
	return s
}

// msvc is what svc converts to.
func msvc(name string, mut ...func(*model.Service)) model.Service {
	s := model.Service{
		Key:      model.ServiceKey{Namespace: "default", Name: name},
		Families: []model.Family{model.IPv4},
		Ports:    []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
	}
	for _, m := range mut {
		m(&s)
	}
	return s
}

func annotate(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func pool(name string, addrs ...string) v1alpha1.IPPool {
	return v1alpha1.IPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.IPPoolSpec{Addresses: addrs},
	}
}

func mpool(name string, ranges ...string) model.Pool {
	p := model.Pool{Name: name, AutoAssign: true}
	for _, r := range ranges {
		rr, err := parseRange(r)
		if err != nil {
			panic(err)
		}
		p.Ranges = append(p.Ranges, rr)
	}
	return p
}

func slice(name, service string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: service},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   eps,
	}
}

func ep(addr string, mut ...func(*discoveryv1.Endpoint)) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	for _, m := range mut {
		m(&e)
	}
	return e
}

var httpPort = []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr[int32](8080), Protocol: ptr(corev1.ProtocolTCP)}}
var mHTTPPort = []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}

func node(name string, labels map[string]string, addrs ...corev1.NodeAddress) corev1.Node {
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status:     corev1.NodeStatus{Addresses: addrs},
	}
}

type convTest struct {
	name    string
	res     Resources
	opts    Options
	want    *model.State
	wantErr []string
}

func runConv(t *testing.T, tests []convTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := For(tt.res, tt.opts)
			if got == nil {
				t.Fatalf("For returned a nil State (err %v)", err)
			}
			if diff := cmp.Diff(tt.wantErr, errStrings(t, err), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			want := tt.want
			if want == nil {
				want = &model.State{}
			}
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
		})
	}
}

func services(s ...model.Service) *model.State { return &model.State{Services: s} }

func TestServices(t *testing.T) {
	runConv(t, []convTest{
		{
			name: "only type LoadBalancer",
			res: Resources{Services: []corev1.Service{
				svc("lb"),
				svc("cip", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }),
				svc("np", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
				svc("bad-but-not-lb", func(s *corev1.Service) {
					s.Spec.Type = corev1.ServiceTypeClusterIP
					s.Spec.Ports[0].Protocol = "ICMP"
				}),
			}},
			want: services(msvc("lb")),
		},
		{
			name: "load balancer class",
			res: Resources{Services: []corev1.Service{
				svc("none"),
				svc("empty", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("") }),
				svc("ours", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("lbd.dev/lbd") }),
				svc("metallb", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("metallb.io/metallb") }),
			}},
			want: services(msvc("empty"), msvc("none"), msvc("ours")),
		},
		{
			name: "custom load balancer class",
			opts: Options{LoadBalancerClass: "example.com/lb"},
			res: Resources{Services: []corev1.Service{
				svc("none"),
				svc("default-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("lbd.dev/lbd") }),
				svc("custom", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("example.com/lb") }),
			}},
			want: services(msvc("custom"), msvc("none")),
		},
		{
			name: "ports and protocols",
			res: Resources{Services: []corev1.Service{svc("web", func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
					{Name: "sig", Port: 2905, Protocol: corev1.ProtocolSCTP},
					{Name: "dflt", Port: 443},
				}
			})}},
			want: services(msvc("web", func(s *model.Service) {
				s.Ports = []model.ServicePort{
					{Name: "http", Port: 80, Protocol: model.TCP},
					{Name: "dns", Port: 53, Protocol: model.UDP},
					{Name: "sig", Port: 2905, Protocol: model.SCTP},
					{Name: "dflt", Port: 443, Protocol: model.TCP},
				}
			})),
		},
		{
			name: "bad ports",
			res: Resources{Services: []corev1.Service{
				svc("proto", func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }),
				svc("zero", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }),
				svc("dup", func(s *corev1.Service) {
					s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "other", Port: 80})
				}),
				svc("none", func(s *corev1.Service) { s.Spec.Ports = nil }),
				svc("good"),
			}},
			want: services(msvc("good")),
			wantErr: []string{
				`Service "default/proto": spec.ports[0].protocol: "ICMP": unsupported protocol, want TCP, UDP or SCTP`,
				`Service "default/zero": spec.ports[0].port: "0": port must be between 1 and 65535`,
				`Service "default/dup": spec.ports[1]: "80/TCP": duplicate of spec.ports[0]`,
				`Service "default/none": spec.ports: must not be empty`,
			},
		},
		{
			name: "external traffic policy",
			res: Resources{Services: []corev1.Service{
				svc("default"),
				svc("cluster", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster }),
				svc("local", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
				svc("bad", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = "Global" }),
			}},
			want: services(
				msvc("cluster"),
				msvc("default"),
				msvc("local", func(s *model.Service) { s.TrafficPolicy = model.PolicyLocal }),
			),
			wantErr: []string{`Service "default/bad": spec.externalTrafficPolicy: "Global": unsupported value`},
		},
		{
			name: "session affinity",
			res: Resources{Services: []corev1.Service{
				svc("none", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityNone }),
				svc("default-timeout", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }),
				svc("timeout", func(s *corev1.Service) {
					s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
					s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
						ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](60)},
					}
				}),
				svc("bad-timeout", func(s *corev1.Service) {
					s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
					s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
						ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr[int32](0)},
					}
				}),
				svc("bad", func(s *corev1.Service) { s.Spec.SessionAffinity = "Cookie" }),
			}},
			want: services(
				msvc("default-timeout", func(s *model.Service) { s.AffinityTimeout = 3 * time.Hour }),
				msvc("none"),
				msvc("timeout", func(s *model.Service) { s.AffinityTimeout = time.Minute }),
			),
			wantErr: []string{
				`Service "default/bad-timeout": spec.sessionAffinityConfig.clientIP.timeoutSeconds: "0": must be between 1 and 86400`,
				`Service "default/bad": spec.sessionAffinity: "Cookie": unsupported value`,
			},
		},
		{
			name: "source ranges",
			res: Resources{Services: []corev1.Service{
				svc("field", func(s *corev1.Service) {
					s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8", " 192.168.1.7/24", "fd00::/64", "10.0.0.0/8"}
				}),
				svc("annotation", annotate(AnnotationSourceRanges, "10.0.0.0/8, 172.16.0.0/12")),
				svc("both", func(s *corev1.Service) {
					s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8"}
					annotate(AnnotationSourceRanges, "172.16.0.0/12")(s)
				}),
				svc("bad-field", func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"10.0.0.0/8", "10.0.0.0"} }),
				svc("bad-annotation", annotate(AnnotationSourceRanges, "10.0.0.0/8,nope")),
			}},
			want: services(
				msvc("annotation", func(s *model.Service) {
					s.SourceRanges = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}
				}),
				msvc("both", func(s *model.Service) {
					s.SourceRanges = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
				}),
				msvc("field", func(s *model.Service) {
					s.SourceRanges = []netip.Prefix{
						netip.MustParsePrefix("10.0.0.0/8"),
						netip.MustParsePrefix("192.168.1.0/24"),
						netip.MustParsePrefix("fd00::/64"),
					}
				}),
			),
			wantErr: []string{
				`Service "default/bad-field": spec.loadBalancerSourceRanges[1]: "10.0.0.0": invalid CIDR`,
				`Service "default/bad-annotation": metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]: "nope": invalid CIDR`,
			},
		},
	})
}
