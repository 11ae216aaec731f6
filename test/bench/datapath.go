// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lbd-project/lbd/pkg/model"
	lab "github.com/lbd-project/lbd/test/vm"
)

// Modes under test.
const (
	ModeLBD      = "lbd"
	ModeIptables = "iptables"
	ModeNftables = "nftables"
)

// DatapathOptions configure Datapath.
type DatapathOptions struct {
	Lab *lab.Lab
	// LBD is the lbd binary; Self the binary with the "loadgen"
	// subcommand (lbd-bench).
	LBD, Self string
	// Counts are the service counts to test (the VIP under test is one
	// of them, last in iptables order).
	Counts []int
	Modes  []string
	Tests  []string
	Reps   int
	// Wrk is the wrk binary for the HTTP tests; empty uses the Go load
	// generator (lbd-bench loadgen) for every test.
	Wrk      string
	Duration time.Duration
	Conc     int
	// Deadline is when the whole bench must be done; repetitions that
	// would not fit are skipped and say so.
	Deadline time.Time
	Logf     func(string, ...any)
}

// Sample is one measured load run.
type Sample struct {
	Mode     string
	Services int
	Test     string
	Rep      int
	Rate     float64
	OK       int
	Errors   int
	FirstErr string
	// CPUPerOp is machine-wide busy CPU (every core, every process and
	// softirq: client, LB node, pods, and whatever else the shared
	// machine ran) per successful operation, in µs.
	CPUPerOp float64
	// NetCPUPerOp is CPUPerOp minus the CPU time of the load generator and
	// the pod servers processes: mostly the kernel's packet path (veth,
	// bridge, node forwarding, the LB) plus background noise.
	NetCPUPerOp float64
	// Drops are lbd's datapath drop counters (lbd status reasons named
	// "drop_*") that moved during the run; nil in the other modes.
	Drops map[string]uint64
	// LBDProcPerOp is the CPU time of the lbd process (user space: agent,
	// status, announcements) per operation; 0 in the other modes.
	LBDProcPerOp float64
}

// DatapathResult holds every sample and the lbd process figures.
type DatapathResult struct {
	Samples []Sample
	// LBDReady is, per service count, how long "lbd run" took from start
	// until its status listed every frontend (manifest parse, ipam,
	// datapath load and sync).
	LBDReady map[int][]time.Duration
	// LBDRSS and LBDHWM are VmRSS and VmHWM (KiB) of lbd run with the
	// count's services programmed.
	LBDRSS, LBDHWM map[int]int
	// Setup is, per mode and count, the time to program its node (lbd:
	// start to ready; iptables: iptables-restore; nftables: every nft -f).
	Setup map[string]map[int]time.Duration
	Notes []string
}

// LBDMemoryLimit is the GOMEMLIMIT lbd runs with in the bench: none, so
// its rss figures are those of lbd's own default (--memory-limit auto).
const LBDMemoryLimit = ""

// TestVIP is the VIP the load goes to.
var TestVIP = lab.InternalRange[0]

// testServices returns the VIP under test as two service ports (TCP 80 →
// 8080, UDP 53 → 9000 on every pod of the backend nodes).
func testServices(l *lab.Lab) []Service {
	mk := func(port string, p uint16, proto model.Protocol, target uint16) Service {
		s := Service{Namespace: "default", Name: "web", PortName: port, VIP: TestVIP, Port: p, Proto: proto}
		for _, pod := range l.Pods() {
			if pod.Node.Index <= len(l.Nodes)-BackendNodes {
				continue
			}
			s.Backends = append(s.Backends, netip.AddrPortFrom(pod.IP, target))
			s.Nodes = append(s.Nodes, pod.Node.Name)
		}
		return s
	}
	return []Service{
		mk("http", lab.ServiceHTTPPort, model.TCP, lab.PodHTTPPort),
		mk("dns", lab.ServiceUDPPort, model.UDP, lab.PodUDPPort),
	}
}

// servicesFor returns count services: count-1 fillers then the VIP under
// test, so the VIP's iptables rules come last. Fillers share
// SharedBackends distinct backend addresses: "lbd run" keeps its default
// backend capacity (65 536), less than 10 000 x 10 distinct ones.
func (r *runner) servicesFor(count int) ([]Service, error) {
	l := r.l
	var names []string
	for _, n := range l.Nodes {
		names = append(names, n.Name)
	}
	f, err := fillers(count-1, names, SharedBackends)
	if err != nil {
		return nil, err
	}
	return append(f, testServices(l)...), nil
}

type runner struct {
	o     DatapathOptions
	l     *lab.Lab
	res   *DatapathResult
	files map[string][]string // mode/count → rules or manifest files
	// lbdPid is the running lbd, stopLBD stops it; 0 and nil when none.
	lbdPid  int
	lbdSock string
	stopLBD func() error
}

// lbNode returns the load balancer node of mode: node1 runs lbd, node2
// iptables, node3 nftables. The nodes are identical namespaces; giving
// each mode its own lets a 10 000-service ruleset (tens of seconds to load)
// be loaded once per count, and keeps netfilter's NAT hooks and conntrack
// out of lbd's node, which they would slow down.
func (r *runner) lbNode(mode string) *lab.Node {
	switch mode {
	case ModeIptables:
		return r.l.Nodes[1]
	case ModeNftables:
		return r.l.Nodes[2]
	}
	return r.l.Nodes[0]
}

// BackendNodes is the number of lab nodes, after the three load balancer
// nodes, whose pods are the VIP's backends. Every backend is remote from
// every load balancer, so all modes forward and SNAT alike.
const BackendNodes = 2

// LabNodes is the node count Datapath needs.
const LabNodes = 3 + BackendNodes

// Datapath runs the load tests. For each service count it sets up every
// mode on its own node, then runs Reps repetitions, each running every mode
// in turn (rotating the order) by pointing the client's neighbour entry for
// the VIP at that mode's node.
func Datapath(ctx context.Context, o DatapathOptions) (*DatapathResult, error) {
	r := &runner{o: o, l: o.Lab, files: map[string][]string{},
		res: &DatapathResult{LBDReady: map[int][]time.Duration{}, LBDRSS: map[int]int{}, LBDHWM: map[int]int{},
			Setup: map[string]map[int]time.Duration{}}}
	if len(o.Lab.Nodes) != LabNodes {
		return r.res, fmt.Errorf("datapath bench: lab has %d nodes, want %d", len(o.Lab.Nodes), LabNodes)
	}
	if err := r.prepare(ctx); err != nil {
		return r.res, err
	}
	defer r.teardown()
	for _, count := range o.Counts {
		var active []string
		for _, mode := range o.Modes {
			if time.Until(o.Deadline) < 90*time.Second {
				r.note("%s with %d services skipped: not enough time left", mode, count)
				continue
			}
			if err := r.setup(ctx, mode, count); err != nil {
				r.note("%s with %d services: %v", mode, count, err)
				continue
			}
			active = append(active, mode)
		}
		for rep := range o.Reps {
			for i := range active {
				mode := active[(i+rep)%len(active)]
				if err := ctx.Err(); err != nil {
					return r.res, err
				}
				need := time.Duration(len(o.Tests))*(o.Duration+2*time.Second) + 5*time.Second
				if time.Until(o.Deadline) < need {
					r.note("rep %d: %s with %d services skipped: not enough time left", rep+1, mode, count)
					continue
				}
				if err := r.runTests(ctx, mode, count, rep); err != nil {
					r.note("rep %d: %s with %d services: %v", rep+1, mode, count, err)
				}
			}
		}
	}
	return r.res, nil
}

func (r *runner) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, s)
	r.o.Logf("note: %s", s)
}

// prepare lets pods and client drop TIME_WAIT sockets, so back-to-back
// connection runs never stall on a reused 4-tuple.
func (r *runner) prepare(ctx context.Context) error {
	hosts := []*lab.Host{r.l.Client()}
	for _, p := range r.l.Pods() {
		hosts = append(hosts, &p.Host)
	}
	for _, h := range hosts {
		if _, _, err := RunIn(ctx, h, 10*time.Second, "", "sysctl", "-q", "-w", "net.ipv4.tcp_max_tw_buckets=0"); err != nil {
			return err
		}
	}
	return nil
}

// teardown stops lbd (detaching its datapath) and empties the rule nodes,
// so the lab's namespace removal has no large ruleset to free.
func (r *runner) teardown() {
	if r.stopLBD != nil {
		if err := r.stopLBD(); err != nil {
			r.note("stop lbd: %v", err)
		}
	}
	for _, m := range []string{ModeIptables, ModeNftables} {
		_, _, _ = RunIn(context.Background(), &r.lbNode(m).Host, 2*time.Minute, "", "nft", "flush", "ruleset")
	}
}

// files returns the manifest (lbd) or rule files (one per transaction) of
// mode for count services, written once per run.
func (r *runner) file(mode string, count int) ([]string, error) {
	key := fmt.Sprintf("%s/%d", mode, count)
	if p, ok := r.files[key]; ok {
		return p, nil
	}
	svcs, err := r.servicesFor(count)
	if err != nil {
		return nil, err
	}
	var texts []string
	switch mode {
	case ModeLBD:
		// Only lbd's own node: the other nodes run no lbd, and an lbd
		// that hears none of its listed peers fences itself (which only
		// stops announcements, but fills the status with warnings). The
		// client's neighbour entry replaces announcements anyway.
		n := r.lbNode(ModeLBD)
		b, err := Manifest([]ManifestNode{{Name: n.Name, IP: n.IP}}, svcs)
		if err != nil {
			return nil, err
		}
		texts = []string{string(b)}
	case ModeIptables:
		texts = []string{IptablesRestore(svcs)}
	case ModeNftables:
		texts = NftChunks(svcs, NftChunkSize)
	default:
		return nil, fmt.Errorf("unknown mode %q", mode)
	}
	var paths []string
	for _, t := range texts {
		p, err := writeTemp(r.l.Dir, mode+"-*", t)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	r.files[key] = paths
	return paths, nil
}

// setup programs count services for mode on its node and checks that the
// VIP answers through it.
func (r *runner) setup(ctx context.Context, mode string, count int) error {
	paths, err := r.file(mode, count)
	if err != nil {
		return err
	}
	r.o.Logf("%s with %d services: setting up on %s", mode, count, r.lbNode(mode).Name)
	start := time.Now()
	if mode == ModeLBD {
		if r.stopLBD != nil {
			err := r.stopLBD()
			r.stopLBD = nil
			if err != nil {
				return err
			}
		}
		if err := r.startLBD(ctx, paths[0], count); err != nil {
			return err
		}
	} else if err := r.loadRules(ctx, mode, paths); err != nil {
		return err
	}
	took := time.Since(start)
	if r.res.Setup[mode] == nil {
		r.res.Setup[mode] = map[int]time.Duration{}
	}
	r.res.Setup[mode][count] = took
	r.o.Logf("%s with %d services: set up in %v", mode, count, took.Round(time.Millisecond))
	if err := r.pointClient(ctx, mode); err != nil {
		return err
	}
	return r.probe(ctx)
}

// pointClient makes the client send VIP traffic to mode's node.
func (r *runner) pointClient(ctx context.Context, mode string) error {
	_, _, err := RunIn(ctx, r.l.Client(), 10*time.Second, "", "ip", "neigh", "replace", TestVIP.String(),
		"lladdr", r.lbNode(mode).MAC.String(), "dev", "eth0", "nud", "permanent")
	return err
}

func (r *runner) runTests(ctx context.Context, mode string, count, rep int) error {
	if err := r.pointClient(ctx, mode); err != nil {
		return err
	}
	if err := r.probe(ctx); err != nil {
		return err
	}
	for _, t := range r.o.Tests {
		var before map[string]uint64
		if mode == ModeLBD {
			before, _ = lbdReasons(ctx, r.o.LBD, r.lbdSock)
		}
		s, err := r.load(ctx, t)
		if err != nil {
			return err
		}
		if mode == ModeLBD {
			after, err := lbdReasons(ctx, r.o.LBD, r.lbdSock)
			if err == nil && before != nil {
				s.Drops = dropDelta(before, after)
			}
		}
		s.Mode, s.Services, s.Rep = mode, count, rep
		r.res.Samples = append(r.res.Samples, s)
		r.o.Logf("rep %d: %-8s %5d services %s: %.0f/s (%d errors%s), %.1f µs CPU/op (%.1f net)%s",
			rep+1, mode, count, t, s.Rate, s.Errors, errSuffix(s.FirstErr), s.CPUPerOp, s.NetCPUPerOp, dropSuffix(s.Drops))
	}
	return nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + tail(s, 120)
}

// loadRules replaces the ruleset of mode's node with paths, in order.
func (r *runner) loadRules(ctx context.Context, mode string, paths []string) error {
	h := &r.lbNode(mode).Host
	// Start from an empty ruleset: iptables-restore replaces the nat
	// table, nft adds to what exists.
	if _, _, err := RunIn(ctx, h, 2*time.Minute, "", "nft", "flush", "ruleset"); err != nil {
		return err
	}
	for _, path := range paths {
		var err error
		if mode == ModeIptables {
			_, _, err = RunIn(ctx, h, 3*time.Minute, path, "iptables-restore")
		} else {
			_, _, err = RunIn(ctx, h, 3*time.Minute, "", "nft", "-f", path)
		}
		if err != nil {
			return err
		}
	}
	// Closed connections would otherwise sit in node1's conntrack table
	// for 120s, and a few runs of thousands of connections/s would fill
	// it. Only the table's occupancy changes, not the per-packet work.
	_, _, _ = RunIn(ctx, h, 10*time.Second, "", "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1")
	return nil
}

// startLBD runs "lbd run" on lbd's node with the manifest and waits until
// its status lists every frontend; r.stopLBD terminates it and detaches
// and unpins its datapath ("lbd run --cleanup").
func (r *runner) startLBD(ctx context.Context, manifest string, count int) error {
	node := r.lbNode(ModeLBD)
	pin := filepath.Join("/sys/fs/bpf", r.l.Prefix+"-bench-node1")
	sock := filepath.Join(r.l.Dir, "bench-node1.sock")
	r.lbdSock = sock
	logf, err := os.Create(filepath.Join(r.l.Dir, fmt.Sprintf("bench-lbd-%d.log", count)))
	if err != nil {
		return fmt.Errorf("create lbd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(r.o.LBD, "run", "--node-name", node.Name, "--manifests", manifest,
		"--interface", "eth0", "--pin-dir", pin, "--socket", sock,
		"--max-services", "16384", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	// lbd sets its soft heap limit itself (docs/performance.md).
	if LBDMemoryLimit != "" {
		cmd.Env = append(os.Environ(), "GOMEMLIMIT="+LBDMemoryLimit)
	}
	start := time.Now()
	if err := node.Do(cmd.Start); err != nil {
		return fmt.Errorf("start lbd: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	r.lbdPid = cmd.Process.Pid
	r.stopLBD = func() error {
		r.lbdPid, r.stopLBD = 0, nil
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_, out, err := RunIn(context.Background(), &node.Host, time.Minute, "", r.o.LBD, "run", "--cleanup", "--pin-dir", pin)
		if err != nil {
			return fmt.Errorf("lbd cleanup: %w: %s", err, out)
		}
		return nil
	}
	want := count + 1 // the VIP under test has two ports
	deadline := time.Now().Add(30*time.Second + time.Duration(count)*6*time.Millisecond)
	for {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("lbd exited (%v): %s", err, tail(readFile(logf.Name()), 400))
		case <-time.After(200 * time.Millisecond):
		}
		n, attached, err := lbdFrontends(ctx, r.o.LBD, sock)
		if err == nil && n >= want && attached {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lbd not ready with %d frontends (have %d, %v): %s", want, n, err, tail(readFile(logf.Name()), 400))
		}
	}
	r.res.LBDReady[count] = append(r.res.LBDReady[count], time.Since(start))
	if rss, hwm, err := vmRSS(cmd.Process.Pid); err == nil {
		r.res.LBDRSS[count], r.res.LBDHWM[count] = rss, hwm
	}
	return nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// lbdFrontends asks lbd status for the number of frontends with backends
// and whether the datapath is attached.
func lbdFrontends(ctx context.Context, lbd, sock string) (int, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// lbd status exits non-zero when the daemon reports warnings or
	// errors; its JSON is still complete.
	out, err := exec.CommandContext(ctx, lbd, "status", "--socket", sock, "-o", "json").Output()
	if len(out) == 0 {
		return 0, false, fmt.Errorf("lbd status: %w", err)
	}
	var st struct {
		VIPs []struct {
			Ports []struct {
				Backends []json.RawMessage `json:"backends"`
			} `json:"ports"`
		} `json:"vips"`
		Datapath struct {
			Attached map[string]string `json:"attached"`
		} `json:"datapath"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, false, fmt.Errorf("parse lbd status: %w", err)
	}
	n := 0
	for _, v := range st.VIPs {
		for _, p := range v.Ports {
			if len(p.Backends) > 0 {
				n++
			}
		}
	}
	return n, len(st.Datapath.Attached) > 0, nil
}

// lbdReasons returns lbd's datapath verdict counters by reason.
func lbdReasons(ctx context.Context, lbd, sock string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, lbd, "status", "--socket", sock, "-o", "json").Output()
	if len(out) == 0 {
		return nil, fmt.Errorf("lbd status: %w", err)
	}
	var st struct {
		Datapath struct {
			Reasons map[string]uint64 `json:"reasons"`
		} `json:"datapath"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("parse lbd status: %w", err)
	}
	return st.Datapath.Reasons, nil
}

// dropDelta returns the drop reasons that grew from before to after.
func dropDelta(before, after map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for k, v := range after {
		if strings.HasPrefix(k, "drop") && v > before[k] {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k] = v - before[k]
		}
	}
	return out
}

func dropSuffix(d map[string]uint64) string {
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprintf(", lbd drops %v", d)
}

// probe waits until the VIP answers HTTP and UDP through the current mode.
func (r *runner) probe(ctx context.Context) error {
	c := r.l.Client()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		_, err := c.HTTPGet(ctx, netip.AddrPortFrom(TestVIP, lab.ServiceHTTPPort), "/")
		if err == nil {
			_, err = c.UDPQuery(ctx, netip.AddrPortFrom(TestVIP, lab.ServiceUDPPort))
		}
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("VIP does not answer: %w", last)
}

// load runs one load generator process in the client namespace and
// measures the machine's CPU over it.
func (r *runner) load(ctx context.Context, test string) (Sample, error) {
	target := netip.AddrPortFrom(TestVIP, lab.ServiceHTTPPort)
	if test == TestUDP {
		target = netip.AddrPortFrom(TestVIP, lab.ServiceUDPPort)
	}
	cmd := exec.CommandContext(ctx, r.o.Self, "loadgen", "-test", test, "-target", target.String(),
		"-c", strconv.Itoa(r.o.Conc), "-d", r.o.Duration.String())
	useWrk := r.o.Wrk != "" && test != TestUDP
	if useWrk {
		cmd = exec.CommandContext(ctx, r.o.Wrk, wrkArgs(test, "http://"+target.String()+"/", r.o.Conc, r.o.Duration)...)
	}
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	pods := r.podCPU()
	lbdCPU := procCPU(r.lbdPid)
	cpu0, err := busyTicks()
	if err != nil {
		return Sample{}, err
	}
	if err := r.l.Client().Do(cmd.Run); err != nil {
		return Sample{}, fmt.Errorf("run load generator: %w", err)
	}
	cpu1, err := busyTicks()
	if err != nil {
		return Sample{}, err
	}
	pods = r.podCPU() - pods
	lbdCPU = procCPU(r.lbdPid) - lbdCPU
	var lr LoadResult
	if useWrk {
		if lr, err = ParseWrk(test, out.String()); err != nil {
			return Sample{}, err
		}
	} else if err := json.Unmarshal([]byte(out.String()), &lr); err != nil {
		return Sample{}, fmt.Errorf("parse load generator output %q: %w", out.String(), err)
	}
	s := Sample{Test: test, Rate: lr.Rate(), OK: lr.OK, Errors: lr.Errors, FirstErr: lr.FirstErr}
	if lr.OK > 0 {
		total := ticksToUS(cpu1 - cpu0)
		gen := float64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Microseconds())
		s.CPUPerOp = total / float64(lr.OK)
		s.NetCPUPerOp = (total - gen - ticksToUS(pods)) / float64(lr.OK)
		s.LBDProcPerOp = ticksToUS(lbdCPU) / float64(lr.OK)
	}
	return s, nil
}

// podCPU sums utime+stime (clock ticks) of the pod server processes.
func (r *runner) podCPU() uint64 {
	var sum uint64
	for _, p := range r.l.Pods() {
		if p.Server != nil {
			sum += procCPU(p.Server.Pid())
		}
	}
	return sum
}

// procCPU returns utime+stime of process pid in clock ticks; 0 for pid 0
// or a process that is gone.
func procCPU(pid int) uint64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// busyTicks returns the machine's non-idle CPU time from /proc/stat in
// clock ticks (user, nice, system, irq, softirq, steal).
func busyTicks() (uint64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read cpu times: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 9 || fs[0] != "cpu" {
			continue
		}
		var sum uint64
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			v, _ := strconv.ParseUint(fs[i], 10, 64)
			sum += v
		}
		return sum, nil
	}
	return 0, errors.New("read cpu times: no cpu line in /proc/stat")
}

// clockTick is USER_HZ, fixed at 100 on Linux for /proc.
const clockTick = 100

func ticksToUS(t uint64) float64 { return float64(t) * 1e6 / clockTick }
