// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// schemaNode is the part of an OpenAPI v3 schema the doc check walks.
type schemaNode struct {
	Type       string                `json:"type"`
	Default    any                   `json:"default"`
	Properties map[string]schemaNode `json:"properties"`
	Items      *schemaNode           `json:"items"`
}

// wellKnown reports whether n is a Kubernetes type documented once as a
// whole (a label selector, a list of conditions) rather than field by
// field.
func wellKnown(n schemaNode) bool {
	if _, ok := n.Properties["matchExpressions"]; ok {
		return true
	}
	if n.Items != nil {
		_, ok := n.Items.Properties["lastTransitionTime"]
		return ok
	}
	return false
}

// schemaFields returns every field path under spec and status ("spec.x",
// "spec.x.y", lists of objects as "spec.x[].y"), with its default.
func schemaFields(prefix string, n schemaNode, out map[string]any) {
	for name, p := range n.Properties {
		path := prefix + name
		out[path] = p.Default
		if wellKnown(p) {
			continue
		}
		if p.Type == "object" {
			schemaFields(path+".", p, out)
		}
		if p.Items != nil && p.Items.Type == "object" {
			schemaFields(path+"[].", *p.Items, out)
		}
	}
}

func crdFields(t *testing.T, file string) (kind string, fields map[string]any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Names    struct{ Kind string }
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema schemaNode `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	fields = map[string]any{}
	for _, v := range crd.Spec.Versions {
		root := v.Schema.OpenAPIV3Schema
		for _, top := range []string{"spec", "status"} {
			if n, ok := root.Properties[top]; ok {
				schemaFields(top+".", n, fields)
			}
		}
	}
	return crd.Spec.Names.Kind, fields
}

var docRow = regexp.MustCompile("(?m)^\\| `((?:spec|status)\\.[^`]+)` \\|(.*)$")

// docFields returns the field rows of the "## kind" section of the doc.
func docFields(t *testing.T, doc, kind string) map[string]string {
	t.Helper()
	_, sec, ok := strings.Cut(doc, "\n## "+kind+"\n")
	if !ok {
		t.Fatalf("docs/configuration.md has no \"## %s\" section", kind)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	out := map[string]string{}
	for _, m := range docRow.FindAllStringSubmatch(sec, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestConfigurationDocMatchesCRDs: docs/configuration.md documents every
// field of the IPPool and L2Announcement schemas, documents no field the
// schemas lack, and states each schema default.
func TestConfigurationDocMatchesCRDs(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, file := range []string{"../../deploy/crds/lbd.dev_ippools.yaml", "../../deploy/crds/lbd.dev_l2announcements.yaml"} {
		kind, schema := crdFields(t, file)
		documented := docFields(t, doc, kind)
		if len(schema) == 0 {
			t.Fatalf("%s: no fields found in the schema", file)
		}
		for path, def := range schema {
			row, ok := documented[path]
			if !ok {
				t.Errorf("%s: schema field %s is not documented in docs/configuration.md", kind, path)
				continue
			}
			if def != nil && !strings.Contains(row, fmt.Sprintf("default `%v`", def)) {
				t.Errorf("%s: %s has default %v in the schema; its row does not say \"default `%v`\"", kind, path, def, def)
			}
		}
		for path := range documented {
			if _, ok := schema[path]; !ok {
				t.Errorf("%s: docs/configuration.md documents %s, which the schema does not have", kind, path)
			}
		}
		t.Logf("%s: %d fields checked: %v", kind, len(schema), slices.Sorted(maps.Keys(schema)))
	}
}
