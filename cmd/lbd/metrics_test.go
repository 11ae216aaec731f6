// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/status"
)

func TestStartMetrics(t *testing.T) {
	// Find a free loopback port, then let startMetrics listen on it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	snap := func() status.Status {
		return status.Status{Source: "static:x", Announce: status.AnnounceInfo{Answered: 42}}
	}
	counts := &ipamcount.Counters{}
	counts.Allocated()
	counts.Refused(ipamcount.ReasonPoolExhausted)
	if err := startMetrics(ctx, addr, snap, nil, counts, g); err != nil {
		t.Fatal(err)
	}
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics endpoint never came up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, "lbd_arp_ndp_answered_total 42") || !strings.Contains(body, `lbd_build_info{goversion=`) ||
		!strings.Contains(body, "lbd_ipam_allocations_total 1") || !strings.Contains(body, `lbd_ipam_refusals_total{reason="pool_exhausted"} 1`) {
		t.Errorf("scrape lacks the snapshot's values:\n%s", body)
	}
	cancel()
	if err := g.Wait(); err != nil {
		t.Errorf("errgroup after cancel: %v", err)
	}

	// An empty address disables the endpoint and starts nothing.
	var g2 errgroup.Group
	if err := startMetrics(context.Background(), "", snap, nil, nil, &g2); err != nil {
		t.Errorf("startMetrics with empty addr: %v", err)
	}
	if err := g2.Wait(); err != nil {
		t.Errorf("nothing should run: %v", err)
	}
}
