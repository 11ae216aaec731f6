// SPDX-License-Identifier: Apache-2.0

package kubetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
)

// adminApplier returns what Apply needs, with the admin identity.
func (c *Cluster) adminApplier() (dynamic.Interface, *restmapper.DeferredDiscoveryRESTMapper, error) {
	cfg := c.AdminConfig()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("build dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("build discovery client: %w", err)
	}
	return dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)), nil
}

// install applies deploy/crds and deploy/rbac with the admin identity and
// waits until both are in effect: the CRDs established and the lbd identity
// allowed what deploy/rbac grants.
func (c *Cluster) install(ctx context.Context) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	dyn, mapper, err := c.adminApplier()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.AdminConfig())
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}

	var crds []string
	for _, dir := range []string{"deploy/crds", "deploy/rbac"} {
		objs, err := ReadManifests(filepath.Join(root, dir))
		if err != nil {
			return err
		}
		for _, o := range objs {
			if err := Apply(ctx, dyn, mapper, o); err != nil {
				return err
			}
			if o.GetKind() == "CustomResourceDefinition" {
				crds = append(crds, o.GetName())
			}
		}
	}
	if err := waitEstablished(ctx, dyn, crds); err != nil {
		return err
	}
	// The RBAC authorizer works from its own informers: a binding just
	// created takes a moment to apply. Wait until it does, so tests see
	// lbd's permissions, not a startup race.
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, ra := range []authzv1.ResourceAttributes{
			{Group: "lbd.dev", Resource: "ippools", Verb: "watch"},
			{Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Namespace: LBDNamespace},
		} {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User:               LBDUser,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + LBDNamespace},
				ResourceAttributes: &ra,
			}}
			res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return false, fmt.Errorf("check lbd's permissions: %w", err)
			}
			if !res.Status.Allowed {
				return false, nil
			}
		}
		return true, nil
	})
}

// ReadManifests decodes every YAML document of every .yaml file in dir, in
// file name order.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("list manifests in %s: %w", dir, err)
	}
	slices.Sort(files)
	var out []*unstructured.Unstructured
	for _, f := range files {
		objs, err := ReadManifestFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// ReadManifestFile decodes every YAML document of one file.
func ReadManifestFile(path string) ([]*unstructured.Unstructured, error) {
	r, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer r.Close()
	var out []*unstructured.Unstructured
	dec := yaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if len(obj) == 0 {
			continue // an empty document, e.g. after a trailing ---
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// Apply creates o, or updates it if it exists.
func Apply(ctx context.Context, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A kind from a CRD created a moment ago: refresh discovery.
		mapper.Reset()
		if m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("map %s: %w", gvk, err)
		}
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = dyn.Resource(m.Resource).Namespace(ns)
	}
	_, err = ri.Create(ctx, o, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	cur, gerr := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if gerr != nil {
		return fmt.Errorf("create %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	o = o.DeepCopy()
	o.SetResourceVersion(cur.GetResourceVersion())
	if _, err := ri.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	return nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, names []string) error {
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, fmt.Errorf("get CRD %s: %w", name, err)
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("wait for CRD %s to be established: %w", name, err)
		}
	}
	return nil
}

// ApplyFile creates (or updates) every object of a manifest file, relative
// to the repository root, with the admin identity.
func (c *Cluster) ApplyFile(ctx context.Context, path string) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	objs, err := ReadManifestFile(filepath.Join(root, path))
	if err != nil {
		return err
	}
	dyn, mapper, err := c.adminApplier()
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := Apply(ctx, dyn, mapper, o); err != nil {
			return err
		}
	}
	return nil
}
