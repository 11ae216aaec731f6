// SPDX-License-Identifier: Apache-2.0

package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/lbd-project/lbd/internal/kubetest"
)

// dryRunner applies objects to a real API server with server-side apply in
// dry-run mode and strict field validation: the server runs defaulting,
// the CRD schemas, admission and validation, and rejects unknown fields,
// but stores nothing.
type dryRunner struct {
	t      *testing.T
	ctx    context.Context
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newDryRunner(t *testing.T) *dryRunner {
	c := kubetest.Start(t) // installs deploy/crds and deploy/rbac for real
	c.DumpLogsOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dyn, err := dynamic.NewForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(c.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &dryRunner{t: t, ctx: ctx, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}
}

// apply dry-runs one object and returns the server's error.
func (d *dryRunner) apply(o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		d.mapper.Reset()
		if m, err = d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return err
		}
	}
	var ri dynamic.ResourceInterface = d.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = d.dyn.Resource(m.Resource).Namespace(ns)
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	force := true
	_, err = ri.Patch(d.ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun:          []string{metav1.DryRunAll},
		FieldManager:    "lbd-manifest-test",
		Force:           &force,
		FieldValidation: "Strict",
	})
	return err
}

// applyAll dry-runs every object and fails the test for each rejection.
func (d *dryRunner) applyAll(what string, objs []*unstructured.Unstructured) {
	d.t.Helper()
	if len(objs) == 0 {
		d.t.Errorf("%s: no objects", what)
	}
	for _, o := range objs {
		if err := d.apply(o); err != nil {
			d.t.Errorf("%s: %s %s rejected: %v", what, o.GetKind(), o.GetName(), err)
		}
	}
}

func decodeYAML(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decode: %v", err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

func manifests(t *testing.T, glob string) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests match %s: %v", glob, err)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		objs, err := kubetest.ReadManifestFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, objs...)
	}
	return out
}

// TestManifestsDryRun applies every install manifest to a real API server
// with a server-side dry run: the CRDs (also installed for real, which is
// what lets the IPPool examples be checked against their schema), the
// RBAC, the DaemonSet and the example pools, the Helm chart's copies, and
// the rendered chart when helm is installed. It also checks that the CRD
// schema does reject what it should, so a passing dry run means something.
func TestManifestsDryRun(t *testing.T) {
	d := newDryRunner(t)
	d.applyAll("deploy/crds", manifests(t, "crds/*.yaml"))
	d.applyAll("deploy/rbac", manifests(t, "rbac/*.yaml"))
	d.applyAll("deploy/lbd.yaml", manifests(t, "lbd.yaml"))
	d.applyAll("deploy/examples", manifests(t, "examples/*.yaml"))
	d.applyAll("helm/lbd/crds", manifests(t, "helm/lbd/crds/*.yaml"))
	d.applyAll("helm/lbd/files", manifests(t, "helm/lbd/files/*.yaml"))

	bad := map[string]string{
		"no addresses":            `{"apiVersion":"lbd.dev/v1alpha1","kind":"IPPool","metadata":{"name":"bad"},"spec":{}}`,
		"empty address":           `{"apiVersion":"lbd.dev/v1alpha1","kind":"IPPool","metadata":{"name":"bad"},"spec":{"addresses":[""]}}`,
		"autoAssign not bool":     `{"apiVersion":"lbd.dev/v1alpha1","kind":"IPPool","metadata":{"name":"bad"},"spec":{"addresses":["10.0.0.0/24"],"autoAssign":"yes"}}`,
		"unknown field":           `{"apiVersion":"lbd.dev/v1alpha1","kind":"IPPool","metadata":{"name":"bad"},"spec":{"addresses":["10.0.0.0/24"],"adresses":["x"]}}`,
		"bad selector op":         `{"apiVersion":"lbd.dev/v1alpha1","kind":"IPPool","metadata":{"name":"bad"},"spec":{"addresses":["10.0.0.0/24"],"serviceSelector":{"matchExpressions":[{"key":"a","operator":"Near"}]}}}`,
		"unknown DaemonSet field": `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"bad","namespace":"lbd-system"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"x","privilegd":true}]}}}}`,
	}
	for name, doc := range bad {
		objs := decodeYAML(t, []byte(doc))
		if err := d.apply(objs[0]); err == nil {
			t.Errorf("%s: accepted by the dry run, want a rejection", name)
		} else {
			t.Logf("%s: rejected: %v", name, err)
		}
	}

	helm, err := exec.LookPath("helm")
	if err != nil {
		t.Log("helm is not installed: the chart's templates are not rendered (its CRD and RBAC copies were checked above)")
		return
	}
	out, err := exec.Command(helm, "template", "lbd", "helm/lbd", "--namespace", "lbd-system", "--include-crds").Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	d.applyAll("rendered chart", decodeYAML(t, out))
}
