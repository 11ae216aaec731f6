// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/status"
)

// moreServices are appended to the running node's manifest: one Service
// that gets an address, one that asks for a pool that does not exist. The
// first sorts before web on purpose: static allocations are sticky, so it
// must not move web to another address (which would also count as a second
// allocation).
const moreServices = `---
apiVersion: v1
kind: Service
metadata:
  name: second
  namespace: default
spec:
  type: LoadBalancer
  ports:
    - name: http
      port: 80
      protocol: TCP
---
apiVersion: v1
kind: Service
metadata:
  name: stray
  namespace: default
  annotations:
    lbd.dev/address-pool: nonexistent
spec:
  type: LoadBalancer
  ports:
    - name: http
      port: 80
      protocol: TCP
`

// TestPrivilegedIPAMMetrics runs the real lbd on a static manifest: the
// allocations present at start are the baseline, a Service added to the
// manifest counts as one allocation, one asking for a missing pool as one
// no_pool refusal, and every refusal reason is exported from the start.
func TestPrivilegedIPAMMetrics(t *testing.T) {
	testutil.Privileged(t)
	n := startNode(t, "--metrics-addr=127.0.0.1:9474")
	webVIP := n.waitVIP(t)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: n.dial}}
	scrape := func() map[string]float64 {
		t.Helper()
		resp, err := hc.Get("http://127.0.0.1:9474/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return parseMetrics(t, string(b))
	}
	m := scrape()
	if got, ok := m["lbd_ipam_allocations_total"]; !ok || got != 0 {
		t.Errorf("lbd_ipam_allocations_total = %v (present %v) at start, want 0: the first allocation is the baseline", got, ok)
	}
	for _, r := range []string{"pool_exhausted", "no_pool", "not_allowed", "address_in_use", "invalid_request", "invalid_service", "other"} {
		if got, ok := m[`lbd_ipam_refusals_total{reason="`+r+`"}`]; !ok || got != 0 {
			t.Errorf("refusals{reason=%q} = %v (present %v), want 0", r, got, ok)
		}
	}

	manifest := filepath.Join(n.dir, "cluster.yaml")
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, append(b, moreServices...), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m = scrape()
		if m["lbd_ipam_allocations_total"] == 1 && m[`lbd_ipam_refusals_total{reason="no_pool"}`] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after adding two Services: allocations %v, no_pool refusals %v; want 1 and 1",
				m["lbd_ipam_allocations_total"], m[`lbd_ipam_refusals_total{reason="no_pool"}`])
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Adding second, which sorts before web, left web where it was.
	st, err := status.Fetch(context.Background(), n.socket)
	if err != nil {
		t.Fatal(err)
	}
	vipOf := map[string]string{}
	for _, v := range st.VIPs {
		for _, svc := range v.Services {
			vipOf[svc] = v.VIP
		}
	}
	if vipOf["default/web"] != webVIP || vipOf["default/second"] == "" || vipOf["default/second"] == webVIP {
		t.Errorf("after adding default/second: VIPs %v, want default/web still on %s and default/second on another address", vipOf, webVIP)
	}
	// A later reconcile (the manifest rewritten with the same objects)
	// recomputes every allocation and must not count any again.
	reconciles := m["lbd_reconciles_total"]
	if err := os.WriteFile(manifest, append(append(b, moreServices...), "# touched\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); m["lbd_reconciles_total"] <= reconciles; {
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile after rewriting the manifest (lbd_reconciles_total %v)", reconciles)
		}
		time.Sleep(200 * time.Millisecond)
		m = scrape()
	}
	if m["lbd_ipam_allocations_total"] != 1 || m[`lbd_ipam_refusals_total{reason="no_pool"}`] != 1 {
		t.Errorf("counts moved without a change: allocations %v, no_pool %v",
			m["lbd_ipam_allocations_total"], m[`lbd_ipam_refusals_total{reason="no_pool"}`])
	}
}

// TestPrivilegedStatusRates: lbd status shows per-frontend rates over the
// interval between the daemon's two last snapshots, for real traffic
// through the datapath.
func TestPrivilegedStatusRates(t *testing.T) {
	testutil.Privileged(t)
	n := startNode(t)
	vip := n.waitVIP(t)
	ctx := context.Background()
	// The snapshot before the traffic: the base of the next interval.
	if _, err := status.Fetch(ctx, n.socket); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := n.client.Do(func() error {
		for range 5 {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "80"), 200*time.Millisecond); err == nil {
				c.Close()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(status.MinRateInterval + 100*time.Millisecond)))
	st, err := status.Fetch(ctx, n.socket)
	if err != nil {
		t.Fatal(err)
	}
	var port *status.Port
	for _, v := range st.VIPs {
		if v.VIP == vip {
			port = &v.Ports[0]
		}
	}
	if port == nil || port.Rates == nil {
		t.Fatalf("no rates for %s:80 in %+v", vip, st.VIPs)
	}
	secs := st.Rates.IntervalSeconds
	if secs < status.MinRateInterval.Seconds() {
		t.Errorf("rate interval %v s, want >= %v", secs, status.MinRateInterval)
	}
	// At least the 5 SYNs went through the datapath in the interval.
	if got := port.Rates.PacketsPerSecond * secs; got < 5 {
		t.Errorf("packets/s %v over %v s = %v packets, want >= 5", port.Rates.PacketsPerSecond, secs, got)
	}
	if got := port.Rates.NewFlowsPerSecond * secs; got < 1 {
		t.Errorf("new flows/s %v over %v s = %v flows, want >= 1", port.Rates.NewFlowsPerSecond, secs, got)
	}

	out, err := exec.Command(n.bin, "status", "--socket="+n.socket).CombinedOutput()
	if err != nil {
		t.Fatalf("lbd status: %v\n%s", err, out)
	}
	t.Logf("lbd status:\n%s", out)
	for _, want := range []string{"PKT/S", "FLOWS/S", "rates over the daemon's last interval between snapshots"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lbd status lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(n.bin, "status", "--socket="+n.socket, vip).CombinedOutput()
	if err != nil {
		t.Fatalf("lbd status %s: %v\n%s", vip, err, out)
	}
	t.Logf("lbd status %s:\n%s", vip, out)
	if !strings.Contains(string(out), "rates on this node:") {
		t.Errorf("lbd status %s lacks the rates:\n%s", vip, out)
	}
}
