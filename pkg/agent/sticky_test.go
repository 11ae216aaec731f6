// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/static"
)

// poolDoc is an IPPool document of the manifests below.
func poolDoc(addresses string) string {
	return fmt.Sprintf("---\napiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: internal\nspec:\n  addresses: [%s]\n", addresses)
}

// serviceDoc is a LoadBalancer Service document in namespace default.
func serviceDoc(name string) string {
	return fmt.Sprintf("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: %s\nspec:\n  type: LoadBalancer\n  ports:\n    - name: http\n      port: 80\n      protocol: TCP\n", name)
}

// manifestState reads a manifest through the real static source, as
// `lbd run --manifests` does, and returns the State it publishes.
func manifestState(t *testing.T, docs ...string) *model.State {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var st *model.State
	err := static.New(path, config.Options{}, nil).Run(ctx, func(s *model.State) { st = s; cancel() })
	if err != nil || st == nil {
		t.Fatalf("load manifest: %v (state %v)", err, st)
	}
	return st
}

func staticAgent(t *testing.T) *Agent {
	t.Helper()
	a, err := New(Config{NodeName: "node1", Interface: "eth0", StaticIPAM: true}, fakeSource{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// vipsOf allocates st on a and returns every Service's VIPs by name.
func vipsOf(t *testing.T, a *Agent, st *model.State) map[string]string {
	t.Helper()
	out, errs := a.allocate(st)
	if len(errs) > 0 {
		t.Fatalf("allocate: %v", errs)
	}
	m := map[string]string{}
	for _, s := range out.Services {
		var v []string
		for _, ip := range s.VIPs {
			v = append(v, ip.String())
		}
		m[s.Key.Name] = strings.Join(v, ",")
	}
	return m
}

// TestStaticAllocationSticky: a running node never moves a Service because
// another was added (even one sorting before it), removed, or changed; only
// a Service whose address left its pool moves.
func TestStaticAllocationSticky(t *testing.T) {
	a := staticAgent(t)
	pool := poolDoc("10.20.1.1-10.20.1.10")
	steps := []struct {
		what string
		docs []string
		want map[string]string
	}{
		{"start", []string{pool, serviceDoc("web")},
			map[string]string{"web": "10.20.1.1"}},
		// The bug: second sorts before web, and took web's address.
		{"add second, sorting before web", []string{pool, serviceDoc("web"), serviceDoc("second")},
			map[string]string{"web": "10.20.1.1", "second": "10.20.1.2"}},
		{"insert alpha at the top of the file", []string{pool, serviceDoc("alpha"), serviceDoc("web"), serviceDoc("second")},
			map[string]string{"web": "10.20.1.1", "second": "10.20.1.2", "alpha": "10.20.1.3"}},
		{"remove web", []string{pool, serviceDoc("alpha"), serviceDoc("second")},
			map[string]string{"second": "10.20.1.2", "alpha": "10.20.1.3"}},
		// The freed address goes to the next newcomer.
		{"add aa", []string{pool, serviceDoc("alpha"), serviceDoc("second"), serviceDoc("aa")},
			map[string]string{"second": "10.20.1.2", "alpha": "10.20.1.3", "aa": "10.20.1.1"}},
		// alpha's address left the pool: alpha alone moves, to the
		// lowest free address of the pool.
		{"shrink the pool under alpha", []string{poolDoc("10.20.1.1-10.20.1.2, 10.20.1.5-10.20.1.10"), serviceDoc("alpha"), serviceDoc("second"), serviceDoc("aa")},
			map[string]string{"second": "10.20.1.2", "alpha": "10.20.1.5", "aa": "10.20.1.1"}},
	}
	for _, s := range steps {
		got := vipsOf(t, a, manifestState(t, s.docs...))
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("%s: VIPs (-want +got):\n%s", s.what, diff)
		}
	}
}

// TestStaticAllocationRestart: a node started on the final manifest gives
// the answer of the nodes that ran through every edit, when Services were
// appended in order; and a fresh lab still gives the first address of the
// pool to the first Service.
func TestStaticAllocationRestart(t *testing.T) {
	pool := poolDoc("10.20.1.1-10.20.1.10")
	names := []string{"web", "second", "api", "a-first-by-name", "zz"}
	running := staticAgent(t)
	docs := []string{pool}
	var last map[string]string
	for i, n := range names {
		docs = append(docs, serviceDoc(n))
		last = vipsOf(t, running, manifestState(t, docs...))
		if want := fmt.Sprintf("10.20.1.%d", i+1); last[n] != want {
			t.Errorf("appended %s: got %q, want %s", n, last[n], want)
		}
	}
	restarted := vipsOf(t, staticAgent(t), manifestState(t, docs...))
	if diff := cmp.Diff(last, restarted); diff != "" {
		t.Errorf("restarted node disagrees with the running ones (-running +restarted):\n%s", diff)
	}
}

// TestStaticAllocationCreationTimestamp: from scratch, creationTimestamp
// orders Services before their place in the file, and Services without
// one come after those with one.
func TestStaticAllocationCreationTimestamp(t *testing.T) {
	withTS := func(name, ts string) string {
		return strings.Replace(serviceDoc(name), "metadata:\n", "metadata:\n  creationTimestamp: \""+ts+"\"\n", 1)
	}
	st := manifestState(t, poolDoc("10.20.1.1-10.20.1.10"),
		serviceDoc("untimed"),
		withTS("newer", "2026-03-01T00:00:00Z"),
		withTS("older", "2026-01-01T00:00:00Z"))
	got := vipsOf(t, staticAgent(t), st)
	want := map[string]string{"older": "10.20.1.1", "newer": "10.20.1.2", "untimed": "10.20.1.3"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
}

// TestStaticAllocationManifestVIPsWin: a VIP the manifest gives (status)
// is kept over the remembered one, and refusing it is still reported.
func TestStaticAllocationManifestVIPsWin(t *testing.T) {
	a := staticAgent(t)
	st := testState()
	vipsOf(t, a, st)
	st.Services[0].VIPs = []netip.Addr{netip.MustParseAddr("10.20.1.9")}
	if got := vipsOf(t, a, st)["web"]; got != "10.20.1.9" {
		t.Errorf("web = %s, want the manifest's 10.20.1.9", got)
	}
	st.Services[0].VIPs = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	if _, errs := a.allocate(st); len(errs) != 1 {
		t.Errorf("a manifest VIP outside every pool: errors %v, want one", errs)
	}
}
