// SPDX-License-Identifier: Apache-2.0

package config

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lbd-project/lbd/pkg/model"
)

// Converter is For with a memory: a Service or EndpointSlice whose UID and
// resourceVersion (and, for a Service, its namespace's) are those of the
// last call is not converted again. The Kubernetes source and the IPAM
// controller convert the whole cluster on every change; with 10 000
// Services, converting only what changed is what keeps a change within
// milliseconds of the datapath. Objects without a UID or resourceVersion
// (static manifests) are always converted. The result is the same as For's.
//
// A Converter is not safe for concurrent use. The States it returns share
// the remembered objects' maps and slices, which, as with For, must not be
// modified.
type Converter struct {
	opts Options

	svcs, nextSvcs     map[types.UID]svcMemo
	slices, nextSlices map[types.UID]sliceMemo
	// eps are the merged endpoints of each Service by revision.
	eps, nextEps map[model.ServiceKey]epsMemo
}

type epsMemo struct {
	rev uint64
	eps []model.Endpoint
}

type svcMemo struct {
	rv, nsVersion string // the Service's resourceVersion and its namespace's
	ms            model.Service
	errs          []error
}

type sliceMemo struct {
	version string
	eps     []model.Endpoint
	errs    []error
}

// NewConverter returns a Converter converting with opts.
func NewConverter(opts Options) *Converter {
	return &Converter{opts: opts, svcs: map[types.UID]svcMemo{}, slices: map[types.UID]sliceMemo{}, eps: map[model.ServiceKey]epsMemo{}}
}

// For converts r as For does.
func (c *Converter) For(r Resources) (*model.State, error) { return convert(r, c.opts, c) }

// service converts svc, or returns the remembered conversion. A nil c
// always converts.
func (c *Converter) service(o *object, svc *corev1.Service, nsLabels map[string]string, nsVersion string) model.Service {
	if c == nil || svc.UID == "" || svc.ResourceVersion == "" {
		o.checkMeta(true)
		return convertService(o, svc, nsLabels)
	}
	if c.nextSvcs == nil {
		c.nextSvcs = make(map[types.UID]svcMemo, len(c.svcs))
	}
	if m, ok := c.svcs[svc.UID]; ok && m.rv == svc.ResourceVersion && m.nsVersion == nsVersion {
		o.errs = append(o.errs, m.errs...)
		c.nextSvcs[svc.UID] = m
		return m.ms
	}
	o.checkMeta(true)
	ms := convertService(o, svc, nsLabels)
	c.nextSvcs[svc.UID] = svcMemo{rv: svc.ResourceVersion, nsVersion: nsVersion, ms: ms, errs: append([]error(nil), o.errs...)}
	return ms
}

// slice converts es, or returns the remembered conversion.
func (c *Converter) slice(o *object, es *discoveryv1.EndpointSlice, bits int) []model.Endpoint {
	if c == nil || es.UID == "" || es.ResourceVersion == "" {
		o.checkMeta(true)
		return convertSlice(o, es, bits)
	}
	if c.nextSlices == nil {
		c.nextSlices = make(map[types.UID]sliceMemo, len(c.slices))
	}
	if m, ok := c.slices[es.UID]; ok && m.version == es.ResourceVersion {
		o.errs = append(o.errs, m.errs...)
		c.nextSlices[es.UID] = m
		return m.eps
	}
	o.checkMeta(true)
	eps := convertSlice(o, es, bits)
	c.nextSlices[es.UID] = sliceMemo{version: es.ResourceVersion, eps: eps, errs: append([]error(nil), o.errs...)}
	return eps
}

// endpoints returns the endpoints of Service key from its inputs, and its
// Revision: the merge remembered for the same revision (the same Service,
// namespace and slices at the same versions), else a new merge. Merging
// the endpoints of every Service on every change was most of a change's
// cost at 10 000 Services. A nil c always merges, and gives Revision 0.
func (c *Converter) endpoints(key model.ServiceKey, in *inputs) ([]model.Endpoint, uint64) {
	rev := in.rev.value()
	if c == nil || rev == 0 {
		return in.merge(), rev
	}
	if c.nextEps == nil {
		c.nextEps = make(map[model.ServiceKey]epsMemo, len(c.eps))
	}
	m, ok := c.eps[key]
	if !ok || m.rev != rev {
		m = epsMemo{rev: rev, eps: in.merge()}
	}
	c.nextEps[key] = m
	return m.eps, rev
}

// prune forgets what the last call did not see (deleted objects).
func (c *Converter) prune() {
	if c == nil {
		return
	}
	c.svcs, c.nextSvcs = c.nextSvcs, nil
	c.slices, c.nextSlices = c.nextSlices, nil
	c.eps, c.nextEps = c.nextEps, nil
	if c.eps == nil {
		c.eps = map[model.ServiceKey]epsMemo{}
	}
	if c.svcs == nil {
		c.svcs = map[types.UID]svcMemo{}
	}
	if c.slices == nil {
		c.slices = map[types.UID]sliceMemo{}
	}
}
