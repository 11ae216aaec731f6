// SPDX-License-Identifier: Apache-2.0

package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// TestStopWithoutAPIServer: the source stops promptly when asked to while
// the API server is down, and publishes nothing in between (the last
// State keeps serving).
func TestStopWithoutAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	c.DumpLogsOnFailure(t)
	clients, err := kube.NewClients(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan *model.State, 16)
	done := make(chan error, 1)
	go func() {
		done <- kube.New(clients, kube.Options{}).Run(ctx, func(st *model.State) { published <- st })
	}()
	select {
	case <-published:
	case <-time.After(30 * time.Second):
		t.Fatal("no first State within 30 s")
	}
	// Let the start-up settle: States published until it is quiet.
	for quiet := false; !quiet; {
		select {
		case <-published:
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	select {
	case st := <-published:
		t.Errorf("published during the outage: %+v", st)
	default:
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		t.Logf("stopped %v after cancel", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel with the API server down")
	}
}

// TestStartWithoutAPIServer: a source started while the API server is down
// publishes nothing (no empty State that would withdraw every VIP) and
// still stops within moments when asked to, although client-go's
// watch-list backoff by then sleeps for seconds without looking at its
// stop channel.
func TestStartWithoutAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	c.DumpLogsOnFailure(t)
	clients, err := kube.NewClients(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan *model.State, 16)
	done := make(chan error, 1)
	go func() {
		done <- kube.New(clients, kube.Options{}).Run(ctx, func(st *model.State) { published <- st })
	}()
	time.Sleep(8 * time.Second)
	select {
	case st := <-published:
		t.Errorf("published without an API server: %+v", st)
	default:
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
		t.Logf("stopped %v after cancel", time.Since(start).Round(time.Millisecond))
	case <-time.After(4 * time.Second):
		t.Fatal("Run did not return within 4 s of cancel with the API server down")
	}
}
