// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Stat is the median and range of repeated samples.
type Stat struct {
	N                int
	Median, Min, Max float64
}

// Summarize returns the median (mean of the two middle values for an even
// count), minimum and maximum of vs.
func Summarize(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{N: len(s), Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Row is one line of the datapath table.
type Row struct {
	Mode     string
	Services int
	Test     string
	Rate     Stat
	CPU, Net Stat
	LBDProc  Stat
	Errors   int
	FirstErr string
	// Drops sums lbd's datapath drop counters over the samples.
	Drops map[string]uint64
}

// Rows aggregates samples per mode, service count and test, in the order
// of modes, counts and tests given.
func Rows(samples []Sample, modes []string, counts []int, tests []string) []Row {
	var rows []Row
	for _, c := range counts {
		for _, t := range tests {
			for _, m := range modes {
				row := Row{Mode: m, Services: c, Test: t}
				var rate, cpu, net, proc []float64
				for _, s := range samples {
					if s.Mode != m || s.Services != c || s.Test != t {
						continue
					}
					rate = append(rate, s.Rate)
					cpu = append(cpu, s.CPUPerOp)
					net = append(net, s.NetCPUPerOp)
					proc = append(proc, s.LBDProcPerOp)
					row.Errors += s.Errors
					for k, v := range s.Drops {
						if row.Drops == nil {
							row.Drops = map[string]uint64{}
						}
						row.Drops[k] += v
					}
					if row.FirstErr == "" {
						row.FirstErr = s.FirstErr
					}
				}
				if len(rate) == 0 {
					continue
				}
				row.Rate, row.CPU, row.Net, row.LBDProc = Summarize(rate), Summarize(cpu), Summarize(net), Summarize(proc)
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// Ratio returns median(a)/median(b) for one count and test, and whether
// both were measured.
func Ratio(rows []Row, a, b string, count int, test string) (float64, bool) {
	var ra, rb *Row
	for i := range rows {
		r := &rows[i]
		if r.Services != count || r.Test != test {
			continue
		}
		switch r.Mode {
		case a:
			ra = r
		case b:
			rb = r
		}
	}
	if ra == nil || rb == nil || rb.Rate.Median == 0 {
		return 0, false
	}
	return ra.Rate.Median / rb.Rate.Median, true
}

var testTitles = map[string]string{
	TestCPS: "new conns/s",
	TestRPS: "keep-alive req/s",
	TestUDP: "udp queries/s",
}

// WriteTable prints the datapath rows.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-9s %8s  %-16s %10s  %-15s %10s %10s %7s  %s\n",
		"mode", "services", "test", "median/s", "min–max", "CPU µs/op", "lbd µs/op", "errors", "lbd drops")
	for _, r := range rows {
		drops := ""
		if len(r.Drops) > 0 {
			drops = fmt.Sprint(r.Drops)
		}
		fmt.Fprintf(w, "%-9s %8d  %-16s %10.0f  %-15s %10.1f %10.2f %7d  %s\n",
			r.Mode, r.Services, testTitles[r.Test], r.Rate.Median,
			fmt.Sprintf("%.0f–%.0f", r.Rate.Min, r.Rate.Max), r.CPU.Median, r.LBDProc.Median, r.Errors, drops)
	}
}

// XDPFigures are BenchmarkPrivilegedXDP's ns/op per sub-benchmark, keyed
// "services=N/case".
type XDPFigures map[string]float64

var benchLine = regexp.MustCompile(`^BenchmarkPrivilegedXDP/(services=\d+/[a-z_]+)(?:-\d+)?\s+\d+\s+(.*)$`)

// ParseXDPBench reads "go test -bench BenchmarkPrivilegedXDP" output and
// returns the ns/op metric of every sub-benchmark.
func ParseXDPBench(r io.Reader) XDPFigures {
	out := XDPFigures{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 1; i < len(f); i++ {
			if f[i] == "ns/op" {
				if v, err := strconv.ParseFloat(f[i-1], 64); err == nil {
					out[m[1]] = v
				}
			}
		}
	}
	return out
}

// xdpCases are BenchmarkPrivilegedXDP's cases, in table order.
var xdpCases = []string{"established", "new_flow", "non_vip"}

// WriteXDPTable prints the XDP ns/packet of every service count measured,
// one row per count, and the non-VIP summary line (the established and
// new-flow lines are part of the main report).
func WriteXDPTable(w io.Writer, xf XDPFigures) {
	var counts []int
	for k := range xf {
		var n int
		if _, err := fmt.Sscanf(k, "services=%d/", &n); err == nil && !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	if len(counts) == 0 {
		return
	}
	slices.Sort(counts)
	fmt.Fprintln(w, "\n== XDP program, ns/packet (BPF_PROG_TEST_RUN, kernel-timed batches; every run checked to take its path) ==")
	fmt.Fprintf(w, "%8s", "services")
	for _, c := range xdpCases {
		fmt.Fprintf(w, " %12s", c)
	}
	fmt.Fprintln(w)
	for _, n := range counts {
		fmt.Fprintf(w, "%8d", n)
		for _, c := range xdpCases {
			if v, ok := xf[fmt.Sprintf("services=%d/%s", n, c)]; ok {
				fmt.Fprintf(w, " %12.0f", v)
			} else {
				fmt.Fprintf(w, " %12s", "-")
			}
		}
		fmt.Fprintln(w)
	}
	lo, hi := counts[0], counts[len(counts)-1]
	if a, ok := xf[fmt.Sprintf("services=%d/non_vip", lo)]; ok {
		if b, ok := xf[fmt.Sprintf("services=%d/non_vip", hi)]; ok {
			fmt.Fprintf(w, "bench: xdp ns/packet non_vip %d services: %.0f %d services: %.0f\n", lo, a, hi, b)
		}
	}
}
