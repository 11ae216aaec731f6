// SPDX-License-Identifier: Apache-2.0

package config

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/model"
)

func TestServiceRequests(t *testing.T) {
	runConv(t, []convTest{
		{
			name: "requested addresses",
			res: Resources{Services: []corev1.Service{
				svc("spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.20.1.5" }),
				svc("lbd", annotate(AnnotationLoadBalancerIPs, "10.20.1.6, fd00::6"), func(s *corev1.Service) {
					s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
				}),
				svc("metallb", annotate(AnnotationMetalLBLoadBalancerIPs, "10.20.1.7")),
				svc("agree", annotate(AnnotationLoadBalancerIPs, "10.20.1.8", AnnotationMetalLBLoadBalancerIPs, "10.20.1.8"),
					func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.20.1.8" }),
				svc("v6", annotate(AnnotationLoadBalancerIPs, "fd00::9")),
			}},
			want: services(
				msvc("agree", func(s *model.Service) { s.RequestedIPs = []netip.Addr{ip("10.20.1.8")} }),
				msvc("lbd", func(s *model.Service) {
					s.RequestedIPs = []netip.Addr{ip("10.20.1.6"), ip("fd00::6")}
					s.Families = []model.Family{model.IPv4, model.IPv6}
				}),
				msvc("metallb", func(s *model.Service) { s.RequestedIPs = []netip.Addr{ip("10.20.1.7")} }),
				msvc("spec", func(s *model.Service) { s.RequestedIPs = []netip.Addr{ip("10.20.1.5")} }),
				msvc("v6", func(s *model.Service) {
					s.RequestedIPs = []netip.Addr{ip("fd00::9")}
					s.Families = []model.Family{model.IPv6}
				}),
			),
		},
		{
			name: "bad requested addresses",
			res: Resources{Services: []corev1.Service{
				svc("conflict", annotate(AnnotationLoadBalancerIPs, "10.20.1.8", AnnotationMetalLBLoadBalancerIPs, "10.20.1.9")),
				svc("conflict-spec", annotate(AnnotationMetalLBLoadBalancerIPs, "10.20.1.8"),
					func(s *corev1.Service) { s.Spec.LoadBalancerIP = "10.20.1.200" }),
				svc("two-v4", annotate(AnnotationLoadBalancerIPs, "10.20.1.8,10.20.1.9")),
				svc("bad", annotate(AnnotationLoadBalancerIPs, "10.20.1.8,10.20.1.999")),
				svc("bad-spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "fe80::1%eth0" }),
				svc("wrong-family", annotate(AnnotationLoadBalancerIPs, "fd00::1"), func(s *corev1.Service) {
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
				}),
			}},
			wantErr: []string{
				`Service "default/conflict": metadata.annotations[metallb.io/loadBalancerIPs]: "10.20.1.9": conflicts with metadata.annotations[lbd.dev/loadBalancerIPs]`,
				`Service "default/conflict-spec": spec.loadBalancerIP: "10.20.1.200": conflicts with metadata.annotations[metallb.io/loadBalancerIPs]`,
				`Service "default/two-v4": metadata.annotations[lbd.dev/loadBalancerIPs]: "10.20.1.8,10.20.1.9": more than one address of the same family`,
				`Service "default/bad": metadata.annotations[lbd.dev/loadBalancerIPs]: "10.20.1.8,10.20.1.999": "10.20.1.999": invalid IP address`,
				`Service "default/bad-spec": spec.loadBalancerIP: "fe80::1%eth0": "fe80::1%eth0": IP address must not have a zone`,
				`Service "default/wrong-family": spec.ipFamilies: requested address fd00::1 is IPv6, not in the Service's families [IPv4]`,
			},
		},
		{
			name: "pool and sharing annotations",
			res: Resources{Services: []corev1.Service{
				svc("lbd", annotate(AnnotationAddressPool, "external", AnnotationAllowSharedIP, "web")),
				svc("metallb", annotate(AnnotationMetalLBAddressPool, "internal", AnnotationMetalLBAllowSharedIP, "dns")),
				svc("agree", annotate(AnnotationAddressPool, "internal", AnnotationMetalLBAddressPool, "internal")),
				svc("conflict-pool", annotate(AnnotationAddressPool, "internal", AnnotationMetalLBAddressPool, "external")),
				svc("conflict-key", annotate(AnnotationAllowSharedIP, "a", AnnotationMetalLBAllowSharedIP, "b")),
			}},
			want: services(
				msvc("agree", func(s *model.Service) { s.RequestedPool = "internal" }),
				msvc("lbd", func(s *model.Service) { s.RequestedPool, s.SharingKey = "external", "web" }),
				msvc("metallb", func(s *model.Service) { s.RequestedPool, s.SharingKey = "internal", "dns" }),
			),
			wantErr: []string{
				`Service "default/conflict-pool": metadata.annotations[metallb.io/address-pool]: "external": conflicts with metadata.annotations[lbd.dev/address-pool] "internal"`,
				`Service "default/conflict-key": metadata.annotations[metallb.io/allow-shared-ip]: "b": conflicts with metadata.annotations[lbd.dev/allow-shared-ip] "a"`,
			},
		},
		{
			name: "families",
			res: Resources{Services: []corev1.Service{
				svc("single", func(s *corev1.Service) {
					s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
				}),
				svc("prefer", func(s *corev1.Service) {
					s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyPreferDualStack)
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
				}),
				svc("require-v6", func(s *corev1.Service) {
					s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicyRequireDualStack)
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				}),
				svc("unset"),
				svc("bad-family", func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{"IPv5"} }),
				svc("bad-policy", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicy("Sometimes")) }),
			}},
			want: services(
				msvc("prefer", func(s *model.Service) { s.Families = []model.Family{model.IPv4, model.IPv6} }),
				msvc("require-v6", func(s *model.Service) { s.Families = []model.Family{model.IPv6, model.IPv4} }),
				msvc("single", func(s *model.Service) { s.Families = []model.Family{model.IPv6} }),
				msvc("unset"),
			),
			wantErr: []string{
				`Service "default/bad-family": spec.ipFamilies[0]: "IPv5": unsupported value`,
				`Service "default/bad-policy": spec.ipFamilyPolicy: "Sometimes": unsupported value`,
			},
		},
		{
			name: "VIPs from status",
			res: Resources{Services: []corev1.Service{
				svc("web", func(s *corev1.Service) {
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{
						{IP: "10.20.1.1"}, {Hostname: "lb.example.com"}, {IP: "fd00::1"}, {IP: "10.20.1.1"},
					}
				}),
				svc("bad", func(s *corev1.Service) {
					s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "10.20.1.1"}, {IP: "x"}}
				}),
			}},
			want: services(msvc("web", func(s *model.Service) { s.VIPs = []netip.Addr{ip("10.20.1.1"), ip("fd00::1")} })),
			wantErr: []string{
				`Service "default/bad": status.loadBalancer.ingress[1].ip: "x": invalid IP address`,
			},
		},
		{
			name: "labels and namespace labels",
			res: Resources{
				Namespaces: []corev1.Namespace{
					{ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{"team": "web"}}},
				},
				Services: []corev1.Service{
					svc("web", func(s *corev1.Service) { s.Labels = map[string]string{"lb-type": "external"} }),
					svc("other-ns", func(s *corev1.Service) { s.Namespace = "nons" }),
				},
			},
			want: services(
				msvc("web", func(s *model.Service) {
					s.Labels = map[string]string{"lb-type": "external"}
					s.NamespaceLabels = map[string]string{"team": "web"}
				}),
				msvc("other-ns", func(s *model.Service) { s.Key.Namespace = "nons" }),
			),
		},
		{
			name: "identity",
			res: Resources{Services: []corev1.Service{
				svc("dup"),
				svc("dup", func(s *corev1.Service) { s.Spec.Ports[0].Port = 81 }),
				svc("", func(s *corev1.Service) { s.Namespace = "" }),
			}},
			want: services(msvc("dup")),
			wantErr: []string{
				`Service "default/dup": metadata.name: duplicate object`,
				`Service "": metadata.name: must not be empty`,
				`Service "": metadata.namespace: must not be empty`,
			},
		},
	})
}

// TestServiceLabelsCopied checks that the State does not share maps with
// the input objects, which informers may reuse.
func TestServiceLabelsCopied(t *testing.T) {
	in := svc("web", func(s *corev1.Service) { s.Labels = map[string]string{"a": "b"} })
	st, err := For(Resources{Services: []corev1.Service{in}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in.Labels["a"] = "changed"
	if got := st.Services[0].Labels["a"]; got != "b" {
		t.Errorf("State label changed with the input: %q", got)
	}
}
