// SPDX-License-Identifier: Apache-2.0

package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/lbd-project/lbd/pkg/model"
)

const kindEndpointSlice = "EndpointSlice"

// endpointSet merges the endpoints of one Service across its slices.
type endpointSet map[netip.Addr]*model.Endpoint

// inputs are what a Service's endpoints are built from: the endpoints of
// each of its valid slices, and the revision of all its objects (nil
// without a Converter).
type inputs struct {
	rev   *revision
	parts [][]model.Endpoint
}

// merge merges the parts into the Service's endpoints.
func (in *inputs) merge() []model.Endpoint {
	set := endpointSet{}
	for _, p := range in.parts {
		for _, ep := range p {
			set.add(ep)
		}
	}
	return set.sorted()
}

// addSlices adds slices to the inputs of the services they belong to (by
// the kubernetes.io/service-name label, same namespace). Slices of
// Services not in ins are ignored without validation: they are not lbd's
// business. An invalid slice is dropped as a whole. Every slice's version
// goes into its Service's revision.
func addSlices(in []discoveryv1.EndpointSlice, ins map[model.ServiceKey]*inputs, m *Converter) []error {
	// Slices are merged in the order given: the merge does not depend on
	// it (see add), and sorting 10 000 slices on every change would cost
	// more than the rest. Only the problems are put in name order, so
	// that the same problems always read the same.
	type bad struct {
		ns, name string
		errs     []error
	}
	var bads []bad
	for i := range in {
		es := &in[i]
		svc, ok := es.Labels[discoveryv1.LabelServiceName]
		if !ok {
			continue
		}
		si, ok := ins[model.ServiceKey{Namespace: es.Namespace, Name: svc}]
		if !ok {
			continue
		}
		si.rev.addSlice(es.UID, es.ResourceVersion)
		var fam int
		switch es.AddressType {
		case discoveryv1.AddressTypeIPv4:
			fam = 32
		case discoveryv1.AddressTypeIPv6:
			fam = 128
		default:
			continue // FQDN and future types carry no address we can forward to
		}
		o := &object{kind: kindEndpointSlice, namespace: es.Namespace, name: es.Name}
		eps := m.slice(o, es, fam)
		if o.ok() {
			si.parts = append(si.parts, eps)
			continue
		}
		bads = append(bads, bad{es.Namespace, es.Name, o.errs})
	}
	slices.SortStableFunc(bads, func(a, b bad) int { return compareKey(a.ns, a.name, b.ns, b.name) })
	var errs []error
	for _, b := range bads {
		errs = append(errs, b.errs...)
	}
	return errs
}

func convertSlice(o *object, es *discoveryv1.EndpointSlice, bits int) []model.Endpoint {
	var ports []model.EndpointPort
	for i, p := range es.Ports {
		if p.Port == nil {
			// "Unrestricted" ports mean nothing for a load balancer that
			// must map service ports to backend ports.
			continue
		}
		var proto model.Protocol
		if p.Protocol == nil {
			proto = model.TCP
		} else if mp, ok := parseProtocol(*p.Protocol); ok {
			proto = mp
		} else {
			o.add(fmt.Sprintf("ports[%d].protocol", i), string(*p.Protocol), errBadProtocol)
			continue
		}
		if *p.Port < 1 || *p.Port > 65535 {
			o.add(fmt.Sprintf("ports[%d].port", i), fmt.Sprint(*p.Port), errPortRange)
			continue
		}
		ep := model.EndpointPort{Port: uint16(*p.Port), Protocol: proto}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		ports = append(ports, ep)
	}

	var out []model.Endpoint
	for i, e := range es.Endpoints {
		if len(e.Addresses) == 0 {
			o.add(fmt.Sprintf("endpoints[%d].addresses", i), "", errEmpty)
			continue
		}
		// The API says addresses of one endpoint are fungible and
		// consumers may use only the first, as kube-proxy does.
		a, err := parseAddr(e.Addresses[0])
		if err != nil {
			o.add(fmt.Sprintf("endpoints[%d].addresses[0]", i), e.Addresses[0], err)
			continue
		}
		if a.BitLen() != bits {
			o.addf(fmt.Sprintf("endpoints[%d].addresses[0]", i), e.Addresses[0],
				"address does not match addressType %s", es.AddressType)
			continue
		}
		c := e.Conditions
		ready := c.Ready == nil || *c.Ready
		serving := ready
		if c.Serving != nil {
			serving = *c.Serving
		}
		ep := model.Endpoint{
			Addr:        a,
			Ready:       ready,
			Serving:     serving,
			Terminating: c.Terminating != nil && *c.Terminating,
			Ports:       slices.Clone(ports),
		}
		if e.NodeName != nil {
			ep.NodeName = *e.NodeName
		}
		out = append(out, ep)
	}
	return out
}

// add merges ep into s. The same address in two slices (it happens while
// the EndpointSlice controller moves endpoints between slices) is one
// backend: it is ready or serving if either copy says so, terminating only
// if both do, and listens on the union of their ports.
func (s endpointSet) add(ep model.Endpoint) {
	cur, ok := s[ep.Addr]
	if !ok {
		// Own copy of the ports: they are appended to and sorted
		// below, and ep may be a Converter's remembered one.
		ep.Ports = slices.Clone(ep.Ports)
		s[ep.Addr] = &ep
		return
	}
	cur.Ready = cur.Ready || ep.Ready
	cur.Serving = cur.Serving || ep.Serving
	cur.Terminating = cur.Terminating && ep.Terminating
	// Two slices naming different nodes for one address (a moment in a
	// move): the smallest name, whatever order the slices came in.
	if cur.NodeName == "" || (ep.NodeName != "" && ep.NodeName < cur.NodeName) {
		cur.NodeName = ep.NodeName
	}
	for _, p := range ep.Ports {
		if !slices.Contains(cur.Ports, p) {
			cur.Ports = append(cur.Ports, p)
		}
	}
}

// sorted returns the endpoints by address, each with its ports sorted.
func (s endpointSet) sorted() []model.Endpoint {
	if len(s) == 0 {
		return nil
	}
	out := make([]model.Endpoint, 0, len(s))
	for _, ep := range s {
		slices.SortFunc(ep.Ports, func(a, b model.EndpointPort) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
		})
		out = append(out, *ep)
	}
	slices.SortFunc(out, func(a, b model.Endpoint) int { return a.Addr.Compare(b.Addr) })
	return out
}
