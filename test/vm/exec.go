// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// nsNameRE matches the network namespaces a lab creates: "lbd-" followed by
// the 4-hex run id and a role ("sw", "n1", "n1p2", "c1"). Every command this
// package runs against a namespace checks the name against it first, so a
// typo can never reach the machine's own namespace or a foreign one.
var nsNameRE = regexp.MustCompile(`^lbd-[0-9a-f]{4}-[a-z0-9]+$`)

// runIP runs the ip command with args and returns its trimmed output.
func runIP(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("run ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(bytes.TrimSpace(out)), nil
}

// ipIn runs "ip -n ns args..." against a lab namespace.
func ipIn(ctx context.Context, ns string, args ...string) error {
	if !nsNameRE.MatchString(ns) {
		return fmt.Errorf("refuse to run ip in %q: not a lab namespace", ns)
	}
	_, err := runIP(ctx, append([]string{"-n", ns}, args...)...)
	return err
}

// sysctlIn sets sysctls ("key=value") inside a lab namespace. ip netns exec
// gives sysctl a /proc/sys/net of that namespace; the machine's own values
// are never touched.
func sysctlIn(ctx context.Context, ns string, kv ...string) error {
	if !nsNameRE.MatchString(ns) {
		return fmt.Errorf("refuse to set sysctls in %q: not a lab namespace", ns)
	}
	args := append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, kv...)
	_, err := runIP(ctx, args...)
	return err
}

// nsPids lists the processes inside a named namespace.
func nsPids(ctx context.Context, ns string) ([]int, error) {
	out, err := runIP(ctx, "netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// inNetNS runs fn on a locked OS thread that has entered the named
// namespace. The thread is never unlocked, so it dies with the goroutine and
// no other goroutine ever runs in the wrong namespace. Sockets and child
// processes fn creates belong to the namespace.
func inNetNS(name string, fn func() error) error {
	if !nsNameRE.MatchString(name) {
		return fmt.Errorf("refuse to enter %q: not a lab namespace", name)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sameNetNS reports whether process pid is in the named namespace, by
// comparing namespace inodes.
func sameNetNS(pid int, name string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &a); err != nil {
		return false, fmt.Errorf("stat netns of pid %d: %w", pid, err)
	}
	if err := syscall.Stat(filepath.Join("/run/netns", name), &b); err != nil {
		return false, fmt.Errorf("stat netns %s: %w", name, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// Process is a program the lab runs inside one of its namespaces.
type Process struct {
	Name  string // for logs: "lbd node1", "podserver node1-pod1"
	NetNS string
	Log   string // path of the file holding stdout and stderr

	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid after done is closed
}

// startProcess starts argv inside namespace ns with output to logPath.
func startProcess(name, ns, logPath string, argv []string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group: a Ctrl-C on the terminal reaches the lab runner
	// only, which then stops its children in order. No Pdeathsig: it fires
	// when the forking thread exits, and that thread dies right after the
	// fork (see inNetNS); Clean reaps children of a crashed runner instead.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Fork from a thread inside the namespace: the child inherits the
	// thread's network namespace and the process's mount namespace.
	if err := inNetNS(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, NetNS: ns, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	// Defence in depth: a daemon that attaches BPF programs must never run
	// in the machine's own namespace.
	if ok, err := sameNetNS(cmd.Process.Pid, ns); err != nil || !ok {
		_ = cmd.Process.Kill()
		<-p.done
		if err == nil {
			err = errors.New("child is in another network namespace")
		}
		return nil, fmt.Errorf("check namespace of %s: %w", name, err)
	}
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited, and its exit error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process if it still runs.
func (p *Process) Signal(sig os.Signal) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to timeout and then sends SIGKILL. It
// returns an error only if the process could not be stopped; how it exited
// is reported by Exited.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return fmt.Errorf("stop %s: killed after %s without exiting on SIGTERM", p.Name, timeout)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop %s: still running after SIGKILL", p.Name)
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string { return tailFile(p.Log, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
