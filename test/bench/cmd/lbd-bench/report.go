// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"time"

	"github.com/lbd-project/lbd/test/bench"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func report(w io.Writer, cp bench.ControlResult, dp *bench.DatapathResult, xf bench.XDPFigures,
	modes []string, counts []int, tests []string, reps int, dur time.Duration, conc int) {
	n := cp.Services
	fmt.Fprintf(w, "\n== control plane: %d services, %d backends each ==\n", n, bench.BackendsPerService)
	fmt.Fprintf(w, "lbd datapath.New %s + Sync %s; one more service: Sync %s%s\n", ms(cp.LBDNew), ms(cp.LBDSync), ms(cp.LBDOne), noteSuffix(cp.LBDNote))
	fmt.Fprintf(w, "iptables-restore (kube-proxy iptables shape) %s; one more service (iptables-restore --noflush) %s%s\n", ms(cp.IptRestore), ms(cp.IptOne), noteSuffix(cp.IptNote))
	fmt.Fprintf(w, "nft -f (kube-proxy nftables shape, verdict map) %d services in transactions of %d: %s; one more service %s\n",
		n, bench.NftChunkSize, ms(cp.NftChunked), ms(cp.NftOne))
	fmt.Fprintf(w, "nft -f in one transaction (kube-proxy's first sync): %d services %s; steps %v%s\n",
		cp.NftServices, ms(cp.NftLoad), cp.NftSteps, noteSuffix(cp.NftNote))

	var rows []bench.Row
	if dp != nil {
		rows = bench.Rows(dp.Samples, modes, counts, tests)
		fmt.Fprintf(w, "\n== datapath: client -> VIP on node1 (lbd) / node2 (iptables) / node3 (nftables) -> pods on node4, node5 (all SNAT); %d reps x %v per run, %d concurrent clients, median and min–max ==\n", reps, dur, conc)
		fmt.Fprintln(w, "CPU µs/op: machine-wide busy CPU from /proc/stat (all cores: load generator, LB node, pods, and anything")
		fmt.Fprintln(w, "else the shared machine ran) per operation; lbd µs/op: the lbd process alone (user space).")
		bench.WriteTable(w, rows)
		for _, note := range dp.Notes {
			fmt.Fprintf(w, "note: %s\n", note)
		}
		for _, r := range rows {
			if r.FirstErr != "" {
				fmt.Fprintf(w, "first error %s %d %s: %s\n", r.Mode, r.Services, r.Test, r.FirstErr)
			}
		}
	}

	fmt.Fprintln(w)
	if dp != nil {
		for _, other := range []string{bench.ModeIptables, bench.ModeNftables} {
			for _, t := range tests {
				for _, c := range counts {
					if v, ok := bench.Ratio(rows, bench.ModeLBD, other, c, t); ok {
						fmt.Fprintf(w, "bench: lbd/%s %s ratio %d services: %.2f\n", other, t, c, v)
					}
				}
			}
		}
	}
	lbdProg := cp.LBDNew + cp.LBDSync
	if cp.LBDSync > 0 {
		fmt.Fprintf(w, "bench: lbd program %d services: %s (datapath.New %s, Sync %s)\n", n, ms(lbdProg), ms(cp.LBDNew), ms(cp.LBDSync))
	}
	if cp.IptRestore > 0 {
		fmt.Fprintf(w, "bench: iptables-restore %d services: %s\n", n, ms(cp.IptRestore))
		if cp.LBDSync > 0 {
			fmt.Fprintf(w, "bench: lbd/iptables program %d services ratio: %.3f\n", n, float64(lbdProg)/float64(cp.IptRestore))
		}
	}
	if cp.NftChunked > 0 {
		fmt.Fprintf(w, "bench: nft -f %d services (transactions of %d): %s\n", n, bench.NftChunkSize, ms(cp.NftChunked))
		if cp.LBDSync > 0 {
			fmt.Fprintf(w, "bench: lbd/nftables program %d services ratio: %.3f\n", n, float64(lbdProg)/float64(cp.NftChunked))
		}
	}
	if cp.NftLoad > 0 {
		fmt.Fprintf(w, "bench: nft -f one transaction %d services: %s", cp.NftServices, ms(cp.NftLoad))
		if cp.NftPredicted > 0 && cp.NftServices != n {
			fmt.Fprintf(w, " (%d services: not tried, kernel soft lockup; extrapolation %.0f s is a lower bound)", n, cp.NftPredicted.Seconds())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "bench: one change at %d services: lbd %s iptables %s nftables %s\n",
		n, ms(cp.LBDOne), ms(cp.IptOne), ms(cp.NftOne))
	if dp != nil {
		for _, c := range counts {
			if rss, ok := dp.LBDRSS[c]; ok {
				fmt.Fprintf(w, "bench: lbd rss %d services: %.1f MiB (VmHWM %.1f MiB, lbd run on node1)\n", c, float64(rss)/1024, float64(dp.LBDHWM[c])/1024)
			}
			if rs := dp.LBDReady[c]; len(rs) > 0 {
				var fs []float64
				for _, d := range rs {
					fs = append(fs, d.Seconds())
				}
				st := bench.Summarize(fs)
				fmt.Fprintf(w, "bench: lbd run start to %d services programmed: %.2f s (min %.2f max %.2f)\n", c, st.Median, st.Min, st.Max)
			}
		}
	}
	if dp != nil {
		for _, m := range modes {
			for _, c := range counts {
				if d, ok := dp.Setup[m][c]; ok {
					fmt.Fprintf(w, "bench: %s setup on its node %d services: %s\n", m, c, ms(d))
				}
			}
		}
	}
	if cp.LBDRSS > 0 {
		fmt.Fprintf(w, "bench: bench process rss after lbd Sync of %d services: %.1f MiB (upper bound: includes the generated rule texts)\n", n, float64(cp.LBDRSS)/1024)
	}
	if len(xf) > 0 {
		fmt.Fprintf(w, "bench: xdp ns/packet established 1 services: %.0f 50000 services: %.0f\n",
			xf["services=1/established"], xf["services=50000/established"])
		fmt.Fprintf(w, "bench: xdp ns/packet new_flow 1 services: %.0f 50000 services: %.0f\n",
			xf["services=1/new_flow"], xf["services=50000/new_flow"])
	}
}

func noteSuffix(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}
