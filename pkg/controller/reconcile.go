// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// Event reasons on Services.
const (
	ReasonIPAllocated      = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonInvalidService   = "InvalidService"
	// ReasonAddressOutsidePool: the Service keeps serving on an address
	// that no IPPool contains any more (its pool shrank or was removed).
	ReasonAddressOutsidePool = "AddressOutsidePool"
)

const (
	// coalesce folds a burst of informer events into one pass.
	coalesce = 10 * time.Millisecond
	// retryAfter is the delay before a pass that failed to write is
	// retried; later events retry sooner.
	retryAfter = time.Second
)

// term is one leadership term's state. It is only touched by lead's
// goroutine.
type termState struct {
	c   *Controller
	inf *kube.Informers
	rec record.EventRecorder

	// conv converts only the objects changed since the last pass.
	conv  *config.Converter
	alloc *ipam.Allocator
	// poolsKey identifies the pool specs alloc was built from.
	poolsKey string
	// written is what this term last wrote to (or restored from) each
	// Service's status: the cache lags our own writes, and a pass that
	// trusted it could hand an address out twice.
	written map[model.ServiceKey][]netip.Addr
	// refused is the last AllocationFailed or InvalidService message per
	// Service, so a persisting refusal is reported once.
	refused map[model.ServiceKey]string
	// stranded holds the Services that keep addresses no pool contains
	// any more (a pool shrank or went away): they keep them, see
	// restore. formerPool names the pool each such address came from.
	stranded   map[model.ServiceKey][]netip.Addr
	formerPool map[netip.Addr]string
	// warned is the last AddressOutsidePool message per Service.
	warned map[model.ServiceKey]string
}

// lead runs one term: caches, restore, then a pass per change.
func (c *Controller) lead(ctx context.Context) error {
	inf, err := kube.NewInformers(c.cfg.Clients, kube.Services|kube.Namespaces|kube.Pools)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		inf.Shutdown()
	}()
	bc := record.NewBroadcaster(record.WithContext(ctx))
	defer bc.Shutdown()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.cfg.Clients.Kube.CoreV1().Events("")})
	t := &termState{
		c:       c,
		inf:     inf,
		rec:     bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "lbd-ipam"}),
		conv:    config.NewConverter(c.cfg.Options),
		written: make(map[model.ServiceKey][]netip.Addr),
		refused: make(map[model.ServiceKey]string),

		stranded:   make(map[model.ServiceKey][]netip.Addr),
		formerPool: make(map[netip.Addr]string),
		warned:     make(map[model.ServiceKey]string),
	}

	inf.Start(ctx)
	// Nothing is assigned before every Service is known: restoring from
	// a partial cache could hand out an address in use.
	if err := inf.WaitForCacheSync(ctx); err != nil {
		return err
	}
	retry := time.NewTimer(0) // the first pass runs at once
	pending := time.NewTimer(time.Hour)
	pending.Stop()
	defer retry.Stop()
	defer pending.Stop()
	waiting := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-inf.Changed():
			// A fixed window from the first change, not extended by
			// later ones, so steady churn cannot starve the pass.
			if !waiting {
				waiting = true
				pending.Reset(coalesce)
			}
			continue
		case <-pending.C:
			waiting = false
		case <-retry.C:
		}
		if err := t.pass(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("ipam pass incomplete; retrying", "op", "reconcile", "err", err)
			retry.Reset(retryAfter)
		}
	}
}

// pass reconciles every Service once. The error joins what could not be
// written; everything else was done.
func (t *termState) pass(ctx context.Context) error {
	log := t.c.log
	res, decodeErr := t.inf.Resources()
	if decodeErr != nil {
		log.Warn("IPPools left out", "op", "decode", "err", decodeErr)
	}
	st, convErr := t.conv.For(res)
	invalid := invalidServices(convErr)

	if key := poolsKey(res); t.alloc == nil || key != t.poolsKey {
		alloc, err := ipam.New(st.Pools)
		if err != nil {
			// pkg/config already validated the pools, so this is a
			// bug; keep the old allocator rather than none.
			return fmt.Errorf("build allocator: %w", err)
		}
		t.restore(alloc, st)
		t.alloc, t.poolsKey = alloc, key
	}

	wanted := make(map[model.ServiceKey]bool, len(st.Services))
	for _, svc := range st.Services {
		wanted[svc.Key] = true
	}
	var errs []error

	// Releases first, so addresses freed now serve refused Services
	// below, in this same pass.
	for key := range t.written {
		if wanted[key] {
			continue
		}
		t.alloc.Release(key)
		delete(t.written, key)
		delete(t.stranded, key)
		delete(t.warned, key)
		log.Info("released", "op", "release", "svc", key)
	}
	for _, obj := range t.inf.AllServices() {
		key := model.ServiceKey{Namespace: obj.Namespace, Name: obj.Name}
		if wanted[key] {
			continue
		}
		if msg, bad := invalid[key]; bad {
			if t.refuse(obj, ReasonInvalidService, msg) {
				t.countRefused(ReasonInvalidService, nil)
			}
		} else {
			delete(t.refused, key)
		}
		// Clear what lbd published for a Service it no longer serves:
		// one that left type LoadBalancer, or that is invalid. One that
		// moved to another class keeps its status: that class's
		// controller owns it now.
		if len(obj.Status.LoadBalancer.Ingress) > 0 && (obj.Spec.Type != corev1.ServiceTypeLoadBalancer || invalid[key] != "") {
			if err := t.writeStatus(ctx, key, nil); err != nil {
				errs = append(errs, err)
			}
		}
	}

	waiting := make(map[string][]model.ServiceKey)
	var writes []statusWrite
	for i := range st.Services {
		svc := &st.Services[i]
		cur, known := t.written[svc.Key]
		if !known {
			cur = svc.VIPs
		}
		if t.keepStranded(svc) {
			continue
		}
		addrs, err := t.alloc.Assign(svc)
		if err != nil {
			for _, p := range ipam.ExhaustedPools(err) {
				waiting[p] = append(waiting[p], svc.Key)
			}
			if len(cur) > 0 {
				writes = append(writes, statusWrite{key: svc.Key})
			}
			delete(t.written, svc.Key)
			if obj, ok := t.inf.Service(svc.Key.Namespace, svc.Key.Name); ok {
				if t.refuse(obj, ReasonAllocationFailed, err.Error()) {
					t.countRefused(ReasonAllocationFailed, err)
				}
			}
			continue
		}
		delete(t.refused, svc.Key)
		if sameAddrs(addrs, cur) {
			t.written[svc.Key] = addrs
			continue
		}
		writes = append(writes, statusWrite{key: svc.Key, addrs: addrs})
	}
	// The writes are independent, and one at a time the round trips
	// would dominate a large pass (10 000 new Services).
	for i, err := range t.writeAll(ctx, writes) {
		w := writes[i]
		if err != nil {
			// The allocator keeps the addresses; the next pass
			// writes them.
			errs = append(errs, err)
			continue
		}
		if w.addrs == nil {
			continue
		}
		t.written[w.key] = w.addrs
		pool, _ := t.alloc.PoolOf(w.addrs[0])
		log.Info("allocated", "op", "assign", "svc", w.key, "ip", w.addrs, "pool", pool)
		t.countAllocated()
		if obj, ok := t.inf.Service(w.key.Namespace, w.key.Name); ok {
			t.rec.Eventf(obj, corev1.EventTypeNormal, ReasonIPAllocated, "Assigned IP %s from pool %s", joinAddrs(w.addrs), pool)
		}
	}
	errs = append(errs, t.poolStatus(ctx, res.Pools, poolProblems(convErr), waiting)...)
	return errors.Join(errs...)
}

// restore records every Service's current addresses in a new allocator,
// in key order, so that of two Services claiming one address the same one
// wins on every restart.
func (t *termState) restore(alloc *ipam.Allocator, st *model.State) {
	restored := 0
	for i := range st.Services {
		svc := &st.Services[i]
		ips, known := t.written[svc.Key]
		if !known {
			ips = svc.VIPs
		}
		if len(ips) == 0 {
			continue
		}
		// An address no pool contains any more stays with its Service:
		// moving a live VIP breaks every client of it, and no pool can
		// hand the address to anyone else. The operator decides.
		var outside []netip.Addr
		for _, ip := range ips {
			if _, ok := alloc.PoolOf(ip); !ok {
				outside = append(outside, ip)
				if t.alloc != nil {
					if p, ok := t.alloc.PoolOf(ip); ok {
						t.formerPool[ip] = p
					}
				}
			}
		}
		if len(outside) > 0 {
			t.stranded[svc.Key] = ips
			alloc.Restore(svc, ips) // holds the addresses still in pools
			t.written[svc.Key] = ips
			restored++
			continue
		}
		delete(t.stranded, svc.Key)
		if err := alloc.Restore(svc, ips); err != nil {
			// Assign, in the pass, moves the Service to an address
			// it may have, and reports why if there is none.
			t.c.log.Warn("current address not kept", "op", "restore", "svc", svc.Key, "ip", ips, "err", err)
		}
		// Remember what status says, so the pass compares against it.
		t.written[svc.Key] = ips
		restored++
	}
	t.c.log.Info("allocations restored", "op", "restore", "services", restored, "pools", len(st.Pools))
}

// refuse reports, once per distinct message, why obj has no address, and
// whether it did (a refusal is counted then).
func (t *termState) refuse(obj *corev1.Service, reason, msg string) bool {
	key := model.ServiceKey{Namespace: obj.Namespace, Name: obj.Name}
	if t.refused[key] == msg {
		return false
	}
	t.refused[key] = msg
	t.c.log.Warn("no address", "op", "assign", "svc", key, "reason", reason, "err", msg)
	t.rec.Event(obj, corev1.EventTypeWarning, reason, msg)
	return true
}

// statusWriters bounds the status writes of one pass in flight at once.
const statusWriters = 16

// statusWrite is one Service's status to publish; nil addrs clears it.
type statusWrite struct {
	key   model.ServiceKey
	addrs []netip.Addr
}

// writeAll performs the writes concurrently and returns their errors in
// order.
func (t *termState) writeAll(ctx context.Context, writes []statusWrite) []error {
	errs := make([]error, len(writes))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(statusWriters, len(writes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(writes) {
					return
				}
				errs[i] = t.writeStatus(ctx, writes[i].key, writes[i].addrs)
			}
		}()
	}
	wg.Wait()
	return errs
}

// writeStatus sets status.loadBalancer.ingress of a Service through the
// status subresource; nil clears it. It reads the Service fresh on a
// conflict, as the cached copy may be older than the server's.
func (t *termState) writeStatus(ctx context.Context, key model.ServiceKey, addrs []netip.Addr) error {
	svcs := t.c.cfg.Clients.Kube.CoreV1().Services(key.Namespace)
	var ingress []corev1.LoadBalancerIngress
	for _, a := range addrs {
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: a.String(), IPMode: ptr(corev1.LoadBalancerIPModeVIP)})
	}
	obj, ok := t.inf.Service(key.Namespace, key.Name)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !ok {
			var err error
			if obj, err = svcs.Get(ctx, key.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		ok = false // after a conflict, read fresh
		upd := obj.DeepCopy()
		upd.Status.LoadBalancer.Ingress = ingress
		_, err := svcs.UpdateStatus(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile; its delete event releases it
	}
	if err != nil {
		return fmt.Errorf("write status of %s: %w", key, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// fieldErrors returns the config.FieldErrors among err's joined errors.
func fieldErrors(err error) []*config.FieldError {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var out []*config.FieldError
	for _, e := range errs {
		var fe *config.FieldError
		if errors.As(e, &fe) {
			out = append(out, fe)
		}
	}
	return out
}

// invalidServices maps the Services pkg/config left out to why.
func invalidServices(err error) map[model.ServiceKey]string {
	out := map[model.ServiceKey]string{}
	for _, fe := range fieldErrors(err) {
		if fe.Kind != "Service" {
			continue
		}
		key := model.ServiceKey{Namespace: fe.Namespace, Name: fe.Name}
		if prev := out[key]; prev != "" {
			out[key] = prev + "; " + fe.Error()
		} else {
			out[key] = fe.Error()
		}
	}
	return out
}

// poolsKey identifies the pools' specs: the allocator is rebuilt, and
// every allocation restored into it, only when one changes.
func poolsKey(r config.Resources) string {
	var ids []string
	for _, p := range r.Pools {
		ids = append(ids, fmt.Sprintf("%s/%s/%d", p.Name, p.UID, p.Generation))
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

func sameAddrs(a, b []netip.Addr) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, netip.Addr.Compare)
	slices.SortFunc(b, netip.Addr.Compare)
	return slices.Equal(a, b)
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
