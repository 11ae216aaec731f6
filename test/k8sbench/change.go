// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

const self = "bench-node"

// sink is the end point of a change: the datapath (or nothing), plus the
// one expectation the driver is waiting for.
type sink struct {
	dp *datapath.Datapath

	mu      sync.Mutex
	want    func(*model.State) bool
	reached chan time.Time
	synced  chan struct{} // closed after the first State is synced
	once    sync.Once
	errs    int
	lastErr error
}

// publish is the source's publish: sync, then check the expectation.
func (s *sink) publish(st *model.State) {
	if s.dp != nil {
		if _, err := s.dp.Sync(st, self); err != nil {
			s.mu.Lock()
			s.errs++
			s.lastErr = err
			s.mu.Unlock()
		}
	}
	now := time.Now()
	s.once.Do(func() { close(s.synced) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.want != nil && s.want(st) {
		s.want = nil
		s.reached <- now
	}
}

func (s *sink) expect(f func(*model.State) bool) {
	s.mu.Lock()
	s.want = f
	s.mu.Unlock()
}

func backend(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})
}

func (b *bench) createSlices() error {
	start := time.Now()
	err := parallel(b.n, func(i int) error {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: svcName(i) + "-1", Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: svcName(i)},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{backend(i).String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
				NodeName:   ptr("node-b"),
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)}},
		}
		if _, err := b.admin.DiscoveryV1().EndpointSlices(ns).Create(b.ctx, es, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create EndpointSlice %s: %w", es.Name, err)
		}
		return nil
	})
	fmt.Fprintf(os.Stderr, "created %d EndpointSlices in %.1f s (setup, not measured)\n", b.n, time.Since(start).Seconds())
	return err
}

// changeToDatapath times changes one at a time, from the API call to the
// moment the datapath (or the sync call) holds them.
func (b *bench) changeToDatapath(cfg *rest.Config, changes int, useDatapath bool) error {
	if err := b.createSlices(); err != nil {
		return err
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: self}}
	if _, err := b.admin.CoreV1().Nodes().Create(b.ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Node: %w", err)
	}
	s := &sink{reached: make(chan time.Time, 1), synced: make(chan struct{})}
	end := "the State handed to sync"
	if useDatapath {
		pin := fmt.Sprintf("/sys/fs/bpf/lbd-k8sbench-%d", os.Getpid())
		dp, err := datapath.New(datapath.Options{
			PinDir:      pin,
			NodeIP4:     netip.MustParseAddr("10.20.0.11"),
			MaxServices: uint32(b.n + 1024),
		})
		if err != nil {
			return fmt.Errorf("load datapath (run as root, or with -datapath=false): %w", err)
		}
		defer datapath.Cleanup(pin)
		defer dp.Close()
		s.dp = dp
		end = "datapath.Sync into a loaded pkg/datapath (BPF maps)"
	}

	clients, err := kube.NewClients(cfg)
	if err != nil {
		return err
	}
	src := kube.New(clients, kube.Options{Log: b.log})
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	srcDone := make(chan error, 1)
	start := time.Now()
	go func() { srcDone <- src.Run(ctx, s.publish) }()
	select {
	case <-s.synced:
	case err := <-srcDone:
		return fmt.Errorf("source stopped: %v", err)
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("no State synced within 5 min")
	}
	fmt.Fprintf(os.Stderr, "first State of %d Services synced in %.1f s\n", b.n, time.Since(start).Seconds())

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("create profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	lat := make([]time.Duration, 0, changes)
	var latSlice, latSvc []time.Duration
	for k := range changes {
		i := (k * 7919) % b.n // spread over the Services
		key := model.ServiceKey{Namespace: ns, Name: svcName(i)}
		var t0 time.Time
		if k%2 == 0 {
			es, err := b.admin.DiscoveryV1().EndpointSlices(ns).Get(ctx, svcName(i)+"-1", metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get EndpointSlice: %w", err)
			}
			addr := backend(b.n + k)
			es.Endpoints[0].Addresses = []string{addr.String()}
			s.expect(func(st *model.State) bool {
				svc, ok := st.Service(key)
				return ok && slices.ContainsFunc(svc.Endpoints, func(e model.Endpoint) bool { return e.Addr == addr })
			})
			t0 = time.Now()
			if _, err := b.admin.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update EndpointSlice: %w", err)
			}
		} else {
			svc, err := b.admin.CoreV1().Services(ns).Get(ctx, svcName(i), metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("get Service: %w", err)
			}
			port := uint16(1000 + k)
			svc.Spec.Ports[0].Port = int32(port)
			s.expect(func(st *model.State) bool {
				ms, ok := st.Service(key)
				return ok && len(ms.Ports) == 1 && ms.Ports[0].Port == port
			})
			t0 = time.Now()
			if _, err := b.admin.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update Service: %w", err)
			}
		}
		select {
		case t1 := <-s.reached:
			lat = append(lat, t1.Sub(t0))
			if k%2 == 0 {
				latSlice = append(latSlice, t1.Sub(t0))
			} else {
				latSvc = append(latSvc, t1.Sub(t0))
			}
		case <-time.After(30 * time.Second):
			return fmt.Errorf("change %d (%s) did not reach %s within 30 s", k, key, end)
		}
	}
	fmt.Printf("bench: k8s change-to-datapath p50 %d ms p99 %d ms\n", pct(lat, 0.50).Milliseconds(), pct(lat, 0.99).Milliseconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Printf("bench: k8s change-to-datapath detail: %d changes at %d Services, end point %s; EndpointSlice p50 %.1f ms p99 %.1f ms, Service (the IPAM controller runs a pass too) p50 %.1f ms p99 %.1f ms; min %.1f ms max %.1f ms, sync errors %d\n",
		len(lat), b.n, end, ms(pct(latSlice, 0.5)), ms(pct(latSlice, 0.99)), ms(pct(latSvc, 0.5)), ms(pct(latSvc, 0.99)),
		ms(pct(lat, 0)), ms(pct(lat, 1)), s.errs)
	if s.errs > 0 {
		fmt.Fprintf(os.Stderr, "last sync error: %v\n", s.lastErr)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pct returns the p-quantile of d (sorted in place); 0 for none.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(p*float64(len(d))))]
}
