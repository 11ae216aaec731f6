// SPDX-License-Identifier: Apache-2.0

package static

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
)

func TestLoadLab(t *testing.T) {
	res, err := Load("testdata/lab.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	counts := []int{len(res.Nodes), len(res.Namespaces), len(res.Services), len(res.EndpointSlices), len(res.Pools), len(res.Announcements)}
	if diff := cmp.Diff([]int{2, 1, 2, 1, 0, 1}, counts); diff != "" {
		t.Fatalf("object counts nodes/namespaces/services/slices/pools/announcements (-want +got):\n%s", diff)
	}
	st, err := config.For(res, config.Options{})
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	dns, ok := st.Service(model.ServiceKey{Namespace: "default", Name: "dns"})
	if !ok {
		t.Fatalf("no default/dns in %+v", st.Services)
	}
	if got := dns.Ports; len(got) != 1 || got[0].Protocol != model.UDP || got[0].Port != 53 {
		t.Errorf("default/dns ports = %v", got)
	}
	ext, ok := st.Service(model.ServiceKey{Namespace: "web", Name: "nginx-external"})
	if !ok {
		t.Fatalf("no web/nginx-external in %+v", st.Services)
	}
	if ext.TrafficPolicy != model.PolicyLocal || ext.NamespaceLabels["team"] != "web" ||
		len(ext.VIPs) != 1 || ext.VIPs[0] != netip.MustParseAddr("10.20.1.128") {
		t.Errorf("web/nginx-external = %+v", ext)
	}
	if len(ext.Endpoints) != 1 || ext.Endpoints[0].NodeName != "node-1" || !ext.Endpoints[0].Ready {
		t.Fatalf("web/nginx-external endpoints = %+v", ext.Endpoints)
	}
	if p, ok := ext.Endpoints[0].PortFor(ext.Ports[0]); !ok || p != 8443 {
		t.Errorf("backend port for https = %d, %v; want 8443", p, ok)
	}
	if n, _ := st.Node("node-1"); n == nil || n.Labels["role"] != "worker" {
		t.Errorf("node-1 = %+v", n)
	}
}

// TestReferencePools loads the example shipped in deploy/examples and
// checks the security boundary it encodes: only Services labelled
// lb-type: external select the external pool, every other one the internal.
func TestReferencePools(t *testing.T) {
	res, err := Load("../../../deploy/examples/reference-pools.yaml")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	st, err := config.For(res, config.Options{})
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	if len(st.Pools) != 2 {
		t.Fatalf("got %d pools, want 2", len(st.Pools))
	}
	ext, in := st.Pools[0], st.Pools[1] // sorted by name
	if ext.Name != "external" || in.Name != "internal" {
		t.Fatalf("pools = %s, %s", ext.Name, in.Name)
	}
	r := func(a, b string) []model.AddrRange {
		return []model.AddrRange{{First: netip.MustParseAddr(a), Last: netip.MustParseAddr(b)}}
	}
	if diff := cmp.Diff(r("10.20.1.128", "10.20.1.254"), ext.Ranges, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("external ranges (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(r("10.20.1.1", "10.20.1.127"), in.Ranges, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("internal ranges (-want +got):\n%s", diff)
	}
	if ext.Priority != 10 || in.Priority != 0 || !ext.AutoAssign || !in.AutoAssign {
		t.Errorf("external = %+v, internal = %+v", ext, in)
	}
	for _, tt := range []struct {
		labels       map[string]string
		wantExternal bool
		wantInternal bool
	}{
		{nil, false, true},
		{map[string]string{"app": "x"}, false, true},
		{map[string]string{"lb-type": "internal"}, false, true},
		{map[string]string{"lb-type": "external"}, true, false},
	} {
		if got := ext.ServiceSelector.Matches(tt.labels); got != tt.wantExternal {
			t.Errorf("external pool selects %v = %v, want %v", tt.labels, got, tt.wantExternal)
		}
		if got := in.ServiceSelector.Matches(tt.labels); got != tt.wantInternal {
			t.Errorf("internal pool selects %v = %v, want %v", tt.labels, got, tt.wantInternal)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	const pool = "apiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  addresses: [10.0.0.0/24]\n"
	tests := []struct {
		name string
		data string
		// want are substrings, in order, of each joined error line.
		want []string
	}{
		{
			name: "unknown field",
			data: pool + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  sepc: 1\n",
			want: []string{`m.yaml: document 2 (line 7): Service "web": decode:`, `unknown field "spec.sepc"`},
		},
		{
			name: "duplicate field",
			data: "apiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  priority: 1\n  priority: 2\n",
			want: []string{`m.yaml: document 1 (line 1): parse YAML:`, `key "priority" already set`},
		},
		{
			name: "wrong type",
			data: "\n\n---\napiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  addresses: 10.0.0.0/24\n",
			want: []string{`m.yaml: document 2 (line 3): IPPool "p": decode:`, `cannot unmarshal string into Go struct field`, `addresses`},
		},
		{
			name: "unknown kind",
			data: pool + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: x\n",
			want: []string{`m.yaml: document 2 (line 7): ConfigMap "x/cm": unknown kind "ConfigMap" in apiVersion "v1", want one of`},
		},
		{
			name: "wrong apiVersion",
			data: "apiVersion: metallb.io/v1beta1\nkind: IPPool\nmetadata:\n  name: p\n",
			want: []string{`m.yaml: document 1 (line 1): IPPool "p": unknown kind "IPPool" in apiVersion "metallb.io/v1beta1"`},
		},
		{
			name: "no kind",
			data: "metadata:\n  name: p\n",
			want: []string{`m.yaml: document 1 (line 1): apiVersion and kind must be set`},
		},
		{
			name: "not a mapping",
			data: "- a\n- b\n",
			want: []string{`m.yaml: document 1 (line 1): read apiVersion and kind: document is not a mapping of an object`},
		},
		{
			name: "YAML syntax error names the line in the file",
			data: pool + "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: [unclosed\n",
			want: []string{`m.yaml: document 2 (line 7): parse YAML: `, `line 11`},
		},
		{
			name: "every bad document is reported",
			data: "kind: X\n---\n" + pool + "---\nkind: Y\n",
			want: []string{
				`m.yaml: document 1 (line 1): apiVersion and kind must be set`,
				`m.yaml: document 3 (line 9): kind must be a string, got true (quote it in YAML)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadBytes("m.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q (in order)", msg, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestLoadSkipsEmptyDocuments(t *testing.T) {
	data := "---\n# only a comment\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n...\n"
	res, err := LoadBytes("m.yaml", []byte(strings.Replace(data, "...\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Namespaces) != 1 || res.Namespaces[0].Name != "a" {
		t.Errorf("namespaces = %+v", res.Namespaces)
	}
}

func TestSplitDocuments(t *testing.T) {
	data := "a: 1\n---\nb: 2\r\n--- # c\nc: 3\n----\nd: 4\n--- e: 5\n"
	var got []string
	for _, d := range splitDocuments([]byte(data)) {
		got = append(got, strings.TrimSpace(string(d.data))+"@"+string(rune('0'+d.line)))
	}
	// "----" is not a separator; text after "--- " starts the next document.
	want := []string{"a: 1@1", "b: 2@2", "c: 3\n----\nd: 4@4", "e: 5@8"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v, want a not-exist error", err)
	}
}

// FuzzLoad checks that no input makes the loader or the converter panic.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/lab.yaml", "../../../deploy/examples/reference-pools.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 1}], ipFamilyPolicy: RequireDualStack}\n"))
	f.Add([]byte("apiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata: {name: a}\nspec: {addresses: ['::-::', '0.0.0.0/0', 'fd00::/0']}\n"))
	f.Add([]byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nendpoints: [{addresses: []}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Every problem is reported clearly: decoding errors name the
		// file and the document, conversion errors the object and field.
		res, err := LoadBytes("fuzz.yaml", data)
		for _, e := range unjoinErr(err) {
			if !strings.HasPrefix(e.Error(), "fuzz.yaml: document ") {
				t.Errorf("decode error %q does not name the file and document", e)
			}
		}
		// What decoded is still converted, as the static source does.
		st, cerr := config.For(res, config.Options{})
		if st == nil {
			t.Fatal("config.For returned a nil State")
		}
		for _, e := range unjoinErr(cerr) {
			var fe *config.FieldError
			if !errors.As(e, &fe) || fe.Kind == "" || fe.Err == nil {
				t.Errorf("conversion error %q is not a FieldError naming the object", e)
			}
		}
	})
}

func unjoinErr(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
