// SPDX-License-Identifier: Apache-2.0

// Command lbd-bench compares lbd with kube-proxy's iptables and nftables
// modes on one netns lab and prints a report (package bench). Run as root:
//
//	go run ./test/bench/cmd/lbd-bench
//
// It stops by itself within -budget (10 minutes by default) and removes
// every namespace, pin directory and file it made.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lbd-project/lbd/test/bench"
	lab "github.com/lbd-project/lbd/test/vm"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		if err := bench.LoadgenMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "lbd-bench loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "rules" {
		if err := rulesCmd(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "lbd-bench rules:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "lbd-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		budget   = flag.Duration("budget", 10*time.Minute, "the whole run's time bound, build included")
		services = flag.Int("services", 10000, "service count of the large configuration")
		reps     = flag.Int("reps", 3, "repetitions of every datapath measurement")
		duration = flag.Duration("duration", 3*time.Second, "duration of one load run")
		conc     = flag.Int("c", 16, "load generator concurrency")
		modes    = flag.String("modes", "lbd,iptables,nftables", "datapath modes")
		tests    = flag.String("tests", "cps,rps,udp", "datapath tests")
		lbdBin   = flag.String("lbd", "", "lbd binary (default: go build ./cmd/lbd)")
		podBin   = flag.String("podserver", "", "podserver binary (default: go build ./test/vm/podserver)")
		useWrk   = flag.Bool("wrk", true, "use wrk (if installed) for the HTTP tests; the Go load generator otherwise")
		xdp      = flag.Bool("xdp", true, "also run pkg/datapath's BenchmarkPrivilegedXDP and summarise it")
		skipDP   = flag.Bool("skip-datapath", false, "control plane only")
		verbose  = flag.Bool("v", true, "progress on stderr")
	)
	flag.Parse()
	started := time.Now()
	deadline := started.Add(*budget)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// Ctrl-C cancels: commands are killed, phases return, and the deferred
	// teardown removes the lab and the throwaway namespaces. A second one
	// kills the process.
	ctx, stopSig := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stopSig()
	}()
	logf := func(format string, args ...any) {
		if *verbose {
			fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, BPF, iptables in namespaces)")
	}
	for _, tool := range []string{"ip", "iptables-restore", "nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install -y iproute2 iptables nftables procps): %w", tool, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	bin, err := os.MkdirTemp("", "lbd-bench-bin-")
	if err != nil {
		return fmt.Errorf("create bin dir: %w", err)
	}
	defer os.RemoveAll(bin)
	if *lbdBin == "" {
		*lbdBin = filepath.Join(bin, "lbd")
		if err := goBuild(ctx, *lbdBin, "./cmd/lbd"); err != nil {
			return err
		}
	}
	if *podBin == "" {
		*podBin = filepath.Join(bin, "podserver")
		if err := goBuild(ctx, *podBin, "./test/vm/podserver"); err != nil {
			return err
		}
	}
	logf("binaries ready")

	// The XDP microbenchmark (a go test build and run) would compete for
	// the CPUs with the lab measurements, so it runs last.
	l, err := lab.New(ctx, lab.Options{Nodes: bench.LabNodes, PodServer: *podBin, Logf: logf})
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "lbd-bench: teardown:", err)
		}
	}()

	cp, err := bench.ControlPlane(ctx, bench.ControlOptions{
		Services: *services,
		Prefix:   l.Prefix,
		Dir:      l.Dir,
		NodeIP:   l.Nodes[0].IP,
		Logf:     logf,
	})
	if err != nil {
		return err
	}

	wrk := ""
	if *useWrk {
		if p, err := exec.LookPath("wrk"); err == nil {
			wrk = p
		} else {
			logf("wrk not found (apt-get install -y wrk): the Go load generator runs the HTTP tests")
		}
	}
	modeList := strings.Split(*modes, ",")
	testList := strings.Split(*tests, ",")
	counts := []int{1, *services}
	var dp *bench.DatapathResult
	if !*skipDP {
		// Leave room for the XDP benchmark at the end.
		dpDeadline := deadline.Add(-10 * time.Second)
		if *xdp {
			dpDeadline = deadline.Add(-100 * time.Second)
		}
		dp, err = bench.Datapath(ctx, bench.DatapathOptions{
			Lab: l, LBD: *lbdBin, Self: self,
			Counts: counts, Modes: modeList, Tests: testList,
			Reps: *reps, Duration: *duration, Conc: *conc, Wrk: wrk,
			Deadline: dpDeadline, Logf: logf,
		})
		if err != nil {
			logf("datapath: %v", err)
		}
	}
	var xf bench.XDPFigures
	if *xdp {
		xf, err = xdpBench(ctx, logf)
		if err != nil {
			logf("xdp benchmark: %v", err)
		}
	}

	if ctx.Err() != nil && time.Now().Before(deadline) {
		return errors.New("interrupted")
	}
	report(os.Stdout, cp, dp, xf, modeList, counts, testList, *reps, *duration, *conc)
	bench.WriteXDPTable(os.Stdout, xf)
	if dp != nil && bench.LBDMemoryLimit != "" {
		fmt.Printf("note: lbd ran with GOMEMLIMIT=%s (its rss figures depend on it)\n", bench.LBDMemoryLimit)
	} else if dp != nil {
		fmt.Println("note: lbd ran with its default --memory-limit auto (its rss figures depend on it)")
	}
	fmt.Printf("bench: total time %.0f s\n", time.Since(started).Seconds())
	return nil
}

func goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s (run from the repository root): %w", pkg, err)
	}
	return nil
}

// xdpBench runs pkg/datapath's BenchmarkPrivilegedXDP with a fixed
// iteration count, bounded by the remaining budget.
func xdpBench(ctx context.Context, logf func(string, ...any)) (bench.XDPFigures, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < 60*time.Second {
		return nil, errors.New("skipped: not enough time left")
	}
	logf("running BenchmarkPrivilegedXDP")
	// b.N counts packets, run in kernel-timed batches of 250 (10 000 for
	// non-VIP): 50 000 is 200 batches per case.
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^$", "-bench", "BenchmarkPrivilegedXDP",
		"-benchtime", "50000x", "./pkg/datapath/")
	cmd.Env = append(os.Environ(), "LBD_PRIVILEGED_TESTS=1")
	out, err := cmd.CombinedOutput()
	figs := bench.ParseXDPBench(strings.NewReader(string(out)))
	if err != nil && len(figs) == 0 {
		return nil, fmt.Errorf("%w: %s", err, lastLines(string(out), 5))
	}
	return figs, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
