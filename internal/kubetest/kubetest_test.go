// SPDX-License-Identifier: Apache-2.0

package kubetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestCluster starts a control plane and checks both identities: the
// CRDs are served, lbd may read its pools but not write Services, and the
// admin may do anything.
func TestCluster(t *testing.T) {
	c := Start(t)
	c.DumpLogsOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	lbdDyn, err := dynamic.NewForConfig(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}
	lbd, err := kubernetes.NewForConfig(c.LBDConfig())
	if err != nil {
		t.Fatal(err)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80}},
		},
	}
	if _, err := admin.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin creates a Service: %v", err)
	}
	pools := schema.GroupVersionResource{Group: "lbd.dev", Version: "v1alpha1", Resource: "ippools"}
	if _, err := lbdDyn.Resource(pools).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("lbd lists IPPools: %v", err)
	}
	if _, err := lbd.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("lbd gets a Service: %v", err)
	}
	svc.Name = "other"
	_, err = lbd.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("lbd creating a Service: got %v, want Forbidden", err)
	}
	_, err = lbd.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("lbd listing Secrets: got %v, want Forbidden", err)
	}
}

// TestRestartAPIServer stops and restarts the API server: the data (in
// etcd) and the certificates survive, and a kubeconfig written for lbd
// keeps working across the restart.
func TestRestartAPIServer(t *testing.T) {
	c := Start(t)
	c.DumpLogsOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.WriteKubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("load the written kubeconfig: %v", err)
	}
	lbd, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	if _, err := admin.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err = lbd.CoreV1().Services("default").Get(short, "kept", metav1.GetOptions{})
	cancelShort()
	if err == nil {
		t.Fatal("the API server answered while stopped")
	}
	if err := c.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := lbd.CoreV1().Services("default").Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Errorf("after the restart lbd gets the Service: %v", err)
	}
}
