// SPDX-License-Identifier: Apache-2.0

package static

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/config"
)

// Load reads the manifest file at path. See LoadBytes.
func Load(path string) (config.Resources, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return config.Resources{}, fmt.Errorf("read manifest: %w", err)
	}
	return LoadBytes(path, data)
}

// LoadBytes decodes a manifest; name is used in error messages. Every
// document is decoded, and the error joins one error per bad document, each
// naming the file, the document's number and first line, and its kind and
// name when they could be read. It does not validate the objects beyond
// decoding: that is config.For's job.
func LoadBytes(name string, data []byte) (config.Resources, error) {
	var (
		res  config.Resources
		errs []error
	)
	for _, d := range splitDocuments(data) {
		if err := decode(&res, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d (line %d): %w", name, d.index, d.line, err))
		}
	}
	return res, errors.Join(errs...)
}

// document is one YAML document of a stream.
type document struct {
	index int // 1-based
	line  int // 1-based line of its first line in the file
	data  []byte
}

// splitDocuments splits a YAML stream on "---" lines. A line is a separator
// if it starts with "---" followed by nothing, a space or a tab, as in
// YAML; text after the marker (other than a comment) belongs to the next
// document.
func splitDocuments(data []byte) []document {
	var (
		docs []document
		cur  = document{index: 1, line: 1}
		buf  bytes.Buffer
	)
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, "\r\n")
		if bytes.HasPrefix(trimmed, []byte("---")) &&
			(len(trimmed) == 3 || trimmed[3] == ' ' || trimmed[3] == '\t') {
			cur.data = bytes.Clone(buf.Bytes())
			docs = append(docs, cur)
			buf.Reset()
			cur = document{index: cur.index + 1, line: i + 1}
			rest := bytes.TrimSpace(trimmed[3:])
			if len(rest) > 0 && rest[0] != '#' {
				buf.Write(rest)
				buf.WriteByte('\n')
			} else {
				// Keep line numbers: the separator line becomes blank.
				buf.WriteByte('\n')
			}
			continue
		}
		buf.Write(l)
	}
	cur.data = bytes.Clone(buf.Bytes())
	return append(docs, cur)
}

// kinds are the objects a manifest may hold.
var kinds = []string{
	"v1/Node", "v1/Service", "v1/Namespace",
	"discovery.k8s.io/v1/EndpointSlice",
	"lbd.dev/v1alpha1/IPPool", "lbd.dev/v1alpha1/L2Announcement",
}

func decode(res *config.Resources, d document) error {
	// Strict: a key given twice in YAML is an error, not a silent
	// last-one-wins.
	j, err := yaml.YAMLToJSONStrict(d.data)
	if err != nil {
		// Parse again padded with the lines before the document, so the
		// error names the line in the file, not in the document. Only on
		// error: padding every document made loading quadratic in the
		// file's length (GBs of garbage for 10 000 Services).
		y := append(bytes.Repeat([]byte("\n"), d.line-1), d.data...)
		if _, perr := yaml.YAMLToJSONStrict(y); perr != nil {
			err = perr
		}
		return fmt.Errorf("parse YAML: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil // empty, or only comments
	}
	kind, apiVersion, name, namespace, err := readHeader(j)
	if err != nil {
		return err
	}
	obj := kind + " " + strconv.Quote(name)
	if namespace != "" {
		obj = kind + " " + strconv.Quote(namespace+"/"+name)
	}
	strict := func(into any) error {
		// sigs.k8s.io/json is the decoder the API server uses: its strict
		// errors name the full path of every unknown or duplicated field
		// ("spec.sepc"), where encoding/json names only the last key.
		strictErrs, err := kjson.UnmarshalStrict(j, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err != nil {
			return fmt.Errorf("%s: decode: %w", obj, err)
		}
		if len(strictErrs) > 0 {
			return fmt.Errorf("%s: decode: %w", obj, errors.Join(strictErrs...))
		}
		return nil
	}
	// defaultNS puts namespaced objects without a namespace in "default",
	// as kubectl apply would.
	defaultNS := func(m *metav1.ObjectMeta) {
		if m.Namespace == "" {
			m.Namespace = metav1.NamespaceDefault
		}
	}
	switch apiVersion + "/" + kind {
	case "v1/Node":
		var o corev1.Node
		if err := strict(&o); err != nil {
			return err
		}
		res.Nodes = append(res.Nodes, o)
	case "v1/Service":
		var o corev1.Service
		if err := strict(&o); err != nil {
			return err
		}
		defaultNS(&o.ObjectMeta)
		res.Services = append(res.Services, o)
	case "v1/Namespace":
		var o corev1.Namespace
		if err := strict(&o); err != nil {
			return err
		}
		res.Namespaces = append(res.Namespaces, o)
	case "discovery.k8s.io/v1/EndpointSlice":
		var o discoveryv1.EndpointSlice
		if err := strict(&o); err != nil {
			return err
		}
		defaultNS(&o.ObjectMeta)
		res.EndpointSlices = append(res.EndpointSlices, o)
	case "lbd.dev/v1alpha1/IPPool":
		var o v1alpha1.IPPool
		if err := strict(&o); err != nil {
			return err
		}
		res.Pools = append(res.Pools, o)
	case "lbd.dev/v1alpha1/L2Announcement":
		var o v1alpha1.L2Announcement
		if err := strict(&o); err != nil {
			return err
		}
		res.Announcements = append(res.Announcements, o)
	default:
		return fmt.Errorf("%s: unknown kind %q in apiVersion %q, want one of %s",
			obj, kind, apiVersion, strings.Join(kinds, ", "))
	}
	return nil
}

// readHeader reads what every object has, before its kind is known. It
// reads a generic map so that it can tell what is wrong: YAML reads
// unquoted y, yes, on, 1 as non-strings.
func readHeader(j []byte) (kind, apiVersion, name, namespace string, err error) {
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return "", "", "", "", fmt.Errorf("read apiVersion and kind: document is not a mapping of an object")
	}
	str := func(m map[string]any, key string) (string, error) {
		switch v := m[key].(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return "", fmt.Errorf("%s must be a string, got %v (quote it in YAML)", key, v)
		}
	}
	if kind, err = str(m, "kind"); err != nil {
		return "", "", "", "", err
	}
	if apiVersion, err = str(m, "apiVersion"); err != nil {
		return "", "", "", "", err
	}
	if apiVersion == "" || kind == "" {
		return "", "", "", "", fmt.Errorf("apiVersion and kind must be set")
	}
	// Name and namespace only label error messages here; strict decoding
	// reports them if they are not strings.
	if md, ok := m["metadata"].(map[string]any); ok {
		name, _ = str(md, "name")
		namespace, _ = str(md, "namespace")
	}
	return kind, apiVersion, name, namespace, nil
}
