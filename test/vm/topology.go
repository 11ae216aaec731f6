// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Lab address plan, after the reference cluster (see DESIGN.md).
var (
	// VLAN is the node network the switch bridges; VIPs are on-link in it.
	VLAN = netip.MustParsePrefix("10.20.0.0/22")
	// PodNet holds every pod address; node N's pods are in 10.241.N.0/24.
	PodNet = netip.MustParsePrefix("10.241.0.0/16")
)

// labPrefixes are the only destinations lab clients may send to.
var labPrefixes = []netip.Prefix{VLAN, PodNet}

// Options configure a lab. The zero value builds 3 nodes with 2 pods each and
// one client, and runs no processes.
type Options struct {
	// Nodes is the number of node namespaces (1..9); 0 means 3.
	Nodes int
	// PodsPerNode is the number of pod namespaces behind each node (1..9);
	// 0 means 2.
	PodsPerNode int
	// Clients is the number of client namespaces on the VLAN (1..50); 0
	// means 1.
	Clients int
	// PodServer is the path of the podserver binary run in every pod
	// namespace; empty runs none.
	PodServer string
	// LBD is the path of the lbd binary run in every node namespace; empty
	// runs none.
	LBD string
	// LBDArgs are extra arguments appended to "lbd run ...".
	LBDArgs []string
	// Kubeconfig, when set, runs lbd in Kubernetes mode (--kubeconfig)
	// instead of on the static manifest file; see StartKubeLBD.
	Kubeconfig string
	// ClientPodRoutes gives clients routes to each node's pod /24 via that
	// node, so tests can reach pods directly. A real client on the VLAN
	// has none; leave it off when testing VIPs.
	ClientPodRoutes bool
	// IPv6 also gives every node, pod and client an IPv6 address (see
	// ipv6.go), routes the pods' IPv6 ranges like the IPv4 ones and adds
	// the dual-stack pool and Services to the manifest.
	IPv6 bool
	// StartTimeout bounds waiting for a process to become ready; 0 means
	// 30s.
	StartTimeout time.Duration
	// StopTimeout is how long a process gets between SIGTERM and SIGKILL;
	// 0 means 5s.
	StopTimeout time.Duration
	// Logf receives progress messages; nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) setDefaults() error {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 2
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 5 * time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	// Single digits keep interface names short ("p1-2") and addresses in
	// their /24s.
	if o.Nodes < 1 || o.Nodes > 9 || o.PodsPerNode < 1 || o.PodsPerNode > 9 || o.Clients < 1 || o.Clients > 50 {
		return fmt.Errorf("validate options: nodes %d, pods per node %d, clients %d out of range", o.Nodes, o.PodsPerNode, o.Clients)
	}
	return nil
}

// Host is one network namespace of the lab with an address on its eth0.
type Host struct {
	Name  string           // lab name: "node1", "node1-pod2", "client1"
	NetNS string           // named network namespace, for ip netns exec
	IP    netip.Addr       // address of eth0
	MAC   net.HardwareAddr // MAC of eth0
}

// Node is a node namespace: a host on the VLAN with pods behind it.
type Node struct {
	Host
	Index  int    // 1-based
	Socket string // lbd status socket
	PinDir string // lbd bpffs pin directory
	Pods   []*Pod
	LBD    *Process // nil when the lab runs no lbd, or after StopLBD
}

// Pod is a pod namespace behind a node.
type Pod struct {
	Host
	Node     *Node
	HostVeth string   // node-side interface, "p<node>-<pod>"
	Server   *Process // nil when the lab runs no podserver
}

// Lab is one running lab. Close it, always.
type Lab struct {
	Prefix   string // "lbd-<4 hex>", shared by every namespace and pin dir
	Dir      string // temp dir: logs, sockets, manifest
	Manifest string // path of the multi-document YAML given to lbd
	Switch   string // namespace holding the bridge
	Nodes    []*Node
	Clients  []*Host

	opts Options

	mu         sync.Mutex
	namespaces []string // created, in creation order
	pinDirs    []string
	closed     bool
}

// New builds a lab: namespaces, links, addresses and routes, then starts the
// pod servers and lbd daemons the options ask for and waits until they are
// ready. On error it tears down whatever it built and the error carries the
// tails of the process logs.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	l, err := claimPrefix()
	if err != nil {
		return nil, err
	}
	l.opts = opts
	l.Switch = l.Prefix + "-sw"
	l.Manifest = filepath.Join(l.Dir, "manifests.yaml")
	l.plan()

	if err := l.build(ctx); err != nil {
		tails := l.LogTails(20)
		cerr := l.Close()
		return nil, errors.Join(fmt.Errorf("build lab %s: %w%s", l.Prefix, err, tails), cerr)
	}
	return l, nil
}

// claimPrefix picks a random run prefix and claims it by creating its temp
// dir; a prefix whose dir or switch namespace exists is in use.
func claimPrefix() (*Lab, error) {
	for range 16 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("pick lab prefix: %w", err)
		}
		prefix := "lbd-" + hex.EncodeToString(b[:])
		if _, err := os.Stat(filepath.Join("/run/netns", prefix+"-sw")); err == nil {
			continue
		}
		dir := filepath.Join(os.TempDir(), prefix+"-lab")
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, fmt.Errorf("create lab dir: %w", err)
		}
		return &Lab{Prefix: prefix, Dir: dir}, nil
	}
	return nil, errors.New("pick lab prefix: every try was in use")
}

// mac derives a locally administered MAC from a role byte and an IPv4
// address, so a MAC in a neighbour table names its host at a glance.
func mac(role byte, a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, role, b[0], b[1], b[2], b[3]}
}

// MAC roles.
const (
	roleHost     = 0x00 // eth0 of nodes, clients and pods
	roleNodeVeth = 0x01 // node-side veth of a pod
)

// plan fills in names and addresses; it creates nothing.
func (l *Lab) plan() {
	for n := 1; n <= l.opts.Nodes; n++ {
		ip := netip.AddrFrom4([4]byte{10, 20, 0, byte(50 + n)})
		node := &Node{
			Host: Host{
				Name:  fmt.Sprintf("node%d", n),
				NetNS: fmt.Sprintf("%s-n%d", l.Prefix, n),
				IP:    ip,
				MAC:   mac(roleHost, ip),
			},
			Index:  n,
			Socket: filepath.Join(l.Dir, fmt.Sprintf("node%d.sock", n)),
			PinDir: filepath.Join(bpffsRoot, fmt.Sprintf("%s-node%d", l.Prefix, n)),
		}
		for i := 1; i <= l.opts.PodsPerNode; i++ {
			pip := netip.AddrFrom4([4]byte{10, 241, byte(n), byte(10 + i)})
			node.Pods = append(node.Pods, &Pod{
				Host: Host{
					Name:  fmt.Sprintf("node%d-pod%d", n, i),
					NetNS: fmt.Sprintf("%s-n%dp%d", l.Prefix, n, i),
					IP:    pip,
					MAC:   mac(roleHost, pip),
				},
				Node:     node,
				HostVeth: fmt.Sprintf("p%d-%d", n, i),
			})
		}
		l.Nodes = append(l.Nodes, node)
	}
	for c := 1; c <= l.opts.Clients; c++ {
		ip := netip.AddrFrom4([4]byte{10, 20, 0, byte(199 + c)})
		l.Clients = append(l.Clients, &Host{
			Name:  fmt.Sprintf("client%d", c),
			NetNS: fmt.Sprintf("%s-c%d", l.Prefix, c),
			IP:    ip,
			MAC:   mac(roleHost, ip),
		})
	}
}

// Client returns the first client.
func (l *Lab) Client() *Host { return l.Clients[0] }

// Node returns the node named name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Pods returns every pod, node by node.
func (l *Lab) Pods() []*Pod {
	var pods []*Pod
	for _, n := range l.Nodes {
		pods = append(pods, n.Pods...)
	}
	return pods
}

// NodeGateway returns node n's pod gateway address, 10.241.N.1.
func (n *Node) NodeGateway() netip.Addr { return netip.AddrFrom4([4]byte{10, 241, byte(n.Index), 1}) }

// PodCIDR returns node n's pod range, 10.241.N.0/24.
func (n *Node) PodCIDR() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 241, byte(n.Index), 0}), 24)
}

// addNS creates a named namespace and records it for Close before anything
// else can fail.
func (l *Lab) addNS(ctx context.Context, name string) error {
	if !nsNameRE.MatchString(name) {
		return fmt.Errorf("create netns %q: not a lab name", name)
	}
	if _, err := runIP(ctx, "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.namespaces = append(l.namespaces, name)
	l.mu.Unlock()
	return ipIn(ctx, name, "link", "set", "lo", "up")
}

// Sysctls for each kind of namespace. A namespace's defaults depend on the
// host (net.core.devconf_inherit_init_net), so the lab sets what it relies
// on explicitly.
var (
	// No DAD: link-local addresses are usable at once and nothing waits
	// for "tentative" to clear; the lab uses IPv4 today but later
	// scenarios add IPv6 VIPs.
	sysctlNoDAD = []string{
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
	}
	// Nodes route between the VLAN and their pods. rp_filter is off
	// because strict reverse-path checks drop packets whose source is
	// routed out of another interface, which the datapath legitimately
	// produces: replies reverse-translated to the VIP leave via a pod veth
	// path, and Cluster-policy traffic SNATed by one node arrives at
	// another with a source routed via eth0 while coming from a pod veth.
	sysctlNode = append([]string{
		"net.ipv4.ip_forward=1",
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
	}, sysctlNoDAD...)
	// The switch is layer 2 only: no addresses, no IPv6 chatter from
	// the bridge itself.
	sysctlSwitch = []string{
		"net.ipv6.conf.all.disable_ipv6=1",
		"net.ipv6.conf.default.disable_ipv6=1",
	}
)

func (l *Lab) build(ctx context.Context) error {
	o := l.opts
	o.Logf("lab %s: building %d nodes x %d pods, %d clients", l.Prefix, o.Nodes, o.PodsPerNode, o.Clients)

	// The switch: a bridge in its own namespace, never in the root one.
	if err := l.addNS(ctx, l.Switch); err != nil {
		return err
	}
	if err := sysctlIn(ctx, l.Switch, sysctlSwitch...); err != nil {
		return err
	}
	if err := ipIn(ctx, l.Switch, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		return err
	}
	if err := ipIn(ctx, l.Switch, "link", "set", "br0", "up"); err != nil {
		return err
	}

	for _, n := range l.Nodes {
		if err := l.buildNode(ctx, n); err != nil {
			return err
		}
	}
	for i, c := range l.Clients {
		if err := l.addNS(ctx, c.NetNS); err != nil {
			return err
		}
		if err := sysctlIn(ctx, c.NetNS, sysctlNoDAD...); err != nil {
			return err
		}
		if err := l.plugIntoSwitch(ctx, c, fmt.Sprintf("c%d", i+1)); err != nil {
			return err
		}
		if o.ClientPodRoutes {
			for _, n := range l.Nodes {
				if err := ipIn(ctx, c.NetNS, "route", "add", n.PodCIDR().String(), "via", n.IP.String(), "dev", "eth0"); err != nil {
					return err
				}
			}
		}
	}
	// Routes between nodes: each node reaches the others' pods through
	// their InternalIPs (direct routing on one L2 segment).
	for _, n := range l.Nodes {
		for _, m := range l.Nodes {
			if m == n {
				continue
			}
			if err := ipIn(ctx, n.NetNS, "route", "add", m.PodCIDR().String(), "via", m.IP.String(), "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	if o.IPv6 {
		if err := l.addIPv6(ctx); err != nil {
			return err
		}
	}
	if err := l.writeManifests(); err != nil {
		return err
	}
	if o.PodServer != "" {
		if err := l.startPodServers(ctx); err != nil {
			return err
		}
	}
	if o.LBD != "" {
		if err := l.StartLBD(ctx); err != nil {
			return err
		}
	}
	o.Logf("lab %s: up", l.Prefix)
	return nil
}

// plugIntoSwitch gives h an eth0 whose peer, named port, is a port of the
// bridge, and puts h.IP on it.
func (l *Lab) plugIntoSwitch(ctx context.Context, h *Host, port string) error {
	if err := ipIn(ctx, h.NetNS, "link", "add", "eth0", "address", h.MAC.String(), "type", "veth",
		"peer", "name", port, "netns", l.Switch); err != nil {
		return err
	}
	if err := ipIn(ctx, l.Switch, "link", "set", port, "master", "br0", "up"); err != nil {
		return err
	}
	if err := ipIn(ctx, h.NetNS, "addr", "add", netip.PrefixFrom(h.IP, VLAN.Bits()).String(), "dev", "eth0"); err != nil {
		return err
	}
	return ipIn(ctx, h.NetNS, "link", "set", "eth0", "up")
}

func (l *Lab) buildNode(ctx context.Context, n *Node) error {
	if err := l.addNS(ctx, n.NetNS); err != nil {
		return err
	}
	if err := sysctlIn(ctx, n.NetNS, sysctlNode...); err != nil {
		return err
	}
	if err := l.plugIntoSwitch(ctx, &n.Host, fmt.Sprintf("n%d", n.Index)); err != nil {
		return err
	}
	gw := n.NodeGateway()
	for _, p := range n.Pods {
		if err := l.addNS(ctx, p.NetNS); err != nil {
			return err
		}
		if err := sysctlIn(ctx, p.NetNS, sysctlNoDAD...); err != nil {
			return err
		}
		if err := ipIn(ctx, n.NetNS, "link", "add", p.HostVeth, "address", mac(roleNodeVeth, p.IP).String(), "type", "veth",
			"peer", "name", "eth0", "address", p.MAC.String(), "netns", p.NetNS); err != nil {
			return err
		}
		steps := [][]string{
			{n.NetNS, "addr", "add", netip.PrefixFrom(gw, 32).String(), "dev", p.HostVeth},
			{n.NetNS, "link", "set", p.HostVeth, "up"},
			{n.NetNS, "route", "add", netip.PrefixFrom(p.IP, 32).String(), "dev", p.HostVeth},
			{p.NetNS, "addr", "add", netip.PrefixFrom(p.IP, 32).String(), "dev", "eth0"},
			{p.NetNS, "link", "set", "eth0", "up"},
			{p.NetNS, "route", "add", "default", "via", gw.String(), "dev", "eth0", "onlink"},
		}
		for _, s := range steps {
			if err := ipIn(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// LogTails returns the last n lines of every process log, formatted for an
// error message; "" when no process ran.
func (l *Lab) LogTails(n int) string {
	var b strings.Builder
	add := func(p *Process) {
		if p != nil {
			fmt.Fprintf(&b, "\n--- %s (%s) ---\n%s", p.Name, p.Log, p.Tail(n))
		}
	}
	for _, node := range l.Nodes {
		add(node.LBD)
	}
	for _, p := range l.Pods() {
		add(p.Server)
	}
	return b.String()
}

// Close stops every process, deletes every namespace (the switch's with it
// the bridge), removes pin directories and the temp dir. It keeps going past
// errors and returns them joined. Safe to call more than once and from
// several goroutines (defer, signal handler, t.Cleanup).
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var errs []error
	for _, n := range l.Nodes {
		if n.LBD != nil {
			errs = append(errs, n.LBD.Stop(l.opts.StopTimeout))
		}
	}
	var wg sync.WaitGroup
	perr := make([]error, len(l.Pods()))
	for i, p := range l.Pods() {
		if p.Server != nil {
			wg.Go(func() { perr[i] = p.Server.Stop(l.opts.StopTimeout) })
		}
	}
	wg.Wait()
	errs = append(errs, perr...)
	// Delete in reverse creation order; anything still running inside
	// (a shell from "lab up", a child of lbd) is killed first, because a
	// namespace outlives "ip netns del" while a process holds it.
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		errs = append(errs, removeNS(ctx, l.namespaces[i]))
	}
	for _, d := range l.pinDirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove pin dir: %w", err))
		}
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove lab dir: %w", err))
	}
	l.opts.Logf("lab %s: torn down", l.Prefix)
	return errors.Join(errs...)
}

// removeNS kills the processes left in a lab namespace and deletes it.
func removeNS(ctx context.Context, name string) error {
	if !nsNameRE.MatchString(name) {
		return fmt.Errorf("remove netns %q: not a lab name", name)
	}
	if pids, err := nsPids(ctx, name); err == nil {
		for _, pid := range pids {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	_, err := runIP(ctx, "netns", "del", name)
	return err
}

// CloseOnSignal tears the lab down and exits the process with status 130
// when SIGINT or SIGTERM arrives, for runners (tests) that cannot otherwise
// react to a Ctrl-C. Call the returned function to stop watching.
func (l *Lab) CloseOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "lab %s: %v: tearing down\n", l.Prefix, sig)
			if err := l.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "lab %s: %v\n", l.Prefix, err)
			}
			os.Exit(130)
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
		})
	}
}
