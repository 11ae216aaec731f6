// SPDX-License-Identifier: Apache-2.0

package config

import (
	"cmp"
	"errors"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

// DefaultLoadBalancerClass is the spec.loadBalancerClass lbd answers to
// unless Options say otherwise.
const DefaultLoadBalancerClass = "lbd.dev/lbd"

// Resources are the Kubernetes objects a State is built from.
type Resources struct {
	Nodes          []corev1.Node
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	Namespaces     []corev1.Namespace
	Pools          []v1alpha1.IPPool
	Announcements  []v1alpha1.L2Announcement
}

// Options tune the conversion.
type Options struct {
	// LoadBalancerClass is lbd's class; Services with another non-empty
	// spec.loadBalancerClass belong to another load balancer and are
	// ignored. Services without a class are lbd's. Default
	// DefaultLoadBalancerClass.
	LoadBalancerClass string
}

func (o Options) withDefaults() Options {
	if o.LoadBalancerClass == "" {
		o.LoadBalancerClass = DefaultLoadBalancerClass
	}
	return o
}

// For converts and validates r. It always returns a State, built from the
// valid objects; the error, if not nil, joins one *FieldError per problem in
// the objects left out. See the package documentation for why.
func For(r Resources, opts Options) (*model.State, error) {
	opts = opts.withDefaults()
	var errs []error
	st := &model.State{}

	var err []error
	st.Pools, err = convertPools(r.Pools)
	errs = append(errs, err...)
	st.Announcements, err = convertAnnouncements(r.Announcements)
	errs = append(errs, err...)
	st.Nodes, err = convertNodes(r.Nodes)
	errs = append(errs, err...)

	nsLabels := map[string]map[string]string{}
	nsSeen := map[string]bool{}
	for i := range r.Namespaces {
		ns := &r.Namespaces[i]
		o := &object{kind: "Namespace", name: ns.Name}
		o.checkMeta(false)
		if nsSeen[ns.Name] {
			o.add("metadata.name", "", errDuplicate)
		}
		nsSeen[ns.Name] = true
		if o.ok() {
			nsLabels[ns.Name] = ns.Labels
		}
		errs = append(errs, o.errs...)
	}

	sets := map[model.ServiceKey]endpointSet{}
	seen := map[model.ServiceKey]bool{}
	for i := range r.Services {
		svc := &r.Services[i]
		if !isOurs(svc, opts.LoadBalancerClass) {
			continue
		}
		o := &object{kind: "Service", namespace: svc.Namespace, name: svc.Name}
		o.checkMeta(true)
		ms := convertService(o, svc, nsLabels[svc.Namespace])
		if seen[ms.Key] {
			o.add("metadata.name", "", errDuplicate)
		}
		seen[ms.Key] = true
		if o.ok() {
			st.Services = append(st.Services, ms)
			sets[ms.Key] = endpointSet{}
		}
		errs = append(errs, o.errs...)
	}
	errs = append(errs, addSlices(r.EndpointSlices, sets)...)
	for i := range st.Services {
		st.Services[i].Endpoints = sets[st.Services[i].Key].sorted()
	}
	slices.SortFunc(st.Services, func(a, b model.Service) int {
		return cmp.Or(cmp.Compare(a.Key.Namespace, b.Key.Namespace), cmp.Compare(a.Key.Name, b.Key.Name))
	})
	return st, errors.Join(errs...)
}
