// SPDX-License-Identifier: Apache-2.0

package controller

import "github.com/lbd-project/lbd/pkg/metrics/ipamcount"

// The controller counts what it reports as Events: an IPAllocated Event is
// an allocation, an AllocationFailed or InvalidService Event (once per
// distinct message, see refuse) a refusal. Only the leader's process
// counts (see package ipamcount). Config.IPAM nil counts nothing.

// countAllocated counts one Service given new addresses.
func (t *termState) countAllocated() { t.c.cfg.IPAM.Allocated() }

// countRefused counts one refusal, by the allocator error (err) or, for an
// invalid Service, the Event reason.
func (t *termState) countRefused(eventReason string, err error) {
	if eventReason == ReasonInvalidService {
		t.c.cfg.IPAM.Refused(ipamcount.ReasonInvalidService)
		return
	}
	t.c.cfg.IPAM.Refused(ipamcount.ReasonOf(err))
}
