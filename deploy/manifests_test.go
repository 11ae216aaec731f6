// SPDX-License-Identifier: Apache-2.0

// Package deploy_test checks the install manifests against each other and
// against the code: the DaemonSet's security posture, its probes and
// metrics port against pkg/metrics, its ServiceAccount against
// deploy/rbac, and the Helm chart's copies of the CRDs and RBAC against
// their sources (make helm-sync).
package deploy_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/metrics"
)

// docs splits a multi-document YAML file into documents with a kind.
func docs(t *testing.T, path string) map[string][][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]byte{}
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(d, &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if meta.Kind != "" {
			out[meta.Kind] = append(out[meta.Kind], d)
		}
	}
	return out
}

func daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	ds := docs(t, "lbd.yaml")["DaemonSet"]
	if len(ds) != 1 {
		t.Fatalf("lbd.yaml has %d DaemonSets, want 1", len(ds))
	}
	var d appsv1.DaemonSet
	// Strict: a misspelt field is an error, not silently dropped.
	if err := yaml.UnmarshalStrict(ds[0], &d); err != nil {
		t.Fatalf("DaemonSet: %v", err)
	}
	return &d
}

func TestDaemonSetSecurity(t *testing.T) {
	d := daemonSet(t)
	spec := d.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v dnsPolicy %s, want host network with ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no securityContext with capabilities")
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("container must set privileged: false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root filesystem must be read-only")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	slices.Sort(add)
	if diff := cmp.Diff([]string{"BPF", "NET_ADMIN", "NET_RAW", "PERFMON"}, add); diff != "" {
		t.Errorf("added capabilities (-want +got):\n%s", diff)
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Error("capabilities must drop ALL first")
	}
	// bpffs comes from the host, so lbd never needs to mount it.
	var bpffs bool
	for _, v := range spec.Volumes {
		if v.HostPath != nil && v.HostPath.Path == "/sys/fs/bpf" {
			bpffs = true
		}
	}
	if !bpffs {
		t.Error("no hostPath volume for /sys/fs/bpf")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME = %+v, want the downward API's spec.nodeName", e)
	}
	if _, ok := env["LBD_INTERFACE"]; !ok || !slices.Contains(c.Args, "--interface=$(LBD_INTERFACE)") {
		t.Error("--interface must come from LBD_INTERFACE")
	}
}

// TestDaemonSetProbes: the probes and the Prometheus annotations hit the
// port lbd listens on, and the paths pkg/metrics serves.
func TestDaemonSetProbes(t *testing.T) {
	d := daemonSet(t)
	c := d.Spec.Template.Spec.Containers[0]
	_, defPort, err := net.SplitHostPort(metrics.DefaultAddr)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Args, "--metrics-addr=:"+defPort) {
		t.Errorf("args %q lack --metrics-addr=:%s", c.Args, defPort)
	}
	var port int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			port = p.ContainerPort
		}
	}
	if strconv.Itoa(int(port)) != defPort {
		t.Errorf("metrics containerPort %d, want %s", port, defPort)
	}
	if a := d.Spec.Template.Annotations["prometheus.io/port"]; a != defPort {
		t.Errorf("prometheus.io/port %q, want %s", a, defPort)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP probe", name)
			continue
		}
		want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[name]
		if p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe GET %s on %s, want %s on metrics", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
		}
	}
}

// TestServiceAccountFromRBAC: the DaemonSet runs as the ServiceAccount
// deploy/rbac creates, in the same namespace.
func TestServiceAccountFromRBAC(t *testing.T) {
	d := daemonSet(t)
	var found bool
	for _, raw := range docs(t, "rbac/lbd.yaml")["ServiceAccount"] {
		var sa corev1.ServiceAccount
		if err := yaml.Unmarshal(raw, &sa); err != nil {
			t.Fatal(err)
		}
		if sa.Name == d.Spec.Template.Spec.ServiceAccountName && sa.Namespace == d.Namespace {
			found = true
		}
	}
	if !found {
		t.Errorf("deploy/rbac has no ServiceAccount %s/%s", d.Namespace, d.Spec.Template.Spec.ServiceAccountName)
	}
}

// TestHelmChartInSync: the chart carries copies of the CRDs and RBAC
// (Helm reads no file outside the chart). make helm-sync refreshes them.
func TestHelmChartInSync(t *testing.T) {
	pairs := map[string]string{"rbac/lbd.yaml": "helm/lbd/files/rbac.yaml"}
	crds, err := filepath.Glob("crds/*.yaml")
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs under deploy/crds: %v", err)
	}
	for _, c := range crds {
		pairs[c] = filepath.Join("helm/lbd/crds", filepath.Base(c))
	}
	copies, _ := filepath.Glob("helm/lbd/crds/*.yaml")
	if len(copies) != len(crds) {
		t.Errorf("helm/lbd/crds has %d files, deploy/crds %d: run make helm-sync", len(copies), len(crds))
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Errorf("%v: run make helm-sync", err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("deploy/%s differs from its source deploy/%s: run make helm-sync", dst, src)
		}
	}
	// The chart's DaemonSet must keep the plain manifest's capabilities.
	tpl, err := os.ReadFile("helm/lbd/templates/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(tpl), "add: [BPF, PERFMON, NET_ADMIN, NET_RAW]") || strings.Contains(string(tpl), "SYS_ADMIN") {
		t.Error("helm DaemonSet capabilities differ from deploy/lbd.yaml")
	}
}

// TestHelmTemplate renders the chart with helm, when installed, and checks
// it against the plain manifests: the same objects (less the Namespace,
// which Helm owns), moved to the release namespace, and the same pod spec
// as deploy/lbd.yaml apart from the image tag and the explicit
// --attach-mode.
func TestHelmTemplate(t *testing.T) {
	helm, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("helm is not installed (go install helm.sh/helm/v3/cmd/helm@v3.19.0)")
	}
	out, err := exec.Command(helm, "template", "lbd", "helm/lbd", "--namespace", "lb-test",
		"--kube-version", "1.33.0", "--include-crds").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	var kinds []string
	var ds *appsv1.DaemonSet
	for _, d := range bytes.Split(out, []byte("\n---\n")) {
		var meta struct {
			Kind     string
			Metadata struct{ Name, Namespace string }
		}
		if err := yaml.Unmarshal(d, &meta); err != nil {
			t.Fatalf("rendered chart: %v\n%s", err, d)
		}
		if meta.Kind == "" {
			continue
		}
		kinds = append(kinds, meta.Kind)
		if meta.Metadata.Namespace != "" && meta.Metadata.Namespace != "lb-test" {
			t.Errorf("%s %s in namespace %s, want the release namespace", meta.Kind, meta.Metadata.Name, meta.Metadata.Namespace)
		}
		if meta.Kind == "DaemonSet" {
			ds = &appsv1.DaemonSet{}
			if err := yaml.UnmarshalStrict(d, ds); err != nil {
				t.Fatalf("rendered DaemonSet: %v", err)
			}
		}
	}
	slices.Sort(kinds)
	want := []string{"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CustomResourceDefinition",
		"DaemonSet", "IPPool", "IPPool", "Role", "RoleBinding", "ServiceAccount"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("rendered kinds (-want +got):\n%s", diff)
	}
	if ds == nil {
		t.Fatal("no DaemonSet rendered")
	}
	plain := daemonSet(t).Spec.Template.Spec
	got := ds.Spec.Template.Spec
	got.Containers[0].Image = plain.Containers[0].Image
	got.Containers[0].Args = slices.DeleteFunc(got.Containers[0].Args, func(a string) bool { return a == "--attach-mode=auto" })
	if diff := cmp.Diff(plain, got); diff != "" {
		t.Errorf("helm pod spec differs from deploy/lbd.yaml (-plain +helm):\n%s", diff)
	}
}
