// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd-project/lbd/pkg/status"
)

// exported returns the names of every lbd_ metric family a scrape of the
// fixture produces.
func exported(t *testing.T) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(fixture, withDatapath(fakeDatapath{})))
	// Count a collection error too, so its family is present.
	c := NewCollector(func() status.Status { panic("x") }, Options{})
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(c)
	var names []string
	for _, g := range []prometheus.Gatherer{reg, reg2} {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if !slices.Contains(names, mf.GetName()) {
				names = append(names, mf.GetName())
			}
		}
	}
	slices.Sort(names)
	return names
}

var metricName = regexp.MustCompile(`\blbd_[a-z_]+[a-z]`)

// TestDashboardMetrics: every lbd_ metric a Grafana panel queries exists.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/lbd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := exported(t)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = true
				if !slices.Contains(names, m) {
					t.Errorf("panel %q queries %s, which lbd does not export", p.Title, m)
				}
			}
		}
	}
	if len(used) < 10 {
		t.Errorf("dashboard uses only %d lbd metrics", len(used))
	}
}

// TestOperationsDocListsMetrics: docs/operations.md documents every metric.
func TestOperationsDocListsMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := metricName.FindAllString(string(b), -1)
	for _, n := range exported(t) {
		if !slices.Contains(documented, n) {
			t.Errorf("docs/operations.md does not document %s", n)
		}
	}
}
