// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// lbdRunQPS is the client-go QPS `lbd run` gives the controller's client
// (cmd/lbd/kube.go); the bench measures the controller as it runs there
// unless -qps says otherwise.
const lbdRunQPS = controller.ClientQPS

const ns = "default"

type bench struct {
	ctx   context.Context
	admin kubernetes.Interface
	n     int
	log   *slog.Logger
}

func svcName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// parallel runs f(0..n-1) on 8 workers and returns the first error.
func parallel(n int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// createServices creates the Services before the controller runs, so the
// measurement is the controller's alone.
func (b *bench) createServices() error {
	start := time.Now()
	err := parallel(b.n, func(i int) error {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: svcName(i), Namespace: ns},
			Spec: corev1.ServiceSpec{
				Type:  corev1.ServiceTypeLoadBalancer,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
				// No node ports: 10 000 Services would exhaust the
				// 30000-32767 range.
				AllocateLoadBalancerNodePorts: ptr(false),
			},
		}
		_, err := b.admin.CoreV1().Services(ns).Create(b.ctx, s, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create Service %s: %w", s.Name, err)
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "created %d Services in %.1f s (setup, not measured)\n", b.n, time.Since(start).Seconds())
	return err
}

func ptr[T any](v T) *T { return &v }

// allocate starts the controller and times it until every Service has an
// address in status, as seen by a separate watch.
func (b *bench) allocate(cfg *rest.Config) (stop func(), err error) {
	allocated := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]bool{}
	check := func(obj any) {
		s, ok := obj.(*corev1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[s.Name] {
			seen[s.Name] = true
			if len(seen) == b.n {
				close(allocated)
			}
		}
	}
	fac := informers.NewSharedInformerFactoryWithOptions(b.admin, 0, informers.WithNamespace(ns))
	inf := fac.Core().V1().Services().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    check,
		UpdateFunc: func(_, o any) { check(o) },
	})
	wctx, wcancel := context.WithCancel(b.ctx)
	fac.Start(wctx.Done())
	fac.WaitForCacheSync(wctx.Done())

	cnt := newCounter()
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = cnt.wrap
	clients, err := kube.NewClients(cfg)
	if err != nil {
		wcancel()
		return nil, err
	}
	ctl, err := controller.New(controller.Config{Clients: clients, Identity: "bench", Log: b.log})
	if err != nil {
		wcancel()
		return nil, err
	}
	cctx, ccancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ctl.Run(cctx) }()
	stop = func() {
		ccancel()
		<-done
		wcancel()
	}
	select {
	case <-allocated:
	case err := <-done:
		wcancel()
		return nil, fmt.Errorf("controller stopped: %v", err)
	case <-time.After(10 * time.Minute):
		stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("only %d of %d Services allocated after 10 min", len(seen), b.n)
	}
	took := time.Since(start)
	atDone := cnt.total()
	leasesAtDone := cnt.get("PUT leases") + cnt.get("GET leases")
	statusWrites := cnt.get("PUT services/status")
	// Events go out asynchronously; wait for them to settle so the total
	// is every request the allocation cost. (Lease renewals go on every
	// second for as long as the controller runs; they are counted up to
	// the last status write only.)
	for last := -1; last != cnt.get("POST events"); {
		last = cnt.get("POST events")
		time.Sleep(2 * time.Second)
	}
	leases := cnt.get("PUT leases") + cnt.get("GET leases")
	total := cnt.total() - leases + leasesAtDone
	fmt.Printf("bench: k8s allocate %d services %.1f s %d requests\n", b.n, took.Seconds(), total)
	fmt.Printf("bench: k8s allocate detail: %d requests when the last status was seen, %d status writes (%.2f per Service); by kind: %s\n",
		atDone, statusWrites, float64(statusWrites)/float64(b.n), cnt)
	return stop, nil
}
