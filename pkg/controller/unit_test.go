// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic/fake"
	kfake "k8s.io/client-go/kubernetes/fake"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// TestInvalidServices checks that the Services pkg/config rejects are
// found in its joined error, with every problem of each, and nothing else.
func TestInvalidServices(t *testing.T) {
	svc := func(name, ann string) corev1.Service {
		return corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
				Annotations: map[string]string{config.AnnotationLoadBalancerIPs: ann}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
		}
	}
	_, err := config.For(config.Resources{Services: []corev1.Service{
		svc("good", "10.20.1.5"),
		svc("bad", "10.20.1.300"),
	}}, config.Options{})
	got := invalidServices(err)
	if _, ok := got[model.ServiceKey{Namespace: "default", Name: "good"}]; ok || len(got) != 1 {
		t.Fatalf("invalidServices = %v, want only default/bad", got)
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("config error %v has no FieldError", err)
	}
	if diff := cmp.Diff(map[model.ServiceKey]string{{Namespace: "default", Name: "bad"}: fe.Error()}, got); diff != "" {
		t.Errorf("invalidServices (-want +got):\n%s", diff)
	}
	if got := invalidServices(nil); len(got) != 0 {
		t.Errorf("invalidServices(nil) = %v", got)
	}
}

func TestNewValidates(t *testing.T) {
	clients := kube.Clients{Kube: kfake.NewClientset(), Dynamic: fake.NewSimpleDynamicClient(runtime.NewScheme())}
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Clients: clients, Identity: "node-a"}, true},
		{"no identity", Config{Clients: clients}, false},
		{"no clients", Config{Identity: "node-a"}, false},
		{"renew not below lease", Config{Clients: clients, Identity: "a", LeaseDuration: 3e9, RenewDeadline: 3e9}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && (c.cfg.Namespace != DefaultNamespace || c.cfg.LeaseDuration != DefaultLeaseDuration) {
				t.Errorf("defaults not applied: %+v", c.cfg)
			}
		})
	}
}
