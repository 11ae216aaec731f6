// SPDX-License-Identifier: Apache-2.0

// Command fakelbd is a user-space stand-in for lbd with the same command
// line, used to test the lab harness itself (process management, status
// parsing, the demo and end-to-end checks) independently of the daemon.
//
// "fakelbd run" reads the manifest with lbd's own loader, gives each
// LoadBalancer Service the lowest free address of the highest-priority
// pool that selects it, picks one owner per VIP by rendezvous hashing over
// the nodes, and on the owner adds the VIP to the interface (so the kernel
// answers ARP for it) and proxies VIP:port to the ready endpoints round
// robin, from the node's own address (like Cluster policy's SNAT).
// "fakelbd status" prints what it did, as text or JSON. It is no load
// balancer: no BPF, no failover, no Local policy.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/static"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: fakelbd run|status ...")
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakelbd: %v\n", err)
		os.Exit(1)
	}
}

// statusVIP is one entry of the status JSON, in the shape lbd promises.
type statusVIP struct {
	VIP     string       `json:"vip"`
	Service string       `json:"service"`
	Pool    string       `json:"pool"`
	Owner   string       `json:"owner"`
	Ports   []statusPort `json:"ports"`
	// Backends are the endpoints the proxy sends to.
	Backends []string `json:"backends"`
	// Conns counts proxied connections and datagrams (owner only).
	Conns int64 `json:"conns"`
}

type statusPort struct {
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	Name     string `json:"name"`
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	nodeName := fs.String("node-name", "", "")
	manifests := fs.String("manifests", "", "")
	iface := fs.String("interface", "", "")
	_ = fs.String("pin-dir", "", "unused")
	socket := fs.String("socket", "", "")
	_ = fs.Parse(args)

	res, err := static.Load(*manifests)
	if err != nil {
		return err
	}
	st, err := config.For(res, config.Options{})
	if err != nil {
		return err
	}
	self, ok := st.Node(*nodeName)
	if !ok || len(self.Addrs) == 0 {
		return fmt.Errorf("node %q not in manifest", *nodeName)
	}
	// Refuse to touch an interface that does not carry this node's
	// address: that would not be a lab node.
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		return fmt.Errorf("find interface: %w", err)
	}
	if !hasAddr(ifi, self.Addrs[0]) {
		return fmt.Errorf("%s does not carry %s: not this node's namespace", *iface, self.Addrs[0])
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	vips := allocate(st)
	var (
		mu      sync.Mutex
		entries []*statusVIP
		counts  []*atomic.Int64
		cleanup []func()
	)
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	for _, a := range vips {
		svc, vip, pool := a.svc, a.vip, a.pool
		e := &statusVIP{VIP: vip.String(), Service: svc.Key.String(), Pool: pool, Owner: owner(vip, st.Nodes)}
		for _, p := range svc.Ports {
			e.Ports = append(e.Ports, statusPort{p.Port, p.Protocol.String(), p.Name})
		}
		for _, ep := range svc.Endpoints {
			if ep.Ready {
				e.Backends = append(e.Backends, ep.Addr.String())
			}
		}
		n := new(atomic.Int64)
		entries, counts = append(entries, e), append(counts, n)
		if e.Owner != *nodeName {
			continue
		}
		pfx := netip.PrefixFrom(vip, vip.BitLen()).String()
		if out, err := exec.Command("ip", "addr", "add", pfx, "dev", *iface).CombinedOutput(); err != nil {
			return fmt.Errorf("add %s: %w: %s", pfx, err, out)
		}
		cleanup = append(cleanup, func() { _ = exec.Command("ip", "addr", "del", pfx, "dev", *iface).Run() })
		for _, p := range svc.Ports {
			c, err := serve(ctx, vip, p, svc.Endpoints, n)
			if err != nil {
				return err
			}
			cleanup = append(cleanup, c)
		}
		log.Printf("owner of %s (%s), %d backends", vip, svc.Key, len(e.Backends))
	}

	_ = os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		return fmt.Errorf("listen on status socket: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		for i, e := range entries {
			e.Conns = counts[i].Load()
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"node": *nodeName, "vips": entries})
	})}
	go func() { _ = srv.Serve(ln) }()
	log.Printf("running on %s, status on %s", *nodeName, *socket)
	<-ctx.Done()
	log.Printf("stopping")
	_ = srv.Close()
	_ = os.Remove(*socket)
	return nil
}

func hasAddr(ifi *net.Interface, a netip.Addr) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if p, err := netip.ParsePrefix(x.String()); err == nil && p.Addr() == a {
			return true
		}
	}
	return false
}

type allocation struct {
	svc  model.Service
	vip  netip.Addr
	pool string
}

// allocate gives each service the lowest free address of the
// highest-priority pool selecting it; a stand-in for pkg/ipam.
func allocate(st *model.State) []allocation {
	pools := slices.Clone(st.Pools)
	slices.SortStableFunc(pools, func(a, b model.Pool) int { return b.Priority - a.Priority })
	used := map[netip.Addr]bool{}
	var out []allocation
	for _, svc := range st.Services {
	pools:
		for _, p := range pools {
			if p.ServiceSelector != nil && !p.ServiceSelector.Matches(svc.Labels) {
				continue
			}
			for _, r := range p.Ranges {
				for a := r.First; a.IsValid() && r.Contains(a); a = a.Next() {
					if !used[a] {
						used[a] = true
						out = append(out, allocation{svc, a, p.Name})
						break pools
					}
				}
			}
		}
	}
	return out
}

// owner picks the node with the highest hash of (vip, node): every node
// computes the same answer.
func owner(vip netip.Addr, nodes []model.Node) string {
	var best string
	var bestSum [32]byte
	for _, n := range nodes {
		sum := sha256.Sum256([]byte(vip.String() + "/" + n.Name))
		if best == "" || string(sum[:]) > string(bestSum[:]) {
			best, bestSum = n.Name, sum
		}
	}
	return best
}

// serve proxies vip:port to the endpoints' matching ports, round robin, and
// returns a function that stops it.
func serve(ctx context.Context, vip netip.Addr, sp model.ServicePort, eps []model.Endpoint, count *atomic.Int64) (func(), error) {
	var backends []netip.AddrPort
	for _, e := range eps {
		if port, ok := e.PortFor(sp); ok && e.Ready {
			backends = append(backends, netip.AddrPortFrom(e.Addr, port))
		}
	}
	if len(backends) == 0 {
		return func() {}, nil
	}
	var next atomic.Uint64
	pick := func() netip.AddrPort { return backends[next.Add(1)%uint64(len(backends))] }
	addr := netip.AddrPortFrom(vip, sp.Port).String()
	switch sp.Protocol {
	case model.TCP:
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				count.Add(1)
				go proxyTCP(ctx, c, pick())
			}
		}()
		return func() { ln.Close() }, nil
	case model.UDP:
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				count.Add(1)
				go proxyUDP(pc, from, append([]byte(nil), buf[:n]...), pick())
			}
		}()
		return func() { pc.Close() }, nil
	}
	return func() {}, nil
}

func proxyTCP(ctx context.Context, c net.Conn, to netip.AddrPort) {
	defer c.Close()
	d := net.Dialer{Timeout: 2 * time.Second}
	b, err := d.DialContext(ctx, "tcp", to.String())
	if err != nil {
		log.Printf("dial %s: %v", to, err)
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(b, c)
	go cp(c, b)
	<-done
	<-done
}

func proxyUDP(pc net.PacketConn, from net.Addr, msg []byte, to netip.AddrPort) {
	b, err := net.Dial("udp", to.String())
	if err != nil {
		return
	}
	defer b.Close()
	_ = b.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := b.Write(msg); err != nil {
		return
	}
	buf := make([]byte, 2048)
	n, err := b.Read(buf)
	if err != nil {
		return
	}
	_, _ = pc.WriteTo(buf[:n], from)
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ExitOnError)
	socket := fs.String("socket", "", "")
	output := fs.String("o", "text", "text or json")
	_ = fs.Parse(args)
	hc := http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *socket)
		}},
	}
	resp, err := hc.Get("http://fakelbd/status")
	if err != nil {
		return fmt.Errorf("query status: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if *output == "json" {
		_, err := os.Stdout.Write(body)
		return err
	}
	var st struct {
		Node string      `json:"node"`
		VIPs []statusVIP `json:"vips"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("parse status: %w", err)
	}
	fmt.Printf("node %s (fakelbd)\n", st.Node)
	for _, v := range st.VIPs {
		var ports []string
		for _, p := range v.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		fmt.Printf("  %-12s %-22s pool=%-9s owner=%-6s ports=%s backends=%d conns=%d\n",
			v.VIP, v.Service, v.Pool, v.Owner, strings.Join(ports, ","), len(v.Backends), v.Conns)
	}
	return nil
}
