// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// bpffsRoot is where lbd pins; bpffs is one per mount namespace, shared by
// every network namespace, so each node gets its own directory under it.
const bpffsRoot = "/sys/fs/bpf"

// Ports the pod servers listen on.
const (
	PodHTTPPort = 8080
	PodUDPPort  = 9000
)

// ensureBPFFS mounts bpffs at /sys/fs/bpf unless one is mounted there.
func ensureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(bpffsRoot, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := unix.Mount("bpf", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs at %s: %w", bpffsRoot, err)
	}
	return nil
}

// startPodServers runs the podserver in every pod namespace and waits until
// each answers HTTP from its node.
func (l *Lab) startPodServers(ctx context.Context) error {
	for _, p := range l.Pods() {
		argv := []string{l.opts.PodServer, "-name", p.Name,
			"-http", fmt.Sprintf(":%d", PodHTTPPort), "-udp", fmt.Sprintf(":%d", PodUDPPort)}
		proc, err := startProcess("podserver "+p.Name, p.NetNS, filepath.Join(l.Dir, p.Name+".log"), argv)
		if err != nil {
			return err
		}
		p.Server = proc
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.StartTimeout)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range l.Pods() {
		g.Go(func() error {
			return waitUntil(ctx, p.Server, func(ctx context.Context) error {
				got, err := p.Node.HTTPGet(ctx, netip.AddrPortFrom(p.IP, PodHTTPPort), "/")
				if err != nil {
					return err
				}
				if got != p.Name {
					return fmt.Errorf("%s answered as %q", p.IP, got)
				}
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("wait for pod servers: %w", err)
	}
	l.opts.Logf("lab %s: %d pod servers answer", l.Prefix, len(l.Pods()))
	return nil
}

// waitUntil retries check every 100ms until it succeeds, ctx ends or p
// exits.
func waitUntil(ctx context.Context, p *Process, check func(context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if done, perr := p.Exited(); done {
			return fmt.Errorf("%s exited (%v) before it was ready: %w", p.Name, perr, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %w)", p.Name, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// StartLBD starts "lbd run" in every node namespace (that has none running)
// and waits until each status socket answers.
func (l *Lab) StartLBD(ctx context.Context) error {
	if l.opts.LBD == "" {
		return errors.New("start lbd: no lbd binary in options")
	}
	if err := ensureBPFFS(); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if err := l.StartNodeLBD(ctx, n, false); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range l.Nodes {
		g.Go(func() error { return l.WaitLBD(gctx, n) })
	}
	return g.Wait()
}

// StartNodeLBD starts "lbd run" on node n; with wait it also waits for its
// status socket. It fails if lbd already runs there.
func (l *Lab) StartNodeLBD(ctx context.Context, n *Node, wait bool) error {
	if n.LBD != nil {
		if done, _ := n.LBD.Exited(); !done {
			return fmt.Errorf("start lbd on %s: already running", n.Name)
		}
	}
	if err := os.MkdirAll(n.PinDir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	l.mu.Lock()
	if !contains(l.pinDirs, n.PinDir) {
		l.pinDirs = append(l.pinDirs, n.PinDir)
	}
	l.mu.Unlock()
	source := []string{"--manifests", l.Manifest}
	if l.opts.Kubeconfig != "" {
		source = []string{"--kubeconfig", l.opts.Kubeconfig}
	}
	argv := append([]string{l.opts.LBD, "run", "--node-name", n.Name}, source...)
	argv = append(append(argv,
		"--interface", "eth0",
		"--pin-dir", n.PinDir,
		"--socket", n.Socket,
	), l.opts.LBDArgs...)
	proc, err := startProcess("lbd "+n.Name, n.NetNS, filepath.Join(l.Dir, n.Name+"-lbd.log"), argv)
	if err != nil {
		return err
	}
	n.LBD = proc
	l.opts.Logf("lab %s: lbd on %s started (pid %d, log %s)", l.Prefix, n.Name, proc.Pid(), proc.Log)
	if wait {
		return l.WaitLBD(ctx, n)
	}
	return nil
}

// WaitLBD waits until "lbd status" on node n answers, within the start
// timeout.
func (l *Lab) WaitLBD(ctx context.Context, n *Node) error {
	if n.LBD == nil {
		return fmt.Errorf("wait for lbd on %s: not started", n.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.StartTimeout)
	defer cancel()
	err := waitUntil(ctx, n.LBD, func(ctx context.Context) error {
		_, err := l.LBDStatus(ctx, n, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("wait for lbd on %s: %w", n.Name, err)
	}
	l.opts.Logf("lab %s: lbd on %s answers", l.Prefix, n.Name)
	return nil
}

// CheckLBD returns an error naming every node whose lbd was started and has
// exited since (StopLBD'd ones included), with the tail of its log.
func (l *Lab) CheckLBD() error {
	var errs []error
	for _, n := range l.Nodes {
		if n.LBD == nil {
			continue
		}
		if done, err := n.LBD.Exited(); done {
			errs = append(errs, fmt.Errorf("lbd on %s exited (%v):\n%s", n.Name, err, n.LBD.Tail(10)))
		}
	}
	return errors.Join(errs...)
}

// StopLBD stops lbd on node n (SIGTERM, then SIGKILL after the stop
// timeout). Its pinned state stays for a restart.
func (l *Lab) StopLBD(n *Node) error {
	if n.LBD == nil {
		return nil
	}
	err := n.LBD.Stop(l.opts.StopTimeout)
	if err != nil {
		return fmt.Errorf("stop lbd on %s: %w\n%s", n.Name, err, n.LBD.Tail(20))
	}
	return nil
}

// LBDStatus runs "lbd status" against node n's socket and returns its
// output; with json it asks for "-o json". The command runs in the root
// namespaces: the socket is a path, reachable from anywhere.
func (l *Lab) LBDStatus(ctx context.Context, n *Node, json bool) ([]byte, error) {
	args := []string{"status", "--socket", n.Socket}
	if json {
		args = append(args, "-o", "json")
	}
	cmd := exec.CommandContext(ctx, l.opts.LBD, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run lbd status on %s: %w: %s", n.Name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
