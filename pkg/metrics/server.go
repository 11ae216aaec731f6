// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lbd-project/lbd/pkg/status"
)

// DefaultAddr is the default listen address of the metrics endpoint. 9474 is
// not taken by any exporter in Prometheus's default port allocation list;
// lbd runs with hostNetwork, so the port is opened on every node.
const DefaultAddr = ":9474"

// NewHandler returns the HTTP handler of the metrics endpoint:
//
//   - /metrics: the Prometheus exposition of g.
//   - /healthz: liveness, 200 whenever the process can answer HTTP. It
//     deliberately does not look at the daemon's errors: a bad IPPool is a
//     reason to alert, not to restart the pod (a restart would not fix it).
//   - /readyz: readiness, 200 once ready returns nil, 503 with its error
//     before. Readiness only ever goes from not ready to ready: after ready
//     succeeded once it is not called again, so kubelet probes stop costing
//     a snapshot.
func NewHandler(g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// One failed collector must not blank the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	var isReady atomic.Bool
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !isReady.Load() {
			if err := ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			isReady.Store(true)
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// ErrNotReconciled is returned by the readiness check of ReadyFromSnapshot
// until the daemon has attached its datapath and reconciled a first State.
var ErrNotReconciled = errors.New("no State reconciled yet")

// ReadyFromSnapshot returns a readiness check built on the status snapshot:
// ready when the daemon has a source, its datapath is attached, and it has
// reconciled a State, seen as pools or VIPs in the snapshot or errors the
// reconcile reported. A cluster without any IPPool therefore stays not
// ready, which is what an operator should see: lbd has nothing to serve.
func ReadyFromSnapshot(snapshot func() status.Status) func() error {
	return func() error {
		st := snapshot()
		switch {
		case st.Source == "":
			return fmt.Errorf("%w: no source", ErrNotReconciled)
		case len(st.Datapath.Attached) == 0:
			return fmt.Errorf("%w: datapath not attached", ErrNotReconciled)
		case len(st.Pools) == 0 && len(st.VIPs) == 0 && len(st.Errors) == 0:
			return fmt.Errorf("%w: no pools", ErrNotReconciled)
		}
		return nil
	}
}

// Serve listens on addr and serves h until ctx is done, then shuts down
// gracefully. It returns nil after a shutdown caused by ctx.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, h)
}

// ServeListener is Serve on a listener the caller opened; it closes ln.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// A scrape may wait up to the collector's snapshot timeout.
		WriteTimeout: DefaultTimeout + 20*time.Second,
		IdleTimeout:  2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shut down metrics server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// NewRegistry returns a registry holding a Collector over snapshot, plus the
// Go runtime and process collectors (memory, goroutines, open files).
func NewRegistry(snapshot func() status.Status, opts Options) (*prometheus.Registry, *Collector, error) {
	reg := prometheus.NewRegistry()
	c := NewCollector(snapshot, opts)
	for _, col := range []prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(col); err != nil {
			return nil, nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	return reg, c, nil
}
