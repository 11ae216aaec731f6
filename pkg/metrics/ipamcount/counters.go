// SPDX-License-Identifier: Apache-2.0

package ipamcount

import (
	"errors"
	"slices"
	"sync/atomic"

	"github.com/lbd-project/lbd/pkg/ipam"
)

// Refusal reasons, the values of lbd_ipam_refusals_total's reason label.
const (
	ReasonPoolExhausted  = "pool_exhausted"
	ReasonNoPool         = "no_pool"
	ReasonNotAllowed     = "not_allowed"
	ReasonAddressInUse   = "address_in_use"
	ReasonInvalidRequest = "invalid_request"
	// ReasonInvalidService: the Service object itself failed validation
	// (pkg/config), so the allocator never saw it.
	ReasonInvalidService = "invalid_service"
	ReasonOther          = "other"
)

// reasons is every reason, sorted (the order the metrics emit them).
var reasons = [...]string{
	ReasonAddressInUse, ReasonInvalidRequest, ReasonInvalidService,
	ReasonNoPool, ReasonNotAllowed, ReasonOther, ReasonPoolExhausted,
}

// Reasons returns every reason, sorted.
func Reasons() []string { return slices.Clone(reasons[:]) }

// ReasonOf maps an allocator error to its reason by the ipam sentinel it
// wraps.
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, ipam.ErrPoolExhausted):
		return ReasonPoolExhausted
	case errors.Is(err, ipam.ErrNoPool):
		return ReasonNoPool
	case errors.Is(err, ipam.ErrNotAllowed):
		return ReasonNotAllowed
	case errors.Is(err, ipam.ErrInUse):
		return ReasonAddressInUse
	case errors.Is(err, ipam.ErrInvalid):
		return ReasonInvalidRequest
	}
	return ReasonOther
}

// Counters are one process's allocation and refusal counts. The zero value
// is ready; a nil *Counters counts nothing, so callers need no checks.
// Safe for concurrent use.
type Counters struct {
	allocations atomic.Uint64
	refusals    [len(reasons)]atomic.Uint64 // indexed like reasons
}

// Allocated counts one Service given new addresses.
func (c *Counters) Allocated() {
	if c != nil {
		c.allocations.Add(1)
	}
}

// Refused counts one refusal; an unknown reason counts as other.
func (c *Counters) Refused(reason string) {
	if c == nil {
		return
	}
	i := slices.Index(reasons[:], reason)
	if i < 0 {
		i = slices.Index(reasons[:], ReasonOther)
	}
	c.refusals[i].Add(1)
}

// Stats are the counters' values.
type Stats struct {
	Allocations uint64
	// Refusals has every reason of Reasons(), zero or not, so each series
	// exists from the start (rate() and dashboards need no absent()).
	Refusals map[string]uint64
}

// Stats reads the counters.
func (c *Counters) Stats() Stats {
	s := Stats{Refusals: make(map[string]uint64, len(reasons))}
	for i, r := range reasons {
		if c != nil {
			s.Refusals[r] = c.refusals[i].Load()
		} else {
			s.Refusals[r] = 0
		}
	}
	if c != nil {
		s.Allocations = c.allocations.Load()
	}
	return s
}
