// SPDX-License-Identifier: Apache-2.0

package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/config"
)

// Resources of lbd's CRDs.
var (
	IPPoolsResource         = v1alpha1.GroupVersion.WithResource("ippools")
	L2AnnouncementsResource = v1alpha1.GroupVersion.WithResource("l2announcements")
)

// Clients are the API clients lbd uses.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
}

// NewClients builds Clients from cfg.
func NewClients(cfg *rest.Config) (Clients, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("build kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, fmt.Errorf("build dynamic client: %w", err)
	}
	return Clients{Kube: cs, Dynamic: dyn}, nil
}

// Kinds selects the objects an Informers set watches.
type Kinds uint

// Kinds of objects.
const (
	Services Kinds = 1 << iota
	EndpointSlices
	Nodes
	Namespaces
	Pools
	Announcements

	// AllKinds is everything a State is built from.
	AllKinds = Services | EndpointSlices | Nodes | Namespaces | Pools | Announcements
)

// Informers is a set of informers whose caches together give the
// config.Resources of a State.
type Informers struct {
	kinds   Kinds
	factory informers.SharedInformerFactory
	dynamic dynamicinformer.DynamicSharedInformerFactory
	synced  []cache.InformerSynced
	changed chan struct{}

	services  listerscorev1.ServiceLister
	slices    cache.GenericLister
	nodes     listerscorev1.NodeLister
	nss       listerscorev1.NamespaceLister
	pools     cache.GenericLister
	announces cache.GenericLister
}

// NewInformers returns informers for kinds; Start starts them.
func NewInformers(c Clients, kinds Kinds) (*Informers, error) {
	// No resync: every change arrives as an event, and the agent runs
	// its own periodic full reconcile from the last State.
	inf := &Informers{
		kinds:   kinds,
		factory: informers.NewSharedInformerFactory(c.Kube, 0),
		dynamic: dynamicinformer.NewDynamicSharedInformerFactory(c.Dynamic, 0),
		changed: make(chan struct{}, 1),
	}
	var errs []error
	add := func(i cache.SharedIndexInformer, h cache.ResourceEventHandler) {
		errs = append(errs, i.SetTransform(stripManagedFields))
		if _, err := i.AddEventHandler(h); err != nil {
			errs = append(errs, err)
		}
		inf.synced = append(inf.synced, i.HasSynced)
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { inf.signal() },
		UpdateFunc: func(any, any) { inf.signal() },
		DeleteFunc: func(any) { inf.signal() },
	}
	if kinds&Services != 0 {
		si := inf.factory.Core().V1().Services()
		inf.services = si.Lister()
		add(si.Informer(), h)
	}
	if kinds&EndpointSlices != 0 {
		ei := inf.factory.Discovery().V1().EndpointSlices()
		inf.slices = cache.NewGenericLister(ei.Informer().GetIndexer(), discoveryv1.Resource("endpointslices"))
		add(ei.Informer(), h)
	}
	if kinds&Nodes != 0 {
		ni := inf.factory.Core().V1().Nodes()
		inf.nodes = ni.Lister()
		// Nodes write their status every few seconds; only what
		// pkg/config reads (labels, addresses) makes a new State.
		add(ni.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { inf.signal() },
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(*corev1.Node)
				n, ok2 := newObj.(*corev1.Node)
				if ok1 && ok2 && maps.Equal(o.Labels, n.Labels) && slices.Equal(o.Status.Addresses, n.Status.Addresses) {
					return
				}
				inf.signal()
			},
			DeleteFunc: func(any) { inf.signal() },
		})
	}
	if kinds&Namespaces != 0 {
		ni := inf.factory.Core().V1().Namespaces()
		inf.nss = ni.Lister()
		add(ni.Informer(), h)
	}
	if kinds&Pools != 0 {
		pi := inf.dynamic.ForResource(IPPoolsResource)
		inf.pools = pi.Lister()
		add(pi.Informer(), h)
	}
	if kinds&Announcements != 0 {
		ai := inf.dynamic.ForResource(L2AnnouncementsResource)
		inf.announces = ai.Lister()
		add(ai.Informer(), h)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("set up informers: %w", err)
	}
	return inf, nil
}

// signal notes a change without blocking: one pending signal stands for
// any number of changes.
func (i *Informers) signal() {
	select {
	case i.changed <- struct{}{}:
	default:
	}
}

// Changed receives after any watched object changed.
func (i *Informers) Changed() <-chan struct{} { return i.changed }

// Start starts the informers; they stop when ctx ends.
func (i *Informers) Start(ctx context.Context) {
	i.factory.Start(ctx.Done())
	i.dynamic.Start(ctx.Done())
}

// shutdownWait bounds Shutdown; see there.
const shutdownWait = 2 * time.Second

// Shutdown waits for the informers' goroutines to end, after ctx ended,
// but at most shutdownWait: client-go's watch-list backoff (v0.37,
// reflector.watchList) sleeps without watching the stop channel, up to
// 30 s while the API server is unreachable, and lbd must stop (or start a
// new leadership term) at once all the same. Those goroutines end by
// themselves after their sleep.
func (i *Informers) Shutdown() {
	done := make(chan struct{})
	go func() {
		i.factory.Shutdown()
		i.dynamic.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownWait):
	}
}

// WaitForCacheSync blocks until every cache has synced, or ctx ends.
func (i *Informers) WaitForCacheSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), i.synced...) {
		return fmt.Errorf("wait for informer caches: %w", context.Cause(ctx))
	}
	return nil
}

// Service returns a Service from the cache; it must not be modified.
func (i *Informers) Service(namespace, name string) (*corev1.Service, bool) {
	if i.services == nil {
		return nil, false
	}
	svc, err := i.services.Services(namespace).Get(name)
	return svc, err == nil
}

// AllServices returns every Service in the cache; they must not be modified.
func (i *Informers) AllServices() []*corev1.Service {
	if i.services == nil {
		return nil
	}
	l, _ := i.services.List(labels.Everything())
	return l
}

// deref copies listed objects out of the cache's pointers (shallow).
func deref[T any](l []*T) []T {
	out := make([]T, 0, len(l))
	for _, o := range l {
		out = append(out, *o)
	}
	return out
}

// Resources returns the cached objects. Objects are shallow copies of the
// cache's and must not be modified. The error reports objects that could
// not be decoded (left out); the rest is still returned.
func (i *Informers) Resources() (config.Resources, error) {
	var r config.Resources
	var errs []error
	if i.services != nil {
		l, _ := i.services.List(labels.Everything())
		r.Services = deref(l)
	}
	if i.slices != nil {
		l, _ := i.slices.List(labels.Everything())
		r.EndpointSlices = make([]discoveryv1.EndpointSlice, 0, len(l))
		for _, o := range l {
			if es, ok := o.(*discoveryv1.EndpointSlice); ok {
				r.EndpointSlices = append(r.EndpointSlices, *es)
			}
		}
	}
	if i.nodes != nil {
		l, _ := i.nodes.List(labels.Everything())
		r.Nodes = deref(l)
	}
	if i.nss != nil {
		l, _ := i.nss.List(labels.Everything())
		r.Namespaces = deref(l)
	}
	if i.pools != nil {
		l, _ := i.pools.List(labels.Everything())
		var err error
		r.Pools, err = fromUnstructured[v1alpha1.IPPool](l, v1alpha1.KindIPPool)
		errs = append(errs, err)
	}
	if i.announces != nil {
		l, _ := i.announces.List(labels.Everything())
		var err error
		r.Announcements, err = fromUnstructured[v1alpha1.L2Announcement](l, v1alpha1.KindL2Announcement)
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

// fromUnstructured converts the dynamic informer's objects into lbd's
// typed API.
func fromUnstructured[T any](objs []runtime.Object, kind string) ([]T, error) {
	out := make([]T, 0, len(objs))
	var errs []error
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			errs = append(errs, fmt.Errorf("decode %s: unexpected %T", kind, o))
			continue
		}
		var t T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &t); err != nil {
			errs = append(errs, fmt.Errorf("decode %s %q: %w", kind, u.GetName(), err))
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// stripManagedFields drops metadata.managedFields before an object is
// cached: lbd never reads them and they are often the largest part of it.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil && a.GetManagedFields() != nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
