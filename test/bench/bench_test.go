// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/static"
)

func TestFillers(t *testing.T) {
	svcs, err := Fillers(3, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := svcs[2].VIP, netip.MustParseAddr("10.30.0.3"); got != want {
		t.Errorf("third VIP %s, want %s", got, want)
	}
	seen := map[netip.AddrPort]bool{}
	for _, s := range svcs {
		if len(s.Backends) != BackendsPerService || len(s.Nodes) != BackendsPerService {
			t.Fatalf("%s: %d backends, %d nodes", s.Name, len(s.Backends), len(s.Nodes))
		}
		for _, b := range s.Backends {
			if seen[b] {
				t.Errorf("backend %s used twice", b)
			}
			seen[b] = true
		}
	}
	if _, err := Fillers(MaxFillers+1, nil); err == nil {
		t.Error("Fillers accepted a count past MaxFillers")
	}
}

// TestIptablesShape checks the kube-proxy layout: per service one
// KUBE-SERVICES rule, a KUBE-EXT and a KUBE-SVC chain, and one KUBE-SEP
// chain per backend with hairpin masquerade and DNAT; endpoint
// probabilities 1/n, 1/(n-1), ..., last unconditional.
func TestIptablesShape(t *testing.T) {
	svcs, _ := Fillers(2, []string{"node1"})
	text := IptablesRestore(svcs)
	count := func(prefix string) int {
		n := 0
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	got := map[string]int{
		"services rules": count("-A KUBE-SERVICES "),
		"ext chains":     count(":KUBE-EXT-"),
		"svc chains":     count(":KUBE-SVC-"),
		"sep chains":     count(":KUBE-SEP-"),
		"statistic":      strings.Count(text, "--mode random"),
		"dnat":           strings.Count(text, "-j DNAT"),
		"masquerade":     strings.Count(text, "-j MASQUERADE"),
	}
	want := map[string]int{
		"services rules": 2, "ext chains": 2, "svc chains": 2, "sep chains": 20,
		"statistic": 18, "dnat": 20, "masquerade": 1,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rule counts (-want +got):\n%s", d)
	}
	for _, p := range []string{"--probability 0.1000000000 ", "--probability 0.5000000000 "} {
		if !strings.Contains(text, p) {
			t.Errorf("no rule with %s", p)
		}
	}
	// Order: the VIP that comes last in svcs is matched last.
	i1 := strings.Index(text, "-d "+svcs[0].VIP.String()+"/32")
	i2 := strings.Index(text, "-d "+svcs[1].VIP.String()+"/32")
	if i1 < 0 || i2 < 0 || i1 > i2 {
		t.Errorf("KUBE-SERVICES order: %d, %d", i1, i2)
	}
	if !strings.HasSuffix(text, "COMMIT\n") || strings.HasPrefix(IptablesAdd(svcs[0]), ":PREROUTING") {
		t.Error("restore framing")
	}
}

func TestNftShape(t *testing.T) {
	svcs, _ := Fillers(3, []string{"node1"})
	whole := Nft(svcs)
	chunks := NftChunks(svcs, 2)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want skeleton + 2", len(chunks))
	}
	if got := strings.Join(chunks, ""); got != whole {
		t.Error("chunks do not add up to the single transaction")
	}
	for what, want := range map[string]int{
		"add element ip kube-proxy service-ips": 3,
		"numgen random mod 10 vmap":             3,
		" dnat to ":                             30,
		"masquerade fully-random":               1,
	} {
		if got := strings.Count(whole, what); got != want {
			t.Errorf("%q appears %d times, want %d", what, got, want)
		}
	}
}

// TestManifest checks that lbd's static source reads the bench manifest
// into the services the other modes get: same VIPs, ports and backends.
func TestManifest(t *testing.T) {
	fill, _ := Fillers(2, []string{"node1", "node2"})
	web := []Service{
		{Namespace: "default", Name: "web", PortName: "http", VIP: netip.MustParseAddr("10.20.1.1"), Port: 80, Proto: model.TCP,
			Backends: []netip.AddrPort{netip.MustParseAddrPort("10.241.1.11:8080")}, Nodes: []string{"node1"}},
		{Namespace: "default", Name: "web", PortName: "dns", VIP: netip.MustParseAddr("10.20.1.1"), Port: 53, Proto: model.UDP,
			Backends: []netip.AddrPort{netip.MustParseAddrPort("10.241.1.11:9000")}, Nodes: []string{"node1"}},
	}
	nodes := []ManifestNode{{"node1", netip.MustParseAddr("10.20.0.51")}, {"node2", netip.MustParseAddr("10.20.0.52")}}
	b, err := Manifest(nodes, append(fill, web...))
	if err != nil {
		t.Fatal(err)
	}
	res, err := static.LoadBytes("bench", b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := config.For(res, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		VIP      netip.Addr
		Port     uint16
		Proto    model.Protocol
		Backends []netip.AddrPort
	}
	var got []port
	for _, s := range st.Services {
		for _, p := range s.Ports {
			// VIPs are assigned by lbd's ipam later; the manifest
			// requests them.
			if len(s.RequestedIPs) != 1 {
				t.Fatalf("%s requests %v, want one VIP", s.Key, s.RequestedIPs)
			}
			pt := port{VIP: s.RequestedIPs[0], Port: p.Port, Proto: p.Protocol}
			for _, e := range s.Endpoints {
				if n, ok := e.PortFor(p); ok && e.Ready {
					pt.Backends = append(pt.Backends, netip.AddrPortFrom(e.Addr, n))
				}
			}
			got = append(got, pt)
		}
	}
	var want []port
	for _, s := range append(fill, web...) {
		want = append(want, port{VIP: s.VIP, Port: s.Port, Proto: s.Proto, Backends: s.Backends})
	}
	sortPorts := cmp.Transformer("sort", func(in []port) map[string]port {
		m := map[string]port{}
		for _, p := range in {
			m[netip.AddrPortFrom(p.VIP, p.Port).String()+p.Proto.String()] = p
		}
		return m
	})
	if d := cmp.Diff(want, got, sortPorts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); d != "" {
		t.Errorf("services (-want +got):\n%s", d)
	}
}

func TestSummarizeAndRatio(t *testing.T) {
	if got, want := Summarize([]float64{3, 1, 2}), (Stat{N: 3, Median: 2, Min: 1, Max: 3}); got != want {
		t.Errorf("odd: %+v, want %+v", got, want)
	}
	if got := Summarize([]float64{4, 1, 2, 3}).Median; got != 2.5 {
		t.Errorf("even median %v, want 2.5", got)
	}
	samples := []Sample{
		{Mode: ModeLBD, Services: 10, Test: TestCPS, Rate: 300},
		{Mode: ModeLBD, Services: 10, Test: TestCPS, Rate: 200},
		{Mode: ModeLBD, Services: 10, Test: TestCPS, Rate: 100},
		{Mode: ModeIptables, Services: 10, Test: TestCPS, Rate: 100},
	}
	rows := Rows(samples, []string{ModeLBD, ModeIptables}, []int{10}, []string{TestCPS, TestRPS})
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (no rps samples)", len(rows))
	}
	if v, ok := Ratio(rows, ModeLBD, ModeIptables, 10, TestCPS); !ok || v != 2 {
		t.Errorf("ratio %v %v, want 2", v, ok)
	}
	if _, ok := Ratio(rows, ModeLBD, ModeNftables, 10, TestCPS); ok {
		t.Error("ratio against an unmeasured mode")
	}
}

func TestParseWrk(t *testing.T) {
	out := `Running 3s test @ http://10.20.1.1:80/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  20.11ms   80.00%
    Req/Sec     4.98k   200.00     5.20k    70.00%
  14925 requests in 3.00s, 1.85MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   4975.00
Transfer/sec:    631.44KB
`
	got, err := ParseWrk(TestCPS, out)
	if err != nil {
		t.Fatal(err)
	}
	want := LoadResult{Test: TestCPS, OK: 14920, Errors: 8, Seconds: 3, FirstErr: "Non-2xx or 3xx responses: 5"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := ParseWrk(TestCPS, "unable to connect"); err == nil {
		t.Error("no error for output without a count")
	}
}

func TestParseXDPBench(t *testing.T) {
	out := `BenchmarkPrivilegedXDP/services=1/established-2         	    2000	       707.8 ns/op	      2926 syscall-ns/op
BenchmarkPrivilegedXDP/services=50000/non_vip_batched-2 	    2000	        98.00 ns/op
PASS`
	got := ParseXDPBench(strings.NewReader(out))
	want := XDPFigures{"services=1/established": 707.8, "services=50000/non_vip_batched": 98}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
