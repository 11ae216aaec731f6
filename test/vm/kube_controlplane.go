// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/lbd-project/lbd/internal/kubetest"
)

// ControlPlaneIP is the control plane's address on the VLAN: the lab's lbd
// instances run in node namespaces and reach the API server here, as nodes
// of a real cluster reach theirs.
var ControlPlaneIP = netip.MustParseAddr("10.20.0.250")

// ControlPlane is a real etcd and kube-apiserver running in a namespace of
// the lab plugged into the switch, so the node namespaces reach it over the
// VLAN. The test's own clients dial it from inside that namespace.
type ControlPlane struct {
	Host    Host
	Cluster *kubetest.Cluster
	// Kubeconfig is a file for lbd's ServiceAccount identity (deploy/rbac's
	// permissions only), for lbd run --kubeconfig.
	Kubeconfig string
	Admin      kubernetes.Interface
	AdminDyn   dynamic.Interface
}

// StartControlPlane creates the control-plane namespace on the VLAN, runs
// etcd and kube-apiserver in it (through ip netns exec: they need the
// namespace's network only, not bpffs) with lbd's CRDs and RBAC installed,
// and writes lbd's kubeconfig. The lab's Close removes the namespace and
// kills what runs in it; call Stop first for a clean shutdown.
func (l *Lab) StartControlPlane(ctx context.Context) (*ControlPlane, error) {
	h := Host{Name: "control-plane", NetNS: l.Prefix + "-cp", IP: ControlPlaneIP, MAC: mac(roleHost, ControlPlaneIP)}
	if err := l.addNS(ctx, h.NetNS); err != nil {
		return nil, err
	}
	if err := sysctlIn(ctx, h.NetNS, sysctlNoDAD...); err != nil {
		return nil, err
	}
	if err := l.plugIntoSwitch(ctx, &h, "cp"); err != nil {
		return nil, err
	}
	c, err := kubetest.Launch(ctx, kubetest.Options{
		Dir:  filepath.Join(l.Dir, "control-plane"),
		Addr: ControlPlaneIP,
		Wrap: []string{"ip", "netns", "exec", h.NetNS},
		Dial: h.DialContext,
	})
	if err != nil {
		return nil, fmt.Errorf("start control plane in %s: %w", h.NetNS, err)
	}
	cp := &ControlPlane{Host: h, Cluster: c, Kubeconfig: filepath.Join(l.Dir, "lbd.kubeconfig")}
	if err := c.WriteKubeconfig(cp.Kubeconfig); err != nil {
		c.Stop()
		return nil, err
	}
	if cp.Admin, err = kubernetes.NewForConfig(c.AdminConfig()); err != nil {
		c.Stop()
		return nil, fmt.Errorf("build admin client: %w", err)
	}
	if cp.AdminDyn, err = dynamic.NewForConfig(c.AdminConfig()); err != nil {
		c.Stop()
		return nil, fmt.Errorf("build dynamic client: %w", err)
	}
	l.opts.Logf("lab %s: control plane answers at %s", l.Prefix, c.Host)
	return cp, nil
}

// Stop stops the API server and etcd.
func (cp *ControlPlane) Stop() { cp.Cluster.Stop() }

// ApplyManifests creates the lab's desired state (l.Manifests: Nodes with
// their addresses, the reference pools, the Services and EndpointSlices)
// through the API, as an admin, with the Services' status left for lbd.
func (cp *ControlPlane) ApplyManifests(ctx context.Context, l *Lab) error {
	b, err := l.Manifests()
	if err != nil {
		return err
	}
	return cp.Apply(ctx, b)
}

// Apply creates every object of a multi-document YAML (or updates it when
// it exists). Node status, which create ignores, is written after.
func (cp *ControlPlane) Apply(ctx context.Context, manifest []byte) error {
	disc, err := discovery.NewDiscoveryClientForConfig(cp.Cluster.AdminConfig())
	if err != nil {
		return fmt.Errorf("build discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode manifest: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if err := kubetest.Apply(ctx, cp.AdminDyn, mapper, u); err != nil {
			return err
		}
		if u.GetKind() == "Node" {
			if err := cp.nodeStatus(ctx, u); err != nil {
				return err
			}
		}
	}
}

func (cp *ControlPlane) nodeStatus(ctx context.Context, u *unstructured.Unstructured) error {
	addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
	n, err := cp.Admin.CoreV1().Nodes().Get(ctx, u.GetName(), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Node %s: %w", u.GetName(), err)
	}
	n.Status.Addresses = nil
	for _, a := range addrs {
		m, _ := a.(map[string]any)
		t, _ := m["type"].(string)
		v, _ := m["address"].(string)
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(t), Address: v})
	}
	if _, err := cp.Admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write status of Node %s: %w", n.Name, err)
	}
	return nil
}

// StartKubeLBD runs "lbd run --kubeconfig" (lbd's ServiceAccount identity)
// in every node namespace and waits until each answers on its status
// socket.
func (l *Lab) StartKubeLBD(ctx context.Context, lbd string, cp *ControlPlane) error {
	l.opts.LBD = lbd
	l.opts.Kubeconfig = cp.Kubeconfig
	return l.StartLBD(ctx)
}
