// SPDX-License-Identifier: Apache-2.0

package controller_test

import (
	"context"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/controller"
)

// TestStopWithoutAPIServer: a controller stops promptly when asked to while
// the API server is down (a node drained during a control-plane outage must
// not wait for the kubelet's SIGKILL).
func TestStopWithoutAPIServer(t *testing.T) {
	e := newEnv(t)
	c, err := controller.New(controller.Config{Clients: e.lbd, Identity: "lbd-a", Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	e.eventually("lbd-a leads", func() (bool, string) { return c.Leading(), "not leading" })
	e.createService("before")
	e.wantIngress("before", "10.20.1.1")
	if err := e.cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
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
