// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SoakOptions configure RunSoak. Zero values take the defaults.
type SoakOptions struct {
	// Duration of the traffic; default 10 minutes, at most 2 hours.
	Duration time.Duration
	// ChurnEvery is the interval between EndpointSlice rewrites; default 2s.
	ChurnEvery time.Duration
	// FailoverEvery is the interval between failovers (SIGKILL of the
	// soak VIP's owner, then restart); default 60s.
	FailoverEvery time.Duration
	// SampleEvery is the interval of the memory and table samples;
	// default 30s.
	SampleEvery time.Duration
	// Logf receives progress; nil discards.
	Logf func(format string, args ...any)
}

func (o *SoakOptions) setDefaults() {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	o.Duration = min(o.Duration, 2*time.Hour)
	if o.ChurnEvery <= 0 {
		o.ChurnEvery = 2 * time.Second
	}
	if o.FailoverEvery <= 0 {
		o.FailoverEvery = time.Minute
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 30 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// SoakService is the service the soak drives.
const SoakService = "soak"

// Traffic kinds of the soak.
const (
	KindTCPNew  = "tcp-new"  // a new connection per request
	KindTCPKeep = "tcp-keep" // requests on long-lived connections
	KindUDP     = "udp"      // a datagram per new flow
)

// window is a failover, from the kill to the moment traffic has settled
// on the restored owner.
type window struct{ start, end time.Time }

// SoakSample is one sample of a node's lbd.
type SoakSample struct {
	At        time.Duration // since the start
	Node      string
	RSS       uint64
	Conntrack int
}

// KindTally counts the requests of one kind.
type KindTally struct {
	Attempted, Failed, FailedOutside int
	FirstOutside                     []string
}

// SoakReport is what RunSoak saw.
type SoakReport struct {
	Duration     time.Duration
	Clients      int
	Kinds        map[string]*KindTally
	Failovers    int
	Windows      []time.Duration // length of each failover window
	Churns       int
	Samples      []SoakSample
	ConntrackCap int
	// Drops are each node's non-zero drop counters at the end, by reason.
	Drops map[string]map[string]uint64
}

// FailedOutside is the total of failures outside failover windows.
func (r *SoakReport) FailedOutside() int {
	n := 0
	for _, k := range r.Kinds {
		n += k.FailedOutside
	}
	return n
}

type soakOutcome struct {
	kind       string
	start, end time.Time
	err        error
	local      netip.AddrPort // the client side, where known (UDP)
}

// RunSoak drives mixed traffic from every client of l (new TCP connections,
// keep-alive connections, UDP flows) to a service on every pod, while its
// EndpointSlice churns and the owner of its VIP is killed and restarted
// periodically, and reports failures inside and outside the failover
// windows, lbd's memory and the connection-table fill over time. The lab
// must run lbd; conntrackCap is lbd's --conntrack-size, for the fill.
func RunSoak(ctx context.Context, l *Lab, o SoakOptions, conntrackCap int) (*SoakReport, error) {
	o.setDefaults()
	svc := ExtraService{Name: SoakService}
	if err := l.ApplyServices(svc); err != nil {
		return nil, err
	}
	v, _, err := l.WaitService(ctx, svc.Key(), l.Pods(), l.opts.StartTimeout)
	if err != nil {
		return nil, err
	}
	httpT := netip.AddrPortFrom(v.VIP, ServiceHTTPPort)
	udpT := netip.AddrPortFrom(v.VIP, ServiceUDPPort)
	rep := &SoakReport{Clients: len(l.Clients), Kinds: map[string]*KindTally{}, ConntrackCap: conntrackCap}
	for _, k := range []string{KindTCPNew, KindTCPKeep, KindUDP} {
		rep.Kinds[k] = &KindTally{}
	}

	var (
		mu       sync.Mutex
		outcomes []soakOutcome
		windows  []window
	)
	record := func(kind string, start time.Time, err error, local netip.AddrPort) {
		mu.Lock()
		outcomes = append(outcomes, soakOutcome{kind, start, time.Now(), err, local})
		mu.Unlock()
	}
	start := time.Now()
	tctx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	pace := func(d time.Duration, fn func()) {
		tick := time.NewTicker(d)
		defer tick.Stop()
		for tctx.Err() == nil {
			fn()
			select {
			case <-tctx.Done():
			case <-tick.C:
			}
		}
	}
	for _, c := range l.Clients {
		wg.Go(func() {
			pace(50*time.Millisecond, func() {
				t0 := time.Now()
				_, err := c.Who(tctx, httpT, 2*time.Second)
				if tctx.Err() == nil {
					record(KindTCPNew, t0, err, netip.AddrPort{})
				}
			})
		})
		wg.Go(func() {
			pace(50*time.Millisecond, func() {
				t0 := time.Now()
				local, err := c.UDPFlow(tctx, udpT, 2*time.Second)
				if tctx.Err() == nil {
					record(KindUDP, t0, err, local)
				}
			})
		})
		for range 2 {
			wg.Go(func() {
				var k *KeepAlive
				defer func() {
					if k != nil {
						k.Close()
					}
				}()
				pace(100*time.Millisecond, func() {
					t0 := time.Now()
					var err error
					if k == nil {
						k, err = c.OpenKeepAlive(tctx, httpT)
					}
					if err == nil {
						_, err = k.Get(2 * time.Second)
						if err != nil {
							k.Close()
							k = nil // reopened on the next tick
						}
					}
					if tctx.Err() == nil {
						record(KindTCPKeep, t0, err, netip.AddrPort{})
					}
				})
			})
		}
	}

	// Endpoint churn: every pod keeps serving, so a flow placed on any of
	// them must be answered; what changes is which ones get new flows.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
		pods := l.Pods()
		pace(o.ChurnEvery, func() {
			var ready, term []*Pod
			for _, p := range pods {
				switch rng.IntN(4) {
				case 0:
					term = append(term, p)
				case 1:
					// left out: gone from the slice
				default:
					ready = append(ready, p)
				}
			}
			if len(ready) == 0 {
				ready = []*Pod{pods[rng.IntN(len(pods))]}
				term = slices.DeleteFunc(term, func(p *Pod) bool { return p == ready[0] })
			}
			s := svc
			s.Endpoints, s.Terminating = ready, term
			// No SIGHUP: lbd may be restarting (see ApplyServices).
			if err := l.WriteServices(s); err != nil {
				o.Logf("soak: churn: %v", err)
				return
			}
			mu.Lock()
			rep.Churns++
			mu.Unlock()
		})
	})

	// Samples and failovers share one goroutine: a sample never reads a
	// half-restarted lbd.
	var runErr error
	sample := func() {
		at := time.Since(start).Round(time.Second)
		for _, n := range l.Nodes {
			if n.LBD == nil {
				continue
			}
			s := SoakSample{At: at, Node: n.Name}
			if rss, err := n.LBD.RSS(); err == nil {
				s.RSS = rss
			}
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if st, err := l.DatapathStatus(sctx, n); err == nil {
				s.Conntrack = st.Conntrack
			}
			cancel()
			rep.Samples = append(rep.Samples, s)
		}
	}
	sample()
	nextSample := start.Add(o.SampleEvery)
	nextFailover := start.Add(o.FailoverEvery)
	for tctx.Err() == nil {
		now := time.Now()
		switch {
		case !now.Before(nextSample):
			sample()
			nextSample = nextSample.Add(o.SampleEvery)
		case !now.Before(nextFailover) && time.Until(start.Add(o.Duration)) > 20*time.Second:
			w, err := soakFailover(tctx, l, v.VIP)
			if err != nil && tctx.Err() == nil {
				runErr = fmt.Errorf("failover %d: %w", rep.Failovers+1, err)
				stop()
				break
			}
			mu.Lock()
			windows = append(windows, w)
			mu.Unlock()
			rep.Failovers++
			rep.Windows = append(rep.Windows, w.end.Sub(w.start))
			o.Logf("soak: failover %d done in %s", rep.Failovers, w.end.Sub(w.start).Round(time.Millisecond))
			nextFailover = nextFailover.Add(o.FailoverEvery)
		default:
			select {
			case <-tctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	wg.Wait()
	sample()
	rep.Duration = time.Since(start)
	rep.Drops = map[string]map[string]uint64{}
	for _, n := range l.Nodes {
		st, err := l.DatapathStatus(ctx, n)
		if err != nil {
			continue
		}
		for r, v := range st.Reasons {
			if v > 0 && strings.HasPrefix(r, "drop_") {
				if rep.Drops[n.Name] == nil {
					rep.Drops[n.Name] = map[string]uint64{}
				}
				rep.Drops[n.Name][r] = v
			}
		}
	}

	inWindow := func(oc soakOutcome) bool {
		for _, w := range windows {
			if !oc.end.Before(w.start) && !oc.start.After(w.end) {
				return true
			}
		}
		return false
	}
	sort.Slice(outcomes, func(i, j int) bool { return outcomes[i].start.Before(outcomes[j].start) })
	// A request still running when the time was up fails with the
	// deadline, however quickly tctx reports it: not a failure.
	cut := start.Add(o.Duration).Add(-100 * time.Millisecond)
	for _, oc := range outcomes {
		if oc.err != nil && oc.end.After(cut) {
			continue
		}
		k := rep.Kinds[oc.kind]
		k.Attempted++
		if oc.err == nil {
			continue
		}
		k.Failed++
		if !inWindow(oc) {
			k.FailedOutside++
			if len(k.FirstOutside) < 3 {
				msg := fmt.Sprintf("+%s: %v", oc.start.Sub(start).Round(time.Millisecond), oc.err)
				// What the tables hold for the flow says where it was lost.
				if oc.local.IsValid() {
					for _, n := range l.Nodes {
						msg += "\n        " + n.ExplainFlow(oc.local, udpT, 17)
					}
				}
				k.FirstOutside = append(k.FirstOutside, msg)
			}
		}
	}
	if err := l.CheckLBD(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return rep, runErr
}

// soakFailover kills the owner of vip, restarts it, and returns the window
// from the kill until the restored owner answers ARP alone, plus a margin
// for the requests that were in flight.
func soakFailover(ctx context.Context, l *Lab, vip netip.Addr) (window, error) {
	w := window{start: time.Now()}
	owner, err := l.WaitOwner(ctx, vip, nil, l.opts.StartTimeout)
	if err != nil {
		return w, err
	}
	w.start = time.Now()
	if err := owner.LBD.Signal(syscall.SIGKILL); err != nil {
		return w, err
	}
	<-owner.LBD.done
	// Let the peers take the VIP over before the owner comes back: the
	// soak exercises both moves.
	if _, err := l.WaitOwner(ctx, vip, owner, 10*time.Second); err != nil {
		return w, err
	}
	if err := l.StartNodeLBD(ctx, owner, true); err != nil {
		return w, err
	}
	if _, err := l.WaitOwner(ctx, vip, nil, 10*time.Second); err != nil {
		return w, err
	}
	// Requests in flight at the hand-back end within their 2 s timeout.
	w.end = time.Now().Add(2 * time.Second)
	return w, nil
}

// Print writes the report as a table and the summary lines "soak: ...".
func (r *SoakReport) Print(w io.Writer) {
	fmt.Fprintf(w, "soak: %s, %d clients, %d endpoint rewrites, %d failovers (kill -9 of the owner, restart)\n",
		r.Duration.Round(time.Second), r.Clients, r.Churns, r.Failovers)
	if len(r.Windows) > 0 {
		ws := slices.Clone(r.Windows)
		slices.Sort(ws)
		fmt.Fprintf(w, "failover windows: median %s, worst %s\n", ws[len(ws)/2].Round(time.Millisecond), ws[len(ws)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\n%-10s %10s %8s %16s\n", "traffic", "attempted", "failed", "failed outside")
	kinds := []string{KindTCPNew, KindTCPKeep, KindUDP}
	for _, k := range kinds {
		t := r.Kinds[k]
		fmt.Fprintf(w, "%-10s %10d %8d %16d\n", k, t.Attempted, t.Failed, t.FailedOutside)
		for _, e := range t.FirstOutside {
			fmt.Fprintf(w, "    outside a window: %s\n", e)
		}
	}
	fmt.Fprintf(w, "\n%-8s %-6s %9s %10s %6s\n", "time", "node", "RSS MiB", "conntrack", "fill")
	for _, s := range r.Samples {
		fill := ""
		if r.ConntrackCap > 0 {
			fill = fmt.Sprintf("%.2f%%", 100*float64(s.Conntrack)/float64(r.ConntrackCap))
		}
		fmt.Fprintf(w, "%-8s %-6s %9.1f %10d %6s\n", s.At, s.Node, mib(s.RSS), s.Conntrack, fill)
	}
	attempted, failed := 0, 0
	for _, k := range kinds {
		attempted += r.Kinds[k].Attempted
		failed += r.Kinds[k].Failed
	}
	var maxRSS uint64
	maxCT := 0
	for _, s := range r.Samples {
		maxRSS = max(maxRSS, s.RSS)
		maxCT = max(maxCT, s.Conntrack)
	}
	fmt.Fprintln(w)
	for _, n := range slices.Sorted(maps.Keys(r.Drops)) {
		for _, reason := range slices.Sorted(maps.Keys(r.Drops[n])) {
			fmt.Fprintf(w, "soak: datapath drops %s %s %d\n", n, reason, r.Drops[n][reason])
		}
	}
	fmt.Fprintf(w, "soak: connections attempted %d failed %d failed outside failover windows %d\n", attempted, failed, r.FailedOutside())
	fmt.Fprintf(w, "soak: lbd RSS max %.1f MiB, conntrack max %d entries\n", mib(maxRSS), maxCT)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
