// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/model"
)

// Static-mode allocations are sticky: a running agent hands its previous
// answer to ipam.Allocate as the Services' existing VIPs, as the IPAM
// controller restores Service status in Kubernetes mode, so adding,
// removing or relabelling other Services never moves a live Service's
// address. Only a Service whose address no longer fits (its pool gone or
// no longer selecting it, its request changed) moves, with a log line.
// From scratch (a restart), ipam.Allocate serves the Services first come,
// first served, which gives the same answer as long as Services were only
// appended to the manifest.

// withAllocated returns services with the VIPs of the last allocation
// filled in where the source gave none, and which Services got them. The
// source's own VIPs win: they are what the manifest says.
func (a *Agent) withAllocated(services []model.Service) ([]model.Service, map[model.ServiceKey]bool) {
	if len(a.allocated) == 0 {
		return services, nil
	}
	out := slices.Clone(services)
	sticky := make(map[model.ServiceKey]bool, len(a.allocated))
	for i := range out {
		svc := &out[i]
		if prev, ok := a.allocated[svc.Key]; ok && len(svc.VIPs) == 0 {
			svc.VIPs = prev
			sticky[svc.Key] = true
		}
	}
	return out, sticky
}

// logMoved logs a Service whose previous VIPs prev were not kept.
func (a *Agent) logMoved(key model.ServiceKey, prev []netip.Addr, r ipam.Result) {
	if slices.Equal(prev, r.VIPs) {
		return
	}
	reason := "no longer matches the Service's request"
	if r.RestoreErr != nil {
		reason = r.RestoreErr.Error()
	} else if r.Err != nil {
		reason = r.Err.Error()
	}
	a.log.Warn("static allocation moved", "op", "allocate", "svc", key, "from", prev, "to", r.VIPs, "reason", reason)
}

// remember records the VIPs of services for the next allocation. A
// Service without VIPs (refused) is forgotten.
func (a *Agent) remember(services []model.Service) {
	m := make(map[model.ServiceKey][]netip.Addr, len(services))
	for i := range services {
		if len(services[i].VIPs) > 0 {
			m[services[i].Key] = slices.Clone(services[i].VIPs)
		}
	}
	a.allocated = m
}
