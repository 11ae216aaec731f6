// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Answer is what a pod server said about one HTTP request: who answered
// and which client address it saw (its X-Pod-Name and X-Client-Addr).
type Answer struct {
	Pod    string
	Client netip.AddrPort
}

// KeepAlive is one long-lived TCP connection from a lab host to a target,
// carrying HTTP/1.1 requests one after the other: one flow, so every
// request on it must reach the same pod.
type KeepAlive struct {
	Host   *Host
	Target netip.AddrPort
	conn   net.Conn
	br     *bufio.Reader
}

// OpenKeepAlive connects from h to target.
func (h *Host) OpenKeepAlive(ctx context.Context, target netip.AddrPort) (*KeepAlive, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp4", target.String())
	if err != nil {
		return nil, err
	}
	return &KeepAlive{Host: h, Target: target, conn: c, br: bufio.NewReader(c)}, nil
}

// LocalAddr is the client side of the connection.
func (k *KeepAlive) LocalAddr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(k.conn.LocalAddr().String())
	return ap
}

// Get sends one GET / on the connection and returns the answer, within
// timeout (0: 3s).
func (k *KeepAlive) Get(timeout time.Duration) (Answer, error) {
	if timeout == 0 {
		timeout = requestTimeout
	}
	_ = k.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(k.conn, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"); err != nil {
		return Answer{}, fmt.Errorf("send request on %s: %w", k.LocalAddr(), err)
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return Answer{}, fmt.Errorf("read answer on %s: %w", k.LocalAddr(), err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)); err != nil {
		return Answer{}, fmt.Errorf("read answer on %s: %w", k.LocalAddr(), err)
	}
	return answerOf(resp)
}

// Close closes the connection.
func (k *KeepAlive) Close() error { return k.conn.Close() }

func answerOf(resp *http.Response) (Answer, error) {
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("answer status %s", resp.Status)
	}
	a := Answer{Pod: resp.Header.Get("X-Pod-Name")}
	if a.Pod == "" {
		return a, errors.New("answer without X-Pod-Name")
	}
	ap, err := netip.ParseAddrPort(resp.Header.Get("X-Client-Addr"))
	if err != nil {
		return a, fmt.Errorf("answer's X-Client-Addr: %w", err)
	}
	a.Client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return a, nil
}

// Who sends one GET / to target from h on a new connection and returns who
// answered and the client address the pod saw. timeout 0 means 3s.
func (h *Host) Who(ctx context.Context, target netip.AddrPort, timeout time.Duration) (Answer, error) {
	if timeout == 0 {
		timeout = requestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := h.DialContext(ctx, "tcp4", target.String())
	if err != nil {
		return Answer{}, err
	}
	k := &KeepAlive{Host: h, Target: target, conn: c, br: bufio.NewReader(c)}
	defer k.Close()
	d, _ := ctx.Deadline()
	return k.Get(time.Until(d))
}

// Burst runs fn n times on one OS thread inside h's namespace (one thread
// for the whole loop, unlike DialContext's one per dial), stopping at the
// first error or when ctx ends, and returns how many calls succeeded.
// Connections fn makes with a plain net.Dialer are made in h's namespace;
// fn must only dial addresses checked with CheckTarget.
func (h *Host) Burst(ctx context.Context, n int, fn func(ctx context.Context) error) (int, error) {
	done := 0
	err := h.Do(func() error {
		for done < n {
			if err := ctx.Err(); err != nil {
				return nil
			}
			if err := fn(ctx); err != nil {
				return err
			}
			done++
		}
		return nil
	})
	return done, err
}

// RSS returns the resident set size of process p in bytes.
func (p *Process) RSS() (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, fmt.Errorf("read status of %s: %w", p.Name, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS of %s: %w", p.Name, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("read status of %s: no VmRSS", p.Name)
}

// UDPFlow sends one datagram to target from h on a new socket (a new
// flow), waits up to timeout (0: 3s) for the pod server's answer, and
// returns the flow's local address, also on failure, to look it up in the
// datapath's tables.
func (h *Host) UDPFlow(ctx context.Context, target netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	if timeout == 0 {
		timeout = requestTimeout
	}
	var local netip.AddrPort
	err := h.Do(func() error {
		var err error
		local, err = udpFlow(ctx, target, timeout)
		return err
	})
	return local, err
}

func udpFlow(ctx context.Context, target netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	var local netip.AddrPort
	if err := checkTarget(target.Addr()); err != nil {
		return local, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp4", target.String())
	if err != nil {
		return local, fmt.Errorf("dial udp %s: %w", target, err)
	}
	defer c.Close()
	local, _ = netip.ParseAddrPort(c.LocalAddr().String())
	err = udpExchange(c, target, timeout)
	return local, err
}

func udpExchange(c net.Conn, target netip.AddrPort, timeout time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("lab flow")); err != nil {
		return fmt.Errorf("send udp to %s: %w", target, err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("read udp answer of %s: %w", target, err)
	}
	if _, err := ParseUDPAnswer(string(buf[:n])); err != nil {
		return err
	}
	return nil
}

// udpFlowShort is one UDP flow with a shorter (1 s) wait for the answer:
// a lost answer costs less in a loop of thousands. Call it inside a lab
// namespace.
func udpFlowShort(ctx context.Context, target netip.AddrPort) error {
	_, err := udpFlow(ctx, target, time.Second)
	return err
}
