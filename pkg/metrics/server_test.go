// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/status"
)

// TestServeScrape runs the real server on a loopback port and scrapes it
// over HTTP, as Prometheus and kubelet would.
func TestServeScrape(t *testing.T) {
	var st atomic.Pointer[status.Status]
	st.Store(&status.Status{Source: "static:x"}) // not reconciled yet
	snap := func() status.Status { return *st.Load() }

	reg, _, err := NewRegistry(snap, Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, NewHandler(reg, ReadyFromSnapshot(snap))) }()
	base := "http://" + ln.Addr().String()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		return resp.StatusCode, string(b)
	}

	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d %q, want 200", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "datapath not attached") {
		t.Errorf("/readyz before reconcile = %d %q, want 503 naming the missing datapath", code, body)
	}

	f := fixture()
	st.Store(&f)
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after reconcile = %d %q, want 200", code, body)
	}
	// Readiness latches: a later empty snapshot does not flap it.
	st.Store(&status.Status{})
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a later empty snapshot = %d %q, want 200", code, body)
	}
	st.Store(&f)

	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	for _, line := range []string{
		`lbd_datapath_packets_total{port="80",protocol="TCP",vip="10.20.1.1"} 1000`,
		`lbd_vip_owner_info{owner="node2",vip="10.20.1.128"} 1`,
		`lbd_pool_addresses_used{pool="internal"} 1`,
		`lbd_build_info{goversion="go`,
		`go_goroutines `,
		`process_open_fds `,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ServeListener after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The port is taken: Serve must report it, not hang.
	err = Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler())
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("Serve on a taken port = %v, want a wrapped *net.OpError", err)
	}
}

func TestReadyFromSnapshot(t *testing.T) {
	attached := status.Datapath{Attached: map[string]string{"eth0": "tcx"}}
	tests := []struct {
		name  string
		st    status.Status
		ready bool
	}{
		{"nothing", status.Status{}, false},
		{"no datapath", status.Status{Source: "k8s", Pools: []status.Pool{{Name: "p"}}}, false},
		{"attached, no state", status.Status{Source: "k8s", Datapath: attached}, false},
		{"pools", status.Status{Source: "k8s", Datapath: attached, Pools: []status.Pool{{Name: "p"}}}, true},
		{"reconcile errors only", status.Status{Source: "k8s", Datapath: attached, Errors: []string{"bad pool"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ReadyFromSnapshot(func() status.Status { return tt.st })()
			if got := err == nil; got != tt.ready {
				t.Errorf("ready = %v (%v), want %v", got, err, tt.ready)
			}
			if err != nil && !errors.Is(err, ErrNotReconciled) {
				t.Errorf("error %v does not wrap ErrNotReconciled", err)
			}
		})
	}
}
