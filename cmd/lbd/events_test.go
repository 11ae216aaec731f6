// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/pkg/announce"
	"github.com/lbd-project/lbd/pkg/model"
)

// TestServiceEvents records a takeover and a release through a real API
// server, as lbd (its RBAC), and reads them back as an admin: both are
// Events on the Service itself (its UID), from lbd-announce on the node,
// with the reason of the release.
func TestServiceEvents(t *testing.T) {
	c := kubetest.Start(t)
	c.DumpLogsOnFailure(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	lbd, err := kubernetes.NewForConfig(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	ev := newServiceEvents(lbd, "node2", slog.New(slog.NewTextHandler(t.Output(), nil)))
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ev.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	key := model.ServiceKey{Namespace: "default", Name: "web"}
	vip := netip.MustParseAddr("10.20.1.1")
	ev.OwnershipChanged(key, vip, true, announce.ReasonOwner)
	ev.OwnershipChanged(key, vip, false, announce.ReasonOwnedByPrefix+"node3")
	// A Service that is gone is logged and skipped, not fatal.
	ev.OwnershipChanged(model.ServiceKey{Namespace: "default", Name: "gone"}, vip, true, announce.ReasonOwner)

	want := map[string]string{
		ReasonVIPAnnounced: "Node node2 announces 10.20.1.1 (ARP/NDP)",
		ReasonVIPWithdrawn: "Node node2 stopped announcing 10.20.1.1: owned by node3",
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.uid=" + string(svc.UID),
		})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, e := range list.Items {
			got[e.Reason] = e.Message
			if e.Source.Component != "lbd-announce" || e.Source.Host != "node2" || e.InvolvedObject.Kind != "Service" {
				t.Errorf("event %s: source %+v, object %+v", e.Reason, e.Source, e.InvolvedObject)
			}
		}
		if len(got) == 2 && got[ReasonVIPAnnounced] == want[ReasonVIPAnnounced] && got[ReasonVIPWithdrawn] == want[ReasonVIPWithdrawn] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events on the Service: %v, want %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
