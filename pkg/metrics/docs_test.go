// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/status"
)

// exported returns the names of every lbd_ metric family a scrape of the
// fixture produces.
func exported(t *testing.T) []string {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts := withDatapath(fakeDatapath{})
	opts.IPAM = &ipamcount.Counters{}
	reg.MustRegister(NewCollector(fixture, opts))
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

// TestDashboardMetrics: every lbd_ metric the Grafana dashboard queries
// (panel targets at any depth, rows included, and template variables) is
// one a scrape of the collector returns, and the dashboard has a panel for
// each metric an operator is told to watch.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/lbd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	names := exported(t)
	used := map[string]bool{}
	exprs := 0
	check := func(where, expr string) {
		exprs++
		ms := metricName.FindAllString(expr, -1)
		if len(ms) == 0 {
			t.Errorf("%s: query %q uses no lbd metric", where, expr)
		}
		for _, m := range ms {
			used[m] = true
			if !slices.Contains(names, m) {
				t.Errorf("%s queries %s, which lbd does not export", where, m)
			}
		}
	}
	var panels func(ps []any)
	panels = func(ps []any) {
		for _, p := range ps {
			p := p.(map[string]any)
			title, _ := p["title"].(string)
			if sub, ok := p["panels"].([]any); ok {
				panels(sub) // a collapsed row holds its panels
			}
			if p["type"] == "row" {
				continue
			}
			targets, _ := p["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("panel %q has no query", title)
			}
			for _, tg := range targets {
				expr, _ := tg.(map[string]any)["expr"].(string)
				check(fmt.Sprintf("panel %q", title), expr)
			}
		}
	}
	ps, _ := dash["panels"].([]any)
	panels(ps)
	if tmpl, ok := dash["templating"].(map[string]any); ok {
		vars, _ := tmpl["list"].([]any)
		for _, v := range vars {
			v := v.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			def, _ := v["definition"].(string)
			check(fmt.Sprintf("variable %q", v["name"]), def)
		}
	}
	if exprs < 20 {
		t.Errorf("only %d queries found: is the dashboard's layout one this test reads?", exprs)
	}
	for _, m := range []string{
		"lbd_datapath_map_entries", "lbd_datapath_map_capacity", "lbd_flow_events_lost_total",
		"lbd_announce_owner_changes_total", "lbd_reconciles_total", "lbd_sync_errors_total",
		"lbd_ipam_allocations_total", "lbd_ipam_refusals_total", "lbd_pool_addresses_used",
		"lbd_datapath_packets_total", "lbd_datapath_new_flows_total", "lbd_datapath_drops_total",
	} {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
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
