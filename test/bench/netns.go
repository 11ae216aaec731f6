// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	lab "github.com/lbd-project/lbd/test/vm"
)

// RunIn runs name with args in h's network namespace, forking from a
// thread that entered it (so the child is in the namespace from its first
// instruction and no "ip netns exec" remount is timed), with stdin from
// the file at stdinPath when it is not "". It returns the wall time of the
// command alone. A command still running at timeout is killed.
func RunIn(ctx context.Context, h *lab.Host, timeout time.Duration, stdinPath, name string, args ...string) (time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		took time.Duration
		out  bytes.Buffer
	)
	err := h.Do(func() error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdout = &out
		cmd.Stderr = &out
		if stdinPath != "" {
			f, err := os.Open(stdinPath)
			if err != nil {
				return fmt.Errorf("open input: %w", err)
			}
			defer f.Close()
			cmd.Stdin = f
		}
		start := time.Now()
		err := cmd.Run()
		took = time.Since(start)
		return err
	})
	if err != nil {
		return took, out.String(), fmt.Errorf("run %s %s in %s: %w: %s", name, strings.Join(args, " "), h.NetNS, err, tail(out.String(), 300))
	}
	return took, out.String(), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// ThrowawayNS creates an empty named namespace (loopback up) for rules that
// must never touch a real one, and returns it as a Host with a remove
// function. name must be a lab-shaped name ("<lab prefix>-<suffix>") so
// that lab.Clean also finds it after a crash.
func ThrowawayNS(ctx context.Context, name string) (*lab.Host, func() error, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("create netns %s: %w: %s", name, err, out)
	}
	remove := func() error {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			return fmt.Errorf("remove netns %s: %w: %s", name, err, out)
		}
		return nil
	}
	h := &lab.Host{Name: name, NetNS: name}
	if _, _, err := RunIn(ctx, h, 10*time.Second, "", "ip", "link", "set", "lo", "up"); err != nil {
		return nil, nil, fmt.Errorf("set up lo in %s: %w (remove: %v)", name, err, remove())
	}
	return h, remove, nil
}

// writeTemp writes s into a new file under dir and returns its path.
func writeTemp(dir, pattern, s string) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("create rules file: %w", err)
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return "", fmt.Errorf("write rules file: %w", err)
	}
	return f.Name(), f.Close()
}

// vmRSS returns VmRSS and VmHWM of process pid in KiB.
func vmRSS(pid int) (rss, hwm int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read process status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			fmt.Sscan(f[1], &rss)
		case "VmHWM:":
			fmt.Sscan(f[1], &hwm)
		}
	}
	return rss, hwm, nil
}
