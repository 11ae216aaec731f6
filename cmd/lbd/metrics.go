// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/lbd-project/lbd/pkg/agent"
	"github.com/lbd-project/lbd/pkg/metrics"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/status"
)

// defaultMetricsAddr is the default of --metrics-addr: every node listens on
// the same port (lbd runs with hostNetwork; in the lab each node is its own
// network namespace).
const defaultMetricsAddr = metrics.DefaultAddr

// startMetrics serves /metrics, /healthz and /readyz on addr in g until ctx
// is done. An empty addr disables the endpoint. The listener is opened in g's
// goroutine, so a taken port fails the daemon through g like any other
// component rather than being logged and ignored.
func startMetrics(ctx context.Context, addr string, snap func() status.Status, dp func() metrics.DatapathReader, ipam *ipamcount.Counters, g *errgroup.Group) error {
	if addr == "" {
		return nil
	}
	reg, _, err := metrics.NewRegistry(snap, metrics.Options{Version: version, Datapath: dp, IPAM: ipam})
	if err != nil {
		return fmt.Errorf("set up metrics: %w", err)
	}
	h := metrics.NewHandler(reg, metrics.ReadyFromSnapshot(snap))
	g.Go(func() error { return metrics.Serve(ctx, addr, h) })
	return nil
}

// metricsDatapath gives the collector the agent's datapath once loaded
// (a nil *Datapath must become a nil interface).
func metricsDatapath(a *agent.Agent) func() metrics.DatapathReader {
	return func() metrics.DatapathReader {
		if dp := a.Datapath(); dp != nil {
			return dp
		}
		return nil
	}
}
