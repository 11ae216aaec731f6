// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Bounds on every request a lab host sends.
const (
	requestTimeout = 3 * time.Second
	// MaxRequests caps one HTTPLoad, so a scenario can never turn into a
	// flood.
	MaxRequests = 10000
)

// checkTarget refuses any destination outside the lab's address plan.
func checkTarget(a netip.Addr) error {
	a = a.Unmap()
	for _, p := range labPrefixes {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("refuse to send to %s: not a lab address", a)
}

// Do runs fn on a locked OS thread inside h's namespace; see inNetNS.
func (h *Host) Do(fn func() error) error { return inNetNS(h.NetNS, fn) }

// DialContext dials a lab address from inside h's namespace. The socket is
// created in the namespace and stays there, so the returned conn can be
// used from any goroutine. Safe for concurrent use.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", h.Name, err)
	}
	if err := checkTarget(ap.Addr()); err != nil {
		return nil, err
	}
	var conn net.Conn
	err = h.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		conn = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial from %s: %w", h.Name, err)
	}
	return conn, nil
}

// httpClient returns a client whose connections are made in h's namespace.
// Keep-alives are off: each request is a new connection, i.e. a new flow
// the load balancer places on its own.
func (h *Host) httpClient() *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			DialContext:       h.DialContext,
			DisableKeepAlives: true,
			Proxy:             nil, // never through a proxy from the environment
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// HTTPGet sends one GET for path to target from h and returns the response
// body without surrounding white space. A status other than 200 is an error.
func (h *Host) HTTPGet(ctx context.Context, target netip.AddrPort, path string) (string, error) {
	if err := checkTarget(target.Addr()); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target.String()+path, nil)
	if err != nil {
		return "", fmt.Errorf("build request: %w", err)
	}
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return "", err // names method, URL and, from DialContext, h
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", fmt.Errorf("read %s%s from %s: %w", target, path, h.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get %s%s from %s: status %s", target, path, h.Name, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}

// Tally counts the outcome of a series of requests.
type Tally struct {
	Sent   int
	OK     int
	ByPod  map[string]int // answers per pod name
	Errors []string       // the first few failures, for messages
}

// Failed is the number of requests that got no valid answer.
func (t Tally) Failed() int { return t.Sent - t.OK }

// Pods returns the sorted names of the pods that answered.
func (t Tally) Pods() []string {
	var names []string
	for n := range t.ByPod {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (t Tally) String() string {
	s := fmt.Sprintf("%d/%d ok from %d backends %v", t.OK, t.Sent, len(t.ByPod), t.ByPod)
	if len(t.Errors) > 0 {
		s += "; errors: " + strings.Join(t.Errors, "; ")
	}
	return s
}

func (t *Tally) add(pod string, err error) {
	t.Sent++
	if err != nil {
		if len(t.Errors) < 3 {
			t.Errors = append(t.Errors, err.Error())
		}
		return
	}
	t.OK++
	if t.ByPod == nil {
		t.ByPod = map[string]int{}
	}
	t.ByPod[pod]++
}

// HTTPLoad sends n sequential GET / requests to target from h, each on a new
// connection with a 3s timeout, and counts which pods answered. It stops
// early when ctx ends. n is capped at MaxRequests.
func (h *Host) HTTPLoad(ctx context.Context, target netip.AddrPort, n int) Tally {
	n = min(n, MaxRequests)
	var t Tally
	for range n {
		if ctx.Err() != nil {
			t.add("", ctx.Err())
			continue
		}
		pod, err := h.HTTPGet(ctx, target, "/")
		if err == nil && pod == "" {
			err = errors.New("empty answer")
		}
		t.add(pod, err)
	}
	return t
}

// UDPAnswer is a pod server's answer to a UDP query.
type UDPAnswer struct {
	Pod string
	// Client is the source address the pod saw.
	Client netip.AddrPort
}

// UDPQuery sends one datagram to target from h and waits for the pod
// server's "<pod> <client addr>" answer.
func (h *Host) UDPQuery(ctx context.Context, target netip.AddrPort) (UDPAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	network := "udp4"
	if !target.Addr().Unmap().Is4() {
		network = "udp6"
	}
	conn, err := h.DialContext(ctx, network, target.String())
	if err != nil {
		return UDPAnswer{}, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("lab query from " + h.Name)); err != nil {
		return UDPAnswer{}, fmt.Errorf("send udp to %s from %s: %w", target, h.Name, err)
	}
	buf := make([]byte, 1500)
	nr, err := conn.Read(buf)
	if err != nil {
		return UDPAnswer{}, fmt.Errorf("read udp answer of %s from %s: %w", target, h.Name, err)
	}
	return ParseUDPAnswer(string(buf[:nr]))
}

// ParseUDPAnswer parses a pod server's UDP answer "<pod> <ip:port>".
func ParseUDPAnswer(s string) (UDPAnswer, error) {
	pod, addr, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || pod == "" {
		return UDPAnswer{}, fmt.Errorf("parse udp answer %q: want \"<pod> <ip:port>\"", s)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return UDPAnswer{}, fmt.Errorf("parse udp answer %q: %w", s, err)
	}
	return UDPAnswer{Pod: pod, Client: ap}, nil
}

// Neighbor is an entry of a host's neighbour table.
type Neighbor struct {
	IP    netip.Addr
	MAC   net.HardwareAddr
	State string // "REACHABLE", "STALE", ...
}

// Neighbors returns h's IPv4 neighbour entries on eth0 that have a MAC
// (incomplete and failed entries are left out).
func (h *Host) Neighbors() ([]Neighbor, error) {
	ns, err := netns.GetFromName(h.NetNS)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", h.NetNS, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", h.NetNS, err)
	}
	defer nh.Close()
	link, err := nh.LinkByName("eth0")
	if err != nil {
		return nil, fmt.Errorf("find eth0 in %s: %w", h.NetNS, err)
	}
	list, err := nh.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("list neighbours in %s: %w", h.NetNS, err)
	}
	var out []Neighbor
	for _, n := range list {
		if len(n.HardwareAddr) == 0 || n.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		out = append(out, Neighbor{IP: ip.Unmap(), MAC: n.HardwareAddr, State: neighState(n.State)})
	}
	return out, nil
}

// Neighbor returns h's neighbour entry for ip.
func (h *Host) Neighbor(ip netip.Addr) (Neighbor, bool, error) {
	list, err := h.Neighbors()
	if err != nil {
		return Neighbor{}, false, err
	}
	for _, n := range list {
		if n.IP == ip {
			return n, true, nil
		}
	}
	return Neighbor{}, false, nil
}

func neighState(s int) string {
	names := []struct {
		bit  int
		name string
	}{
		{netlink.NUD_REACHABLE, "REACHABLE"},
		{netlink.NUD_STALE, "STALE"},
		{netlink.NUD_DELAY, "DELAY"},
		{netlink.NUD_PROBE, "PROBE"},
		{netlink.NUD_PERMANENT, "PERMANENT"},
		{netlink.NUD_NOARP, "NOARP"},
	}
	for _, n := range names {
		if s&n.bit != 0 {
			return n.name
		}
	}
	return fmt.Sprintf("0x%x", s)
}

// ARPResponders sends one ARP request for ip from h's eth0 and returns the
// distinct MACs that answered within wait (at most 2s), in order of arrival.
// Exactly one entry means exactly one host claims ip on the VLAN.
func (h *Host) ARPResponders(ctx context.Context, ip netip.Addr, wait time.Duration) ([]net.HardwareAddr, error) {
	if err := checkTarget(ip); err != nil {
		return nil, err
	}
	wait = min(wait, 2*time.Second)
	var c *arp.Client
	// The packet socket is bound to eth0 of the namespace it is created
	// in; interface lookup and socket creation both happen inside.
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0: %w", err)
		}
		c, err = arp.Dial(ifi)
		if err != nil {
			return fmt.Errorf("open arp socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("arp probe from %s: %w", h.Name, err)
	}
	defer c.Close()
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("arp probe from %s: %w", h.Name, err)
	}
	if err := c.Request(ip); err != nil {
		return nil, fmt.Errorf("arp request for %s from %s: %w", ip, h.Name, err)
	}
	var macs []net.HardwareAddr
	seen := map[string]bool{}
	for {
		p, _, err := c.Read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return macs, nil
			}
			return macs, fmt.Errorf("read arp replies on %s: %w", h.Name, err)
		}
		if p.Operation != arp.OperationReply || p.SenderIP != ip || seen[p.SenderHardwareAddr.String()] {
			continue
		}
		seen[p.SenderHardwareAddr.String()] = true
		macs = append(macs, p.SenderHardwareAddr)
	}
}
