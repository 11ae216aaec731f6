// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	lab "github.com/lbd-project/lbd/test/vm"
)

// errSoakFailed means the soak ran but requests failed outside the
// failover windows; the report says which.
var errSoakFailed = errors.New("requests failed outside failover windows")

// soak runs lab.RunSoak on a 3-node lab with 3 clients and prints its
// report. It exits 1 if any request failed outside a failover window.
func soak(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	lbd := fs.String("lbd", "", "path of the lbd binary (required)")
	podserver := fs.String("podserver", "", "path of the podserver binary (required)")
	duration := fs.Duration("duration", 10*time.Minute, "how long the traffic runs (at most 2h)")
	failoverEvery := fs.Duration("failover-every", time.Minute, "interval between failovers of the soak VIP's owner")
	churnEvery := fs.Duration("churn-every", 2*time.Second, "interval between EndpointSlice rewrites")
	sampleEvery := fs.Duration("sample-every", 30*time.Second, "interval of the memory and connection-table samples")
	clients := fs.Int("clients", 3, "client namespaces sending traffic")
	ctSize := fs.Int("conntrack-size", 262144, "lbd's --conntrack-size")
	_ = fs.Parse(args)
	if *lbd == "" || *podserver == "" {
		return errors.New("--lbd and --podserver are required")
	}
	l, err := lab.New(ctx, lab.Options{
		LBD: *lbd, PodServer: *podserver, Clients: *clients, Logf: logf,
		LBDArgs: []string{"--conntrack-size", strconv.Itoa(*ctSize)},
	})
	if err != nil {
		return err
	}
	defer l.Close()
	logf("soak: %s of traffic from %d clients, failover every %s, churn every %s", *duration, *clients, *failoverEvery, *churnEvery)
	rep, runErr := lab.RunSoak(ctx, l, lab.SoakOptions{
		Duration: *duration, FailoverEvery: *failoverEvery, ChurnEvery: *churnEvery, SampleEvery: *sampleEvery, Logf: logf,
	}, *ctSize)
	if runErr != nil {
		logf("process logs:%s", l.LogTails(20))
	}
	if err := l.Close(); err != nil {
		logf("teardown: %v", err)
	}
	if rep != nil {
		rep.Print(os.Stdout)
		if rep.FailedOutside() > 0 && runErr == nil {
			runErr = errSoakFailed
		}
	}
	if runErr != nil {
		return fmt.Errorf("soak: %w", runErr)
	}
	return nil
}
