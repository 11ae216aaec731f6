// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/model"
)

// syncServices is a State of n services with 10 distinct backends each
// (n*10 distinct backend addresses), the control-plane benchmark's shape.
// Service i has Revision i+1 (its content is a function of i), as the
// Kubernetes source hands out.
func syncServices(n int) *model.State {
	st := &model.State{Services: make([]model.Service, 0, n)}
	port := model.ServicePort{Name: "http", Port: 80, Protocol: model.TCP}
	for i := range n {
		svc := model.Service{
			Key:      model.ServiceKey{Namespace: "bench", Name: fmt.Sprintf("svc%d", i)},
			VIPs:     []netip.Addr{netip.AddrFrom4([4]byte{10, 30, byte(i >> 8), byte(i)})},
			Ports:    []model.ServicePort{port},
			Revision: uint64(i + 1),
		}
		for k := range 10 {
			b := i*10 + k
			svc.Endpoints = append(svc.Endpoints, model.Endpoint{
				Addr:     netip.AddrFrom4([4]byte{10, byte(64 + b>>16), byte(b >> 8), byte(b)}),
				NodeName: "node2", Ready: true, Serving: true,
				Ports: []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}},
			})
		}
		st.Services = append(st.Services, svc)
	}
	return st
}

// cpuTime is this process's user+system CPU time: on a shared machine a
// steadier figure than the wall clock (tables are filled in parallel, so
// it can exceed it).
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrivilegedSync10k: the time to program 10 000 services (10
// backends each) into fresh maps (full), and one more service on top of
// them (one_change). ns/op is per Sync, cpu-ns/op its CPU time.
func BenchmarkPrivilegedSync10k(b *testing.B) {
	testutil.Privileged(b)
	const n = 10000
	st := syncServices(n)
	opts := func(b *testing.B) Options {
		return Options{PinDir: testPinDir(b), NodeIP4: labNodeIP, MaxServices: 16384, MaxBackends: 1 << 17}
	}
	b.Run("full", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			d, err := New(opts(b))
			if err != nil {
				b.Fatalf("%+v", err)
			}
			b.StartTimer()
			c0 := cpuTime(b)
			stats, err := d.Sync(st, "node1")
			cpu += cpuTime(b) - c0
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if stats.FrontendsAdded != n || stats.BackendsAdded != 10*n {
				b.Fatalf("sync stats %+v, want %d frontends and %d backends added", stats, n, 10*n)
			}
			d.Close()
			if err := Cleanup(d.opts.PinDir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	unversioned := func(st *model.State) *model.State {
		out := &model.State{Services: slices.Clone(st.Services)}
		for i := range out.Services {
			out.Services[i].Revision = 0
		}
		return out
	}
	b.Run("one_change", func(b *testing.B) { benchOneChange(b, opts(b), st, func(st *model.State) *model.State { return st }) })
	// Without revisions (a static manifest): every service fingerprinted.
	b.Run("one_change_unversioned", func(b *testing.B) { benchOneChange(b, opts(b), st, unversioned) })
}

// benchOneChange alternates between the n services of st and n+1, as
// prepared by prep.
func benchOneChange(b *testing.B, o Options, st *model.State, prep func(*model.State) *model.State) {
	n := len(st.Services)
	d, err := New(o)
	if err != nil {
		b.Fatalf("%+v", err)
	}
	b.Cleanup(func() { d.Close() })
	// Alternate between the 10 000 and 10 001 services: every Sync
	// adds or removes one, and must write nothing else.
	more := prep(&model.State{Services: append(st.Services[:n:n], syncServices(n + 1).Services[n])})
	base := prep(st)
	if _, err := d.Sync(base, "node1"); err != nil {
		b.Fatal(err)
	}
	states := []*model.State{more, base}
	i := 0
	c0 := cpuTime(b)
	for b.Loop() {
		stats, err := d.Sync(states[i%2], "node1")
		if err != nil {
			b.Fatal(err)
		}
		if stats.FrontendsAdded+stats.FrontendsRemoved != 1 || stats.TablesWritten > 1 || stats.FrontendsUpdated != 0 {
			b.Fatalf("one change rewrote more than the service: %+v", stats)
		}
		i++
	}
	b.ReportMetric(float64((cpuTime(b)-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
