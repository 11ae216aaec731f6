// SPDX-License-Identifier: Apache-2.0

// Command lab runs the netns lab by hand.
//
//	lab demo  --lbd PATH --podserver PATH [--requests N]
//	lab up    --lbd PATH --podserver PATH [--no-lbd]
//	lab clean [--prefix lbd-XXXX]
//	lab failover-bench --lbd PATH --podserver PATH [--runs N] [--events LIST] [--max-time D]
//	lab fast-mode-bench --lbd PATH --podserver PATH [--duration D] [--workers N] [--runs N]
//	lab soak --lbd PATH --podserver PATH [--duration D] [--failover-every D] [--churn-every D]
//
// demo builds the lab, waits for the VIPs, sends N HTTP requests from the
// client to each VIP:80, prints the owner's "lbd status", tears down, and
// prints one summary line per VIP; it exits 1 if any request failed. up
// builds the lab and keeps it until Ctrl-C. clean removes what crashed runs
// left behind. failover-bench makes the owner of the internal VIP go away
// (see lab.FailoverEvents, plus sigkill-router: a SIGKILL seen by a client
// behind a router) N times per event, restoring it after each, and prints
// "bench: failover <event> median <s> worst <s>" per event.
// fast-mode-bench measures delivery to a pod on the owner's node, default
// (through the node's stack and its policy) against --fast-local-redirect.
// soak drives mixed traffic with endpoint churn and periodic failovers and
// prints its report; it exits 1 if a request failed outside a failover
// window. Needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	lab "github.com/lbd-project/lbd/test/vm"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "demo":
		err = demo(ctx, os.Args[2:])
	case "up":
		err = up(ctx, os.Args[2:])
	case "clean":
		err = clean(ctx, os.Args[2:])
	case "failover-bench":
		err = failoverBench(ctx, os.Args[2:])
	case "fast-mode-bench":
		err = fastModeBench(ctx, os.Args[2:])
	case "soak":
		err = soak(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab %s: %v\n", os.Args[1], err)
		stop()
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  lab demo  --lbd PATH --podserver PATH [--requests N]
  lab up    --lbd PATH --podserver PATH [--no-lbd]
  lab clean [--prefix lbd-XXXX]
  lab failover-bench --lbd PATH --podserver PATH [--runs N] [--events sigkill,graceful,link-loss,sigkill-router] [--max-time 4m]`)
	os.Exit(2)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

// errFailed means the demo ran but not every request succeeded; the
// summary already says which.
var errFailed = errors.New("some requests failed")

func demo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	lbd := fs.String("lbd", "", "path of the lbd binary (required)")
	podserver := fs.String("podserver", "", "path of the podserver binary (required)")
	requests := fs.Int("requests", 100, "HTTP requests per VIP (at most 10000)")
	_ = fs.Parse(args)
	if *lbd == "" || *podserver == "" {
		return errors.New("--lbd and --podserver are required")
	}

	l, err := lab.New(ctx, lab.Options{LBD: *lbd, PodServer: *podserver, Logf: logf})
	if err != nil {
		return err
	}
	defer l.Close() // also on every error path below; Close is idempotent

	services := []string{lab.ServiceInternal, lab.ServiceExternal}
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], services...)
	if err != nil {
		// The daemon runs but its status is not what this runner
		// expects: carry on with the addresses a fresh lab allocates,
		// so the traffic result still tells whether lbd works.
		logf("reading VIPs from node1's status failed, using the expected ones: %v", err)
		vips = nil
		for _, s := range services {
			vip, pool := lab.ExpectedVIP(s)
			vips = append(vips, lab.VIPStatus{VIP: vip, Service: s, Pool: pool})
		}
	}

	type result struct {
		vip   lab.VIPStatus
		tally lab.Tally
	}
	var results []result
	for _, v := range vips {
		target := netip.AddrPortFrom(v.VIP, lab.ServiceHTTPPort)
		logf("sending %d HTTP requests from %s to %s (%s, owner %q)", *requests, l.Client().Name, target, v.Service, v.Owner)
		t := l.Client().HTTPLoad(ctx, target, *requests)
		logf("%s: %s", target, t)
		results = append(results, result{v, t})
	}

	owners := map[string]bool{}
	for _, v := range vips {
		if n := l.Node(v.Owner); n != nil && !owners[n.Name] {
			owners[n.Name] = true
			out, err := l.LBDStatus(ctx, n, false)
			if err != nil {
				logf("lbd status on %s: %v", n.Name, err)
				continue
			}
			fmt.Printf("--- lbd status on %s (owner) ---\n%s\n", n.Name, out)
		}
	}
	failed := ctx.Err() != nil
	for _, r := range results {
		if r.tally.Failed() > 0 || r.tally.Sent == 0 {
			failed = true
		}
	}
	if failed {
		logf("process logs:%s", l.LogTails(20))
	}
	if err := l.Close(); err != nil {
		logf("teardown: %v", err)
		failed = true
	}
	for _, r := range results {
		fmt.Printf("demo: VIP %s:%d %s %d/%d ok from %d backends\n",
			r.vip.VIP, lab.ServiceHTTPPort, r.vip.Pool, r.tally.OK, r.tally.Sent, len(r.tally.ByPod))
	}
	if failed {
		return errFailed
	}
	return nil
}

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	lbd := fs.String("lbd", "", "path of the lbd binary")
	podserver := fs.String("podserver", "", "path of the podserver binary")
	noLBD := fs.Bool("no-lbd", false, "run no lbd (plumbing and pods only); client gets routes to the pods")
	_ = fs.Parse(args)
	opts := lab.Options{PodServer: *podserver, Logf: logf}
	if *noLBD {
		opts.ClientPodRoutes = true
	} else {
		if *lbd == "" {
			return errors.New("--lbd is required unless --no-lbd")
		}
		opts.LBD = *lbd
	}
	l, err := lab.New(ctx, opts)
	if err != nil {
		return err
	}
	defer l.Close()

	c := l.Client()
	fmt.Printf("lab %s is up (files in %s). Enter a namespace with ip netns exec NS bash:\n", l.Prefix, l.Dir)
	fmt.Printf("  %-16s %s  %s\n", "switch (br0)", l.Switch, "")
	for _, n := range l.Nodes {
		fmt.Printf("  %-16s %s  %s %s", n.Name, n.NetNS, n.IP, n.MAC)
		if n.LBD != nil {
			fmt.Printf("  status: %s status --socket %s", *lbd, n.Socket)
		}
		fmt.Println()
		for _, p := range n.Pods {
			fmt.Printf("    %-14s %s  %s\n", p.Name, p.NetNS, p.IP)
		}
	}
	for _, h := range l.Clients {
		fmt.Printf("  %-16s %s  %s %s\n", h.Name, h.NetNS, h.IP, h.MAC)
	}
	if *noLBD {
		p := l.Pods()[0]
		fmt.Printf("try: ip netns exec %s curl -s http://%s:%d/\n", c.NetNS, p.IP, lab.PodHTTPPort)
	} else {
		fmt.Printf("try: ip netns exec %s curl -s http://%s:%d/\n", c.NetNS, lab.InternalRange[0], lab.ServiceHTTPPort)
	}
	fmt.Println("Ctrl-C tears the lab down.")
	<-ctx.Done()
	return l.Close()
}

func clean(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("clean", flag.ExitOnError)
	prefix := fs.String("prefix", "", "remove only this run's leftovers (lbd-XXXX); default all labs'")
	_ = fs.Parse(args)
	removed, err := lab.Clean(ctx, *prefix)
	for _, r := range removed {
		fmt.Println("removed", r)
	}
	if len(removed) == 0 && err == nil {
		fmt.Println("nothing to clean")
	}
	return err
}

// failoverBench measures takeover times. Each run is one failover and one
// restore; runs stop early once max-time has passed, so the whole bench
// stays bounded whatever the machine's speed.
func failoverBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("failover-bench", flag.ExitOnError)
	lbd := fs.String("lbd", "", "path of the lbd binary (required)")
	podserver := fs.String("podserver", "", "path of the podserver binary (required)")
	runs := fs.Int("runs", 10, "failovers per event")
	events := fs.String("events", "sigkill,link-loss,graceful,sigkill-router", "comma-separated events: sigkill, graceful, link-loss, sigkill-router (SIGKILL seen by a client behind a router)")
	maxTime := fs.Duration("max-time", 4*time.Minute, "stop starting runs after this long")
	limit := fs.Duration("limit", 5*time.Second, "a takeover slower than this fails the run")
	_ = fs.Parse(args)
	if *lbd == "" || *podserver == "" {
		return errors.New("--lbd and --podserver are required")
	}
	var evs []lab.FailoverEvent
	for _, e := range strings.Split(*events, ",") {
		ev := lab.FailoverEvent(strings.TrimSpace(e))
		if !slices.Contains(lab.FailoverEvents, ev) && ev != eventSigkillRouter {
			return fmt.Errorf("unknown event %q", e)
		}
		evs = append(evs, ev)
	}
	start := time.Now()
	l, err := lab.New(ctx, lab.Options{LBD: *lbd, PodServer: *podserver, Logf: func(string, ...any) {}})
	if err != nil {
		return err
	}
	defer l.Close()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], lab.ServiceInternal, lab.ServiceExternal)
	if err != nil {
		return err
	}
	all := []netip.Addr{vips[0].VIP, vips[1].VIP}
	var router *lab.Router
	if slices.Contains(evs, eventSigkillRouter) {
		if router, err = l.AddRouter(ctx); err != nil {
			return err
		}
	}
	times := map[lab.FailoverEvent][]time.Duration{}
	failed := map[lab.FailoverEvent]int{}
	var runErr error
	// Interleave the events so that a slow phase of the machine spreads
	// over all of them.
run:
	for i := 0; i < *runs; i++ {
		for _, ev := range evs {
			if time.Since(start) > *maxTime || ctx.Err() != nil {
				logf("stopping after %s", time.Since(start).Round(time.Second))
				break run
			}
			var (
				res lab.FailoverResult
				old *lab.Node
				err error
			)
			if ev == eventSigkillRouter {
				res, old, err = l.FailoverVia(ctx, vips[0].VIP, lab.EventSigkill, *limit, router.Client, &router.Host)
				res.Event = ev
			} else {
				res, old, err = l.Failover(ctx, vips[0].VIP, ev, *limit)
			}
			if err != nil {
				runErr = fmt.Errorf("run %d %s: %w", i+1, ev, err)
				break run
			}
			logf("run %d %s", i+1, res)
			times[ev] = append(times[ev], res.Takeover)
			failed[ev] += res.Failed
			restoreEv := ev
			if ev == eventSigkillRouter {
				restoreEv = lab.EventSigkill
			}
			if _, err := l.Restore(ctx, old, restoreEv, all); err != nil {
				runErr = fmt.Errorf("run %d restore after %s: %w", i+1, ev, err)
				break run
			}
		}
	}
	if runErr != nil {
		logf("process logs:%s", l.LogTails(20))
	}
	if err := l.Close(); err != nil {
		logf("teardown: %v", err)
	}
	for _, ev := range evs {
		ts := times[ev]
		if len(ts) == 0 {
			continue
		}
		slices.Sort(ts)
		fmt.Printf("bench: failover %s median %.2f s worst %.2f s (%d runs, %d requests failed)\n",
			ev, median(ts).Seconds(), ts[len(ts)-1].Seconds(), len(ts), failed[ev])
	}
	return runErr
}

// eventSigkillRouter is a SIGKILL of the owner measured from a client
// behind a router (lab.AddRouter): the router's neighbour entry for the
// VIP must follow the new owner's gratuitous ARP.
const eventSigkillRouter lab.FailoverEvent = "sigkill-router"

// median of sorted ts.
func median(ts []time.Duration) time.Duration {
	n := len(ts)
	if n%2 == 1 {
		return ts[n/2]
	}
	return (ts[n/2-1] + ts[n/2]) / 2
}
