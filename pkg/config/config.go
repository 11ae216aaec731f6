// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"slices"
	"strings"

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
func For(r Resources, opts Options) (*model.State, error) { return convert(r, opts, nil) }

// convert is For, with the memory of a Converter when m is not nil.
func convert(r Resources, opts Options, m *Converter) (*model.State, error) {
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
	nsVersion := map[string]string{}
	nsUnversioned := map[string]bool{}
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
			nsVersion[ns.Name] = string(ns.UID) + "/" + ns.ResourceVersion
			nsUnversioned[ns.Name] = ns.UID == "" || ns.ResourceVersion == ""
		}
		errs = append(errs, o.errs...)
	}

	// Services are converted in input order (so errors follow the
	// file), then put in key order through an index: sorting indices is
	// much cheaper than sorting the converted structs, and this runs on
	// every change, over every Service.
	ours := make([]*corev1.Service, 0, len(r.Services))
	for i := range r.Services {
		if isOurs(&r.Services[i], opts.LoadBalancerClass) {
			ours = append(ours, &r.Services[i])
		}
	}
	conv := make([]model.Service, len(ours))
	valid := make([]bool, len(ours))
	ins := make(map[model.ServiceKey]*inputs, len(ours))
	seen := make(map[model.ServiceKey]bool, len(ours))
	for i, svc := range ours {
		o := &object{kind: "Service", namespace: svc.Namespace, name: svc.Name}
		ms := m.service(o, svc, nsLabels[svc.Namespace], nsVersion[svc.Namespace])
		if seen[ms.Key] {
			o.add("metadata.name", "", errDuplicate)
		}
		seen[ms.Key] = true
		if o.ok() {
			conv[i], valid[i] = ms, true
			in := &inputs{}
			if m != nil { // only a Converter hands out revisions
				in.rev = newRevision(svc.UID, svc.ResourceVersion, nsVersion[svc.Namespace], !nsUnversioned[svc.Namespace])
			}
			ins[ms.Key] = in
		}
		errs = append(errs, o.errs...)
	}
	order := make([]int, 0, len(ours))
	for i := range ours {
		if valid[i] {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		return compareKey(ours[a].Namespace, ours[a].Name, ours[b].Namespace, ours[b].Name)
	})
	st.Services = make([]model.Service, 0, len(order))
	for _, i := range order {
		st.Services = append(st.Services, conv[i])
	}
	errs = append(errs, addSlices(r.EndpointSlices, ins, m)...)
	for i := range st.Services {
		s := &st.Services[i]
		s.Endpoints, s.Revision = m.endpoints(s.Key, ins[s.Key])
	}
	m.prune()
	return st, errors.Join(errs...)
}

// compareKey orders objects by namespace, then name. (cmp.Or would compare
// the names even when the namespaces differ.)
func compareKey(ns1, name1, ns2, name2 string) int {
	if ns1 != ns2 {
		return strings.Compare(ns1, ns2)
	}
	return strings.Compare(name1, name2)
}
