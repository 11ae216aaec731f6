// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"time"

	lab "github.com/lbd-project/lbd/test/vm"
)

// fastModeBench measures lbd's delivery to a pod on the VIP owner's own
// node in the default mode (through the node's stack, where a CNI
// enforces NetworkPolicy) and with --fast-local-redirect (straight to the
// pod's veth, bypassing it), on a one-node lab, and prints a table and
// "bench: ..." lines.
func fastModeBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fast-mode-bench", flag.ExitOnError)
	lbd := fs.String("lbd", "", "path of the lbd binary (required)")
	podserver := fs.String("podserver", "", "path of the podserver binary (required)")
	duration := fs.Duration("duration", 5*time.Second, "length of each measurement (at most 30s)")
	workers := fs.Int("workers", 2, "parallel client loops")
	runs := fs.Int("runs", 3, "alternating runs per mode (the best one is reported)")
	_ = fs.Parse(args)
	if *lbd == "" || *podserver == "" {
		return errors.New("--lbd and --podserver are required")
	}
	l, err := lab.New(ctx, lab.Options{LBD: *lbd, PodServer: *podserver, Nodes: 1, PodsPerNode: 1, Logf: func(string, ...any) {}})
	if err != nil {
		return err
	}
	defer l.Close()
	node := l.Nodes[0]
	svc := lab.ExtraService{Name: "local-delivery"}
	if err := l.ApplyServices(svc); err != nil {
		return err
	}
	v, _, err := l.WaitService(ctx, svc.Key(), l.Pods(), 30*time.Second)
	if err != nil {
		return err
	}
	target := netip.AddrPortFrom(v.VIP, lab.ServiceHTTPPort)
	modes := []struct {
		name string
		args []string
	}{
		{"default", nil},
		{"fast-local-redirect", []string{"--fast-local-redirect"}},
	}
	best := map[string]lab.DeliveryRate{}
	// Alternate the modes so that a slow phase of the shared machine hits
	// both alike.
	for i := 0; i < *runs; i++ {
		for _, m := range modes {
			if err := l.StopLBD(node); err != nil {
				return err
			}
			l.SetLBDArgs(m.args...)
			if err := l.StartNodeLBD(ctx, node, true); err != nil {
				return err
			}
			if _, _, err := l.WaitService(ctx, svc.Key(), l.Pods(), 30*time.Second); err != nil {
				return err
			}
			r, err := l.Client().BenchDelivery(ctx, target, *duration, *workers)
			if err != nil {
				return err
			}
			logf("run %d %s: %.0f req/s, %.0f conn/s (%d errors)", i+1, m.name, r.RPS, r.CPS, r.Errors)
			b := best[m.name]
			b.RPS, b.CPS = max(b.RPS, r.RPS), max(b.CPS, r.CPS)
			b.Errors += r.Errors
			best[m.name] = b
		}
	}
	if err := l.Close(); err != nil {
		logf("teardown: %v", err)
	}
	fmt.Printf("%-22s %14s %14s %8s\n", "local delivery", "keep-alive r/s", "new conn/s", "errors")
	for _, m := range modes {
		b := best[m.name]
		fmt.Printf("%-22s %14.0f %14.0f %8d\n", m.name, b.RPS, b.CPS, b.Errors)
	}
	d, f := best["default"], best["fast-local-redirect"]
	for _, m := range modes {
		b := best[m.name]
		fmt.Printf("bench: local delivery %s rps %.0f cps %.0f\n", m.name, b.RPS, b.CPS)
	}
	if d.RPS > 0 && d.CPS > 0 {
		fmt.Printf("bench: fast-local-redirect/default rps ratio %.2f cps ratio %.2f\n", f.RPS/d.RPS, f.CPS/d.CPS)
	}
	if d.Errors+f.Errors > 0 {
		return fmt.Errorf("%d requests failed", d.Errors+f.Errors)
	}
	return nil
}
