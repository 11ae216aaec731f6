// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/lbd-project/lbd/pkg/model"
)

// Annotations read from Services. lbd's own come first; MetalLB's are
// honoured so that clusters can move from MetalLB without editing every
// Service.
const (
	AnnotationLoadBalancerIPs        = "lbd.dev/loadBalancerIPs"
	AnnotationAddressPool            = "lbd.dev/address-pool"
	AnnotationAllowSharedIP          = "lbd.dev/allow-shared-ip"
	AnnotationMetalLBLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	AnnotationMetalLBAddressPool     = "metallb.io/address-pool"
	AnnotationMetalLBAllowSharedIP   = "metallb.io/allow-shared-ip"
	// AnnotationSourceRanges is Kubernetes' older spelling of
	// spec.loadBalancerSourceRanges; the field wins when both are set.
	AnnotationSourceRanges = "service.beta.kubernetes.io/load-balancer-source-ranges"
)

// DefaultAffinityTimeout is Kubernetes' default
// sessionAffinityConfig.clientIP.timeoutSeconds.
const DefaultAffinityTimeout = 10800 * time.Second

// maxAffinitySeconds is the largest timeout the API server accepts.
const maxAffinitySeconds = 86400

func annotationField(key string) string { return "metadata.annotations[" + key + "]" }

// isOurs reports whether svc is a LoadBalancer Service lbd handles.
func isOurs(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	c := svc.Spec.LoadBalancerClass
	return c == nil || *c == "" || *c == class
}

// convertService converts one Service; ok is false if it has errors,
// which are recorded in o.
func convertService(o *object, svc *corev1.Service, nsLabels map[string]string) model.Service {
	ms := model.Service{
		Key:             model.ServiceKey{Namespace: svc.Namespace, Name: svc.Name},
		Labels:          maps.Clone(svc.Labels),
		NamespaceLabels: maps.Clone(nsLabels),
	}
	ms.Ports = servicePorts(o, svc.Spec.Ports)
	ms.RequestedIPs = requestedIPs(o, svc)
	ms.RequestedPool = firstAnnotation(o, svc.Annotations, AnnotationAddressPool, AnnotationMetalLBAddressPool)
	ms.SharingKey = firstAnnotation(o, svc.Annotations, AnnotationAllowSharedIP, AnnotationMetalLBAllowSharedIP)
	ms.Families = families(o, svc, ms.RequestedIPs)

	switch p := svc.Spec.ExternalTrafficPolicy; p {
	case "", corev1.ServiceExternalTrafficPolicyCluster:
		ms.TrafficPolicy = model.PolicyCluster
	case corev1.ServiceExternalTrafficPolicyLocal:
		ms.TrafficPolicy = model.PolicyLocal
	default:
		o.add("spec.externalTrafficPolicy", string(p), errUnknownValue)
	}

	switch a := svc.Spec.SessionAffinity; a {
	case "", corev1.ServiceAffinityNone:
	case corev1.ServiceAffinityClientIP:
		ms.AffinityTimeout = DefaultAffinityTimeout
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			s := *c.ClientIP.TimeoutSeconds
			if s < 1 || s > maxAffinitySeconds {
				o.addf("spec.sessionAffinityConfig.clientIP.timeoutSeconds", fmt.Sprint(s),
					"must be between 1 and %d", maxAffinitySeconds)
			}
			ms.AffinityTimeout = time.Duration(s) * time.Second
		}
	default:
		o.add("spec.sessionAffinity", string(a), errUnknownValue)
	}

	ms.SourceRanges = sourceRanges(o, svc)

	for i, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue // hostname-only ingress, written by other controllers
		}
		a, err := parseAddr(ing.IP)
		if err != nil {
			o.add(fmt.Sprintf("status.loadBalancer.ingress[%d].ip", i), ing.IP, err)
			continue
		}
		if !slices.Contains(ms.VIPs, a) {
			ms.VIPs = append(ms.VIPs, a)
		}
	}
	return ms
}

func parseProtocol(p corev1.Protocol) (model.Protocol, bool) {
	switch p {
	case "", corev1.ProtocolTCP: // the API server defaults to TCP
		return model.TCP, true
	case corev1.ProtocolUDP:
		return model.UDP, true
	case corev1.ProtocolSCTP:
		return model.SCTP, true
	}
	return 0, false
}

func servicePorts(o *object, ports []corev1.ServicePort) []model.ServicePort {
	if len(ports) == 0 {
		o.add("spec.ports", "", errEmpty)
		return nil
	}
	var out []model.ServicePort
	for i, p := range ports {
		proto, ok := parseProtocol(p.Protocol)
		if !ok {
			o.add(fmt.Sprintf("spec.ports[%d].protocol", i), string(p.Protocol), errBadProtocol)
			continue
		}
		if p.Port < 1 || p.Port > 65535 {
			o.add(fmt.Sprintf("spec.ports[%d].port", i), fmt.Sprint(p.Port), errPortRange)
			continue
		}
		sp := model.ServicePort{Name: p.Name, Port: uint16(p.Port), Protocol: proto}
		for j, prev := range out {
			if prev.Port == sp.Port && prev.Protocol == sp.Protocol {
				o.addf(fmt.Sprintf("spec.ports[%d]", i), fmt.Sprintf("%d/%s", sp.Port, proto),
					"duplicate of spec.ports[%d]", j)
			}
		}
		out = append(out, sp)
	}
	return out
}

// requestedIPs reads the addresses a Service asks for. Sources in order of
// precedence: lbd's annotation, MetalLB's annotation, spec.loadBalancerIP.
// When more than one is set they must agree.
func requestedIPs(o *object, svc *corev1.Service) []netip.Addr {
	type source struct{ field, value string }
	var sources []source
	for _, k := range []string{AnnotationLoadBalancerIPs, AnnotationMetalLBLoadBalancerIPs} {
		if v := strings.TrimSpace(svc.Annotations[k]); v != "" {
			sources = append(sources, source{annotationField(k), v})
		}
	}
	if v := strings.TrimSpace(svc.Spec.LoadBalancerIP); v != "" {
		sources = append(sources, source{"spec.loadBalancerIP", v})
	}

	var (
		want      []netip.Addr
		wantField string
	)
	for _, src := range sources {
		addrs, err := parseAddrList(src.value)
		if err != nil {
			o.add(src.field, src.value, err)
			continue
		}
		// At most one address per family, as in MetalLB: a Service has
		// one VIP per family.
		if len(addrs) > 2 || (len(addrs) == 2 && addrs[0].BitLen() == addrs[1].BitLen()) {
			o.add(src.field, src.value, errFamilyTwice)
			continue
		}
		if want == nil {
			want, wantField = addrs, src.field
			continue
		}
		if !sameSet(want, addrs) {
			o.addf(src.field, src.value, "conflicts with %s", wantField)
		}
	}
	return want
}

func sameSet(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

// firstAnnotation returns the value of the first of keys that is set, and
// records a conflict if a later one is set to something else.
func firstAnnotation(o *object, ann map[string]string, keys ...string) string {
	var val, from string
	for _, k := range keys {
		v := strings.TrimSpace(ann[k])
		switch {
		case v == "":
		case val == "":
			val, from = v, k
		case v != val:
			o.addf(annotationField(k), v, "conflicts with %s %q", annotationField(from), val)
		}
	}
	return val
}

// families derives the address families a Service wants from ipFamilies
// and ipFamilyPolicy. With no ipFamilies (hand-written manifests; the API
// server always fills them in) the family of the first requested address is
// used, or IPv4.
func families(o *object, svc *corev1.Service, requested []netip.Addr) []model.Family {
	var fams []model.Family
	for i, f := range svc.Spec.IPFamilies {
		var mf model.Family
		switch f {
		case corev1.IPv4Protocol:
			mf = model.IPv4
		case corev1.IPv6Protocol:
			mf = model.IPv6
		default:
			o.add(fmt.Sprintf("spec.ipFamilies[%d]", i), string(f), errUnknownValue)
			continue
		}
		if slices.Contains(fams, mf) {
			o.add(fmt.Sprintf("spec.ipFamilies[%d]", i), string(f), fmt.Errorf("listed twice"))
			continue
		}
		fams = append(fams, mf)
	}
	if len(fams) == 0 {
		if len(requested) > 0 {
			fams = []model.Family{family(requested[0])}
		} else {
			fams = []model.Family{model.IPv4}
		}
	}

	policy := corev1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil && *svc.Spec.IPFamilyPolicy != "" {
		policy = *svc.Spec.IPFamilyPolicy
	}
	switch policy {
	case corev1.IPFamilyPolicySingleStack:
		fams = fams[:1]
	case corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack:
		for _, f := range []model.Family{model.IPv4, model.IPv6} {
			if !slices.Contains(fams, f) {
				fams = append(fams, f)
			}
		}
	default:
		o.add("spec.ipFamilyPolicy", string(policy), errUnknownValue)
	}

	// A requested address of a family the Service does not want can
	// never be satisfied; say so here rather than leave ipam to guess.
	for _, a := range requested {
		if !slices.Contains(fams, family(a)) {
			o.addf("spec.ipFamilies", "", "requested address %s is IPv%d, not in the Service's families %s",
				a, family(a), familyList(fams))
		}
	}
	return fams
}

// sourceRanges reads spec.loadBalancerSourceRanges or, if that is empty,
// the older annotation. Host bits are masked off as Kubernetes does
// (net.ParseCIDR), so "10.0.0.1/8" means 10.0.0.0/8.
func sourceRanges(o *object, svc *corev1.Service) []netip.Prefix {
	type item struct{ field, value string }
	var items []item
	if len(svc.Spec.LoadBalancerSourceRanges) > 0 {
		for i, s := range svc.Spec.LoadBalancerSourceRanges {
			items = append(items, item{fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i), s})
		}
	} else if v := strings.TrimSpace(svc.Annotations[AnnotationSourceRanges]); v != "" {
		for s := range strings.SplitSeq(v, ",") {
			items = append(items, item{annotationField(AnnotationSourceRanges), s})
		}
	}
	var out []netip.Prefix
	for _, it := range items {
		s := strings.TrimSpace(it.value)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			o.add(it.field, s, fmt.Errorf("invalid CIDR"))
			continue
		}
		if p.Addr().Is4In6() {
			o.add(it.field, s, errMapped)
			continue
		}
		p = p.Masked()
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// familyList renders families the way spec.ipFamilies spells them.
func familyList(fams []model.Family) string {
	var s []string
	for _, f := range fams {
		s = append(s, fmt.Sprintf("IPv%d", f))
	}
	return "[" + strings.Join(s, " ") + "]"
}
