// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
)

// TestControllerCountsAllocationsAndRefusals: the counters behind
// lbd_ipam_allocations_total and lbd_ipam_refusals_total move with the
// Events the leader records, once per Event, against a real API server.
func TestControllerCountsAllocationsAndRefusals(t *testing.T) {
	e := newEnv(t)
	var counts ipamcount.Counters
	c, err := controller.New(controller.Config{Clients: e.lbd, Identity: "lbd-metrics", Log: testLog(t), IPAM: &counts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.eventually("lbd-metrics leads", func() (bool, string) { return c.Leading(), "not leading" })

	e.createService("one")
	e.createService("two")
	e.wantIngress("one", "10.20.1.1")
	e.wantIngress("two", "10.20.1.2")
	// An internal Service asking for an external address: not allowed.
	e.createService("sneaky", requestIP("10.20.1.130"))
	e.event("sneaky", controller.ReasonAllocationFailed)
	// A Service pkg/config rejects.
	e.createService("garbled", annotate("lbd.dev/loadBalancerIPs", "10.20.1.300"))
	e.event("garbled", controller.ReasonInvalidService)
	// Another pass (a new Service) must not count the persisting
	// refusals again, nor the unchanged allocations.
	e.createService("three")
	e.wantIngress("three", "10.20.1.3")

	want := func() (bool, string) {
		s := counts.Stats()
		got := fmt.Sprintf("allocations %d, not_allowed %d, invalid_service %d, other reasons %d",
			s.Allocations, s.Refusals[ipamcount.ReasonNotAllowed], s.Refusals[ipamcount.ReasonInvalidService],
			total(s.Refusals)-s.Refusals[ipamcount.ReasonNotAllowed]-s.Refusals[ipamcount.ReasonInvalidService])
		return got == "allocations 3, not_allowed 1, invalid_service 1, other reasons 0", got
	}
	e.eventually("counters", want)
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
