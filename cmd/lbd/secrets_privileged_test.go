// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/internal/testutil"
)

// secretMarker is the value of a Secret in the cluster: it must never show
// up in anything lbd serves.
const secretMarker = "s3cr3t-marker-7f9c2d"

// kubeFixtures creates, as the admin, what lbd serves in Kubernetes mode:
// node-1 with its VLAN address, the reference pools, Service web with a
// ready endpoint on node-1, and a Secret lbd must never expose.
func kubeFixtures(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	node, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.20.0.51"}}
	if _, err := admin.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../deploy/examples/reference-pools.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Group: "lbd.dev", Version: "v1alpha1", Resource: "ippools"}
		if _, err := dyn.Resource(gvr).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	port, proto, ready, nodeName := int32(8080), corev1.ProtocolTCP, true, "node-1"
	if _, err := admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{"kubernetes.io/service-name": "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &port, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.241.1.10"}, NodeName: &nodeName,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", kubetest.LBDNamespace} {
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "db-password", Namespace: ns},
			StringData: map[string]string{"password": secretMarker},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestPrivilegedMetricsNoSecrets runs lbd in Kubernetes mode against a real
// API server (in the node's namespace) with a kubeconfig holding its
// ServiceAccount token, and checks that nothing it serves (the metrics,
// lbd status in every format, lbd flows) contains the token, the
// kubeconfig's CA, or the value of a Secret in the cluster.
func TestPrivilegedMetricsNoSecrets(t *testing.T) {
	testutil.Privileged(t)
	var c *kubetest.Cluster
	n := startNodeOpts(t, nodeOptions{
		flags: []string{"--metrics-addr=127.0.0.1:9474"},
		setup: func(n *testNode) []string {
			bin, err := kubetest.BinDir()
			if err == nil {
				_, err = os.Stat(filepath.Join(bin, "kube-apiserver"))
			}
			if err != nil {
				t.Skipf("kube-apiserver not built: %v", err)
			}
			// The servers die with the thread that forked them
			// (Pdeathsig). Unlocked, that thread could next run one of
			// n.dial's namespace goroutines, which end their thread:
			// keep it this test's until the test ends.
			runtime.LockOSThread()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c, err = kubetest.Launch(ctx, kubetest.Options{
				Dir:  t.TempDir(),
				Wrap: []string{"nsenter", "--net=" + n.node.Path()},
				Dial: n.dial,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Stop)
			c.DumpLogsOnFailure(t)
			kubeFixtures(t, c)
			kc := filepath.Join(n.dir, "kubeconfig")
			if err := c.WriteKubeconfig(kc); err != nil {
				t.Fatal(err)
			}
			return []string{"--kubeconfig=" + kc}
		},
	})
	vip := n.waitVIP(t)

	var served []string
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: n.dial}}
	resp, err := hc.Get("http://127.0.0.1:9474/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `lbd_vip_owner_info{owner="node-1",vip="`+vip+`"}`) {
		t.Fatalf("the scrape lacks the VIP; is this the daemon under test?\n%s", b)
	}
	// The IPAM controller in this process (the only one, so the leader)
	// allocated web's address and counted it.
	if m := parseMetrics(t, string(b)); m["lbd_ipam_allocations_total"] != 1 || m[`lbd_ipam_refusals_total{reason="other"}`] != 0 {
		t.Errorf("lbd_ipam_allocations_total = %v, want 1 (Kubernetes mode, leader)", m["lbd_ipam_allocations_total"])
	}
	served = append(served, string(b))
	for _, o := range []string{"table", "json", "yaml"} {
		out, _ := exec.Command(n.bin, "status", "--socket="+n.socket, "-o", o).CombinedOutput()
		served = append(served, string(out))
		out, _ = exec.Command(n.bin, "status", "--socket="+n.socket, "-o", o, vip).CombinedOutput()
		served = append(served, string(out))
	}
	e := n.flowsUntil(t, vip, "80")
	served = append(served, e.Service+" "+e.Client.String()+" "+e.Backend.String())
	if e.Service != "default/web" {
		t.Errorf("flow event %+v, want one of default/web", e)
	}

	ca := base64.StdEncoding.EncodeToString(c.CAData())
	for _, secret := range []struct{ name, value string }{
		{"ServiceAccount token", c.LBDToken()},
		{"Secret value", secretMarker},
		{"CA (base64)", ca[:40]},
		{"CA (PEM)", "BEGIN CERTIFICATE"},
		{"kubeconfig", "certificate-authority-data"},
	} {
		for i, s := range served {
			if strings.Contains(s, secret.value) {
				t.Errorf("output %d of lbd contains the %s", i, secret.name)
			}
		}
	}
}

// dial connects from inside the node namespace (the connection is usable
// from any thread afterwards).
func (n *testNode) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.node.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
