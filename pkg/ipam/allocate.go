// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/lbd-project/lbd/pkg/model"
)

// Result is the outcome of [Allocate] for one service.
type Result struct {
	// VIPs are the service's addresses, one per wanted family in the
	// order of its Families; nil when Err is set.
	VIPs []netip.Addr
	// Err is the Assign error, wrapping one of the package's sentinels.
	Err error
	// RestoreErr says why some of the service's existing VIPs (its
	// Service.VIPs) could not be kept, e.g. wrapping ErrNoPool when their
	// pool was removed; the service then got new addresses (see VIPs and
	// Err). Nil when every existing VIP was restored or there were none.
	RestoreErr error
}

// Allocate computes the VIPs of services from pools in one go, for the
// static source, where every node must reach the same answer on its own.
//
// It restores the existing VIPs of every service (Service.VIPs) first, then
// assigns, first come first served (see cmpFirstCome), first the services
// that request addresses and then the others, so that an auto-assigned
// service never takes an address another one asks for by IP. Serving the
// services in the order they came, not in name order, means that adding a
// service never moves one that came before it, even computed from scratch.
// The result depends only on the set of pools and services, not on their
// order in the slices. Allocate does not modify its arguments.
//
// The error is non-nil only when the pools are invalid or two services have
// the same key; per-service problems are in the results.
func Allocate(pools []model.Pool, services []model.Service) (map[model.ServiceKey]Result, error) {
	a, err := New(pools)
	if err != nil {
		return nil, fmt.Errorf("allocating VIPs: %w", err)
	}
	order := make([]*model.Service, len(services))
	for i := range services {
		order[i] = &services[i]
	}
	seen := make(map[model.ServiceKey]bool, len(order))
	for _, svc := range order {
		if seen[svc.Key] {
			return nil, fmt.Errorf("allocating VIPs: duplicate service %s", svc.Key)
		}
		seen[svc.Key] = true
	}
	slices.SortFunc(order, cmpFirstCome)

	results := make(map[model.ServiceKey]Result, len(order))
	for _, svc := range order {
		if len(svc.VIPs) == 0 {
			continue
		}
		if err := a.Restore(svc, svc.VIPs); err != nil {
			results[svc.Key] = Result{RestoreErr: err}
		}
	}
	for _, pass := range []func(*model.Service) bool{
		func(s *model.Service) bool { return len(s.RequestedIPs) > 0 },
		func(s *model.Service) bool { return len(s.RequestedIPs) == 0 },
	} {
		for _, svc := range order {
			if !pass(svc) {
				continue
			}
			r := results[svc.Key]
			r.VIPs, r.Err = a.Assign(svc)
			results[svc.Key] = r
		}
	}
	return results, nil
}

// cmpFirstCome orders services by arrival: by CreatedAt (services without
// one after those with one: a Service appended to an exported manifest
// came last), then by Order (their place in a static manifest), then by
// key, so that the order is total and the same on every node.
func cmpFirstCome(x, y *model.Service) int {
	if xz, yz := x.CreatedAt.IsZero(), y.CreatedAt.IsZero(); xz != yz {
		if xz {
			return 1
		}
		return -1
	}
	if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Order, y.Order); c != 0 {
		return c
	}
	return cmpKey(x.Key, y.Key)
}
