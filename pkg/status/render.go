// SPDX-License-Identifier: Apache-2.0

package status

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Render writes st as tables for people.
func Render(w io.Writer, st *Status) error {
	fmt.Fprintf(w, "node %s  (lbd %s, source %s)\n\n", st.Node, st.Version, st.Source)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tRANGES\tUSED/TOTAL")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\n", p.Name, strings.Join(p.Ranges, ","), p.Used, p.Total)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VIP\tSERVICE\tPOOL\tOWNER\tPORT\tPOLICY\tBACKENDS\tPACKETS\tBYTES\tFLOWS\tDROPS\tPKT/S\tFLOWS/S")
	for _, v := range st.VIPs {
		owner := v.Owner
		if v.Owned {
			owner += " (this node)"
		}
		if len(v.Ports) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\n", v.VIP, v.Service, v.Pool, owner)
		}
		for i, p := range v.Ports {
			vip, svc, pool, own := v.VIP, v.Service, v.Pool, owner
			if i > 0 {
				vip, svc, pool, own = "", "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", vip, svc, pool, own,
				p.Port, p.Protocol, p.Policy, backends(p.Backends), p.Counters.Packets, p.Counters.Bytes,
				p.Counters.NewFlows, p.Counters.Drops,
				rate(p.Rates, func(r Rates) float64 { return r.PacketsPerSecond }),
				rate(p.Rates, func(r Rates) float64 { return r.NewFlowsPerSecond }))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, rateLine(st))
	fmt.Fprintln(w)
	var ifs []string
	for i, m := range st.Datapath.Attached {
		ifs = append(ifs, i+" ("+m+")")
	}
	sort.Strings(ifs)
	fmt.Fprintf(w, "datapath: attached %s; %d flows in connection table; pinned at %s\n",
		strings.Join(ifs, ", "), st.Datapath.Conntrack, st.Datapath.PinDir)
	var rs []string
	for k, v := range st.Datapath.Reasons {
		if v > 0 {
			rs = append(rs, fmt.Sprintf("%s=%d", k, v))
		}
	}
	sort.Strings(rs)
	fmt.Fprintf(w, "datapath packets by reason: %s\n", strings.Join(rs, " "))
	fmt.Fprintf(w, "announce: interfaces %s; ARP/NDP answered %d, gratuitous sent %d, conflicts %d\n",
		strings.Join(st.Announce.Interfaces, ","), st.Announce.Answered, st.Announce.Gratuitous, st.Announce.Conflicts)
	fmt.Fprintf(w, "reconcile: %d passes, %d with sync errors\n", st.Reconcile.Runs, st.Reconcile.SyncErrors)
	if len(st.Members) > 0 {
		fmt.Fprintf(w, "membership: %s\n", members(st))
	}
	problems(w, st)
	return nil
}

func members(st *Status) string {
	var ms []string
	for _, m := range st.Members {
		h := "healthy"
		if !m.Healthy {
			h = "DOWN"
			if m.Node == st.Node {
				h = "FENCED"
			}
		}
		self := ""
		if m.Node == st.Node {
			self = " (this node)"
		}
		ms = append(ms, fmt.Sprintf("%s%s %s", m.Node, self, h))
	}
	return strings.Join(ms, ", ")
}

func problems(w io.Writer, st *Status) {
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	for _, e := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", e)
	}
}

// RenderVIP writes the one VIP of st (narrowed by ForVIP) in detail:
// every port with its policy, counters and each backend.
func RenderVIP(w io.Writer, st *Status) error {
	for _, v := range st.VIPs {
		owner := v.Owner
		if owner == "" {
			owner = "none (no eligible node)"
		}
		if v.Owned {
			owner += " (this node)"
		}
		fmt.Fprintf(w, "VIP:       %s\n", v.VIP)
		fmt.Fprintf(w, "services:  %s\n", strings.Join(v.Services, ", "))
		for _, p := range st.Pools {
			fmt.Fprintf(w, "pool:      %s (%s, %d/%d used)\n", p.Name, strings.Join(p.Ranges, ","), p.Used, p.Total)
		}
		if len(st.Pools) == 0 {
			fmt.Fprintf(w, "pool:      %s\n", v.Pool)
		}
		fmt.Fprintf(w, "owner:     %s\n", owner)
		for _, p := range v.Ports {
			fmt.Fprintf(w, "\nport %d/%s  service %s  policy %s\n", p.Port, p.Protocol, p.Service, p.Policy)
			c := p.Counters
			fmt.Fprintf(w, "  counters on this node: %d packets, %d bytes, %d new flows, %d drops\n", c.Packets, c.Bytes, c.NewFlows, c.Drops)
			if r := p.Rates; r != nil {
				fmt.Fprintf(w, "  rates on this node:    %s packets/s, %s bytes/s, %s new flows/s, %s drops/s (over %s)\n",
					num(r.PacketsPerSecond), num(r.BytesPerSecond), num(r.NewFlowsPerSecond), num(r.DropsPerSecond), interval(st))
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  BACKEND\tNODE\tREADY\tWHERE")
			for _, b := range p.Backends {
				ready := "ready"
				switch {
				case b.Terminating:
					ready = "terminating"
				case !b.Ready:
					ready = "not ready"
				}
				where := "remote"
				if b.Local {
					where = "local"
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", b.Addr, b.Node, ready, where)
			}
			if len(p.Backends) == 0 {
				fmt.Fprintln(tw, "  (none)\t\t\t")
			}
			tw.Flush()
		}
	}
	fmt.Fprintln(w)
	var ifs []string
	for i, m := range st.Datapath.Attached {
		ifs = append(ifs, i+" ("+m+")")
	}
	sort.Strings(ifs)
	fmt.Fprintf(w, "datapath: attached %s\n", strings.Join(ifs, ", "))
	if len(st.Members) > 0 {
		fmt.Fprintf(w, "membership: %s\n", members(st))
	}
	problems(w, st)
	return nil
}

func backends(bs []Backend) string {
	ready, local := 0, 0
	for _, b := range bs {
		if b.Ready {
			ready++
		}
		if b.Local {
			local++
		}
	}
	return fmt.Sprintf("%d ready/%d (%d local)", ready, len(bs), local)
}

// rate formats one rate of r, "-" when there are none yet.
func rate(r *Rates, f func(Rates) float64) string {
	if r == nil {
		return "-"
	}
	return num(f(*r))
}

// num prints a rate with one decimal below 100, whole above.
func num(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func interval(st *Status) string {
	return (time.Duration(st.Rates.IntervalSeconds * float64(time.Second))).Round(100 * time.Millisecond).String()
}

// rateLine says what the PKT/S and FLOWS/S columns cover.
func rateLine(st *Status) string {
	if st.Rates.IntervalSeconds <= 0 {
		return fmt.Sprintf("rates: none yet (the daemon keeps the counters of its previous snapshot; run lbd status again in %s)", MinRateInterval)
	}
	end := ""
	if st.Rates.End != nil {
		end = ", ending " + st.Rates.End.UTC().Format(time.TimeOnly) + " UTC"
	}
	return fmt.Sprintf("rates over the daemon's last interval between snapshots: %s%s", interval(st), end)
}
