// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/lbd-project/lbd/pkg/agent"
	"github.com/lbd-project/lbd/pkg/model"
)

// Reasons of the Events recorded on a Service when this node takes or
// releases one of its VIPs.
const (
	ReasonVIPAnnounced = "VIPAnnounced"
	ReasonVIPWithdrawn = "VIPWithdrawn"
)

// eventQueue bounds the ownership changes waiting to be recorded. A
// failover moves a few VIPs; a full queue means the API server is
// unreachable, and then dropping events beats blocking the reconcile
// loop (the failover path never waits for the API server).
const eventQueue = 256

// serviceEvents records this node's VIP takeovers and releases as Events
// on the Service (kubectl describe service shows which node answers for
// its VIP, and since when). It implements agent.OwnershipEvents.
type serviceEvents struct {
	kube  kubernetes.Interface
	node  string
	log   *slog.Logger
	queue chan ownershipEvent
}

var _ agent.OwnershipEvents = (*serviceEvents)(nil)

type ownershipEvent struct {
	svc    model.ServiceKey
	vip    netip.Addr
	owned  bool
	reason string
}

func newServiceEvents(kube kubernetes.Interface, node string, log *slog.Logger) *serviceEvents {
	return &serviceEvents{kube: kube, node: node, log: log, queue: make(chan ownershipEvent, eventQueue)}
}

// OwnershipChanged queues the event and returns at once; see eventQueue.
func (e *serviceEvents) OwnershipChanged(svc model.ServiceKey, vip netip.Addr, owned bool, reason string) {
	select {
	case e.queue <- ownershipEvent{svc, vip, owned, reason}:
	default:
		e.log.Warn("dropped ownership event: queue full", "svc", svc.String(), "ip", vip)
	}
}

// Run records queued events until ctx ends.
func (e *serviceEvents) Run(ctx context.Context) error {
	bc := record.NewBroadcaster(record.WithContext(ctx))
	defer bc.Shutdown()
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: e.kube.CoreV1().Events("")})
	rec := bc.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "lbd-announce", Host: e.node})
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-e.queue:
			e.record(ctx, rec, ev)
		}
	}
}

// record reads the Service (an Event names its object by UID, which the
// desired state does not carry) and records ev on it.
func (e *serviceEvents) record(ctx context.Context, rec record.EventRecorder, ev ownershipEvent) {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	svc, err := e.kube.CoreV1().Services(ev.svc.Namespace).Get(gctx, ev.svc.Name, metav1.GetOptions{})
	if err != nil {
		e.log.Warn("record ownership event", "svc", ev.svc.String(), "ip", ev.vip, "err", err)
		return
	}
	if ev.owned {
		rec.Eventf(svc, corev1.EventTypeNormal, ReasonVIPAnnounced, "Node %s announces %s (ARP/NDP)", e.node, ev.vip)
		return
	}
	rec.Eventf(svc, corev1.EventTypeNormal, ReasonVIPWithdrawn, "Node %s stopped announcing %s: %s", e.node, ev.vip, ev.reason)
}

// ownershipEvents returns e as an agent.OwnershipEvents, nil (no events)
// in static mode: a nil *serviceEvents in the interface would not be nil.
func ownershipEvents(e *serviceEvents) agent.OwnershipEvents {
	if e == nil {
		return nil
	}
	return e
}
