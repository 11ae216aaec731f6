// SPDX-License-Identifier: Apache-2.0

package status

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCheckerRates drives the Checker with a deterministic clock: rates
// appear from the second snapshot, cover the interval since the previous
// one, survive a snapshot taken too soon after, and treat a counter that
// went down as a reset.
func TestCheckerRates(t *testing.T) {
	clock := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	var web, dns Counters
	withDNS := false
	snap := func() Status {
		st := Status{Node: "node1", VIPs: []VIP{{VIP: "10.20.1.1", Ports: []Port{
			{Port: 80, Protocol: "TCP", Counters: web, Backends: []Backend{{Ready: true}}},
		}}}}
		if withDNS {
			st.VIPs = append(st.VIPs, VIP{VIP: "10.20.1.2", Ports: []Port{
				{Port: 53, Protocol: "UDP", Counters: dns, Backends: []Backend{{Ready: true}}}}})
		}
		return st
	}
	c := NewChecker(snap)
	c.now = func() time.Time { return clock }
	rates := func(st Status) []*Rates {
		var out []*Rates
		for _, v := range st.VIPs {
			for _, p := range v.Ports {
				out = append(out, p.Rates)
			}
		}
		return out
	}

	web = Counters{Packets: 1000, Bytes: 64000, NewFlows: 10}
	st := c.Snapshot()
	if r := rates(st); r[0] != nil || st.Rates.IntervalSeconds != 0 {
		t.Fatalf("rates from a single snapshot: %+v, %+v", r[0], st.Rates)
	}

	clock = clock.Add(10 * time.Second)
	web = Counters{Packets: 6000, Bytes: 384000, NewFlows: 60, Drops: 20}
	st = c.Snapshot()
	want := []*Rates{{PacketsPerSecond: 500, BytesPerSecond: 32000, NewFlowsPerSecond: 5, DropsPerSecond: 2}}
	if diff := cmp.Diff(want, rates(st)); diff != "" {
		t.Errorf("rates over 10 s (-want +got):\n%s", diff)
	}
	end := clock
	if st.Rates.IntervalSeconds != 10 || st.Rates.End == nil || !st.Rates.End.Equal(end) {
		t.Errorf("rate info = %+v, want 10 s ending %v", st.Rates, end)
	}

	// Half a second later (a scrape right after lbd status): too short
	// an interval, so the previous interval's rates are shown again.
	clock = clock.Add(500 * time.Millisecond)
	web.Packets += 1
	st = c.Snapshot()
	if diff := cmp.Diff(want, rates(st)); diff != "" || st.Rates.IntervalSeconds != 10 {
		t.Errorf("snapshot 0.5 s later: rates (-want +got):\n%s; info %+v", diff, st.Rates)
	}

	// 4 s after the base: a new frontend counts from zero, and a
	// counter that went down (maps recreated) restarts from zero.
	clock = clock.Add(3500 * time.Millisecond)
	withDNS = true
	web = Counters{Packets: 400}
	dns = Counters{Packets: 80, NewFlows: 40}
	st = c.Snapshot()
	want = []*Rates{{PacketsPerSecond: 100}, {PacketsPerSecond: 20, NewFlowsPerSecond: 10}}
	if diff := cmp.Diff(want, rates(st)); diff != "" {
		t.Errorf("rates after a reset and a new frontend (-want +got):\n%s", diff)
	}

	var b bytes.Buffer
	if err := Render(&b, &st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, line := range []string{"PKT/S", "FLOWS/S", "rates over the daemon's last interval between snapshots: 4s, ending 21:00:14 UTC"} {
		if !strings.Contains(out, line) {
			t.Errorf("table lacks %q:\n%s", line, out)
		}
	}
	if !tableRow(out, "10.20.1.2", "20.0", "10.0") || !tableRow(out, "10.20.1.1", "100", "0.0") {
		t.Errorf("table rows lack the rates:\n%s", out)
	}
	ForVIP(&st, "10.20.1.2")
	b.Reset()
	if err := RenderVIP(&b, &st); err != nil {
		t.Fatal(err)
	}
	if want := "rates on this node:    20.0 packets/s, 0.0 bytes/s, 10.0 new flows/s, 0.0 drops/s (over 4s)"; !strings.Contains(b.String(), want) {
		t.Errorf("lbd status VIP lacks %q:\n%s", want, b.String())
	}
}

// tableRow reports whether a line starting with first ends with the
// fields last (the PKT/S and FLOWS/S columns).
func tableRow(out, first string, last ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > len(last) && f[0] == first && strings.Join(f[len(f)-len(last):], " ") == strings.Join(last, " ") {
			return true
		}
	}
	return false
}

// TestRenderNoRatesYet: the first snapshot says why there are no rates.
func TestRenderNoRatesYet(t *testing.T) {
	st := healthy()
	var b bytes.Buffer
	if err := Render(&b, &st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "rates: none yet") {
		t.Errorf("no explanation of the missing rates:\n%s", b.String())
	}
}

// BenchmarkRatesObserve10k: what keeping rates adds to one snapshot of
// 10 000 frontends (every lbd status and every scrape pays it).
func BenchmarkRatesObserve10k(b *testing.B) {
	st := Status{}
	for i := range 10000 {
		st.VIPs = append(st.VIPs, VIP{VIP: "10.20." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250),
			Ports: []Port{{Port: 80, Protocol: "TCP", Counters: Counters{Packets: uint64(i)}}}})
	}
	var r rateTracker
	now := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(2 * time.Second)
		r.observe(&st, now)
	}
}
