// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// SetLBDArgs replaces the extra arguments of "lbd run" for the lbds started
// from now on (StartNodeLBD), e.g. to restart one with another option.
func (l *Lab) SetLBDArgs(args ...string) { l.opts.LBDArgs = args }

// denyTable is the nft table a lab scenario adds to a node to stand for a
// CNI's NetworkPolicy on the node's path to a pod.
const denyTable = "lbdlab"

// nftIn runs nft with script on stdin (or args) inside a lab node's
// namespace, never anywhere else.
func nftIn(ctx context.Context, n *Node, stdin string, args ...string) (string, error) {
	if !nsNameRE.MatchString(n.NetNS) {
		return "", fmt.Errorf("refuse to run nft in %q: not a lab namespace", n.NetNS)
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.NetNS, "nft"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("run nft %s in %s: %w: %s", strings.Join(args, " "), n.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// DenyToPod adds, in node n's namespace, a forward-hook rule dropping TCP
// to pod p's port, with a counter: what a CNI's NetworkPolicy does on the
// node's path to the pod.
func (l *Lab) DenyToPod(ctx context.Context, p *Pod, port uint16) error {
	script := fmt.Sprintf(`table inet %s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr %s tcp dport %d counter drop
	}
}
`, denyTable, p.IP, port)
	_, err := nftIn(ctx, p.Node, script, "-f", "-")
	return err
}

// DenyCount returns the packets the DenyToPod rule of node n has dropped.
func (l *Lab) DenyCount(ctx context.Context, n *Node) (uint64, error) {
	out, err := nftIn(ctx, n, "", "-j", "list", "table", "inet", denyTable)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, fmt.Errorf("parse nft output: %w", err)
	}
	for _, it := range doc.Nftables {
		if it.Rule == nil {
			continue
		}
		for _, e := range it.Rule.Expr {
			if raw, ok := e["counter"]; ok {
				var c struct{ Packets uint64 }
				if err := json.Unmarshal(raw, &c); err != nil {
					return 0, fmt.Errorf("parse nft counter: %w", err)
				}
				return c.Packets, nil
			}
		}
	}
	return 0, errors.New("deny rule has no counter")
}

// DeliveryRate is one measurement of a delivery path.
type DeliveryRate struct {
	RPS      float64 // keep-alive requests per second
	CPS      float64 // new connections (one request each) per second
	Requests int
	Conns    int
	Errors   int
}

// BenchDelivery measures, from h to target, keep-alive requests/s and
// then new connections/s, each for d with workers parallel loops. Each
// loop runs on one OS thread inside h's namespace. d is capped at 30s.
func (h *Host) BenchDelivery(ctx context.Context, target netip.AddrPort, d time.Duration, workers int) (DeliveryRate, error) {
	if err := checkTarget(target.Addr()); err != nil {
		return DeliveryRate{}, err
	}
	d = min(d, 30*time.Second)
	var r DeliveryRate
	keep := []byte("GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
	// New connections ask the server to close first: the TIME_WAIT state
	// stays on the pod, and the client's ports are free again at once,
	// so a long run does not slow down hunting for a free port.
	closing := []byte("GET / HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
	roundTrip := func(c net.Conn, br *bufio.Reader, req []byte) error {
		_ = c.SetDeadline(time.Now().Add(requestTimeout))
		if _, err := c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
		return err
	}
	run := func(loop func(deadline time.Time) (int, int)) (int, int, time.Duration) {
		var (
			mu        sync.Mutex
			ok, fails int
			wg        sync.WaitGroup
		)
		start := time.Now()
		deadline := start.Add(d)
		for range workers {
			wg.Go(func() {
				_ = h.Do(func() error {
					o, f := loop(deadline)
					mu.Lock()
					ok += o
					fails += f
					mu.Unlock()
					return nil
				})
			})
		}
		wg.Wait()
		return ok, fails, time.Since(start)
	}
	var dialer net.Dialer
	reqs, f1, el := run(func(deadline time.Time) (int, int) {
		c, err := dialer.DialContext(ctx, "tcp4", target.String())
		if err != nil {
			return 0, 1
		}
		defer c.Close()
		br := bufio.NewReader(c)
		n := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if err := roundTrip(c, br, keep); err != nil {
				return n, 1
			}
			n++
		}
		return n, 0
	})
	r.Requests, r.RPS = reqs, float64(reqs)/el.Seconds()
	conns, f2, el := run(func(deadline time.Time) (int, int) {
		n, fails := 0, 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			c, err := dialer.DialContext(ctx, "tcp4", target.String())
			if err != nil {
				fails++
				continue
			}
			br := bufio.NewReader(c)
			if err := roundTrip(c, br, closing); err != nil {
				fails++
			} else {
				n++
				// Wait for the server's FIN, so that the client never
				// closes first and holds no TIME_WAIT.
				_, _ = io.Copy(io.Discard, br)
			}
			c.Close()
		}
		return n, fails
	})
	r.Conns, r.CPS = conns, float64(conns)/el.Seconds()
	r.Errors = f1 + f2
	return r, ctx.Err()
}
