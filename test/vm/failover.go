// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FailoverEvent is a way for the owner of a VIP to go away.
type FailoverEvent string

// Failover events.
const (
	// EventSigkill kills the owner's lbd: no goodbye, peers must detect
	// the silence. Its datapath stays attached (pinned), but nobody
	// answers ARP for its VIPs any more.
	EventSigkill FailoverEvent = "sigkill"
	// EventGraceful stops the owner's lbd with SIGTERM: it withdraws its
	// announcements and tells its peers it leaves.
	EventGraceful FailoverEvent = "graceful"
	// EventLinkLoss takes the owner's switch port down, as a pulled
	// cable: its lbd keeps running, isolated, and must fence itself. The
	// port goes down on the switch side so the node keeps its addresses
	// and routes (an administrative "ip link set eth0 down" in the node
	// would flush its routes to the other nodes' pods), which is what a
	// real cable cut does too.
	EventLinkLoss FailoverEvent = "link-loss"
)

// FailoverEvents lists every event.
var FailoverEvents = []FailoverEvent{EventSigkill, EventGraceful, EventLinkLoss}

// FailoverResult is what one failover did to a client's traffic.
type FailoverResult struct {
	Event    FailoverEvent
	VIP      netip.Addr
	OldOwner string
	NewOwner string
	// Takeover is the time from the event to the end of the first request
	// that succeeded while the client's neighbour entry for the VIP named
	// the new owner's MAC before and after it.
	Takeover time.Duration
	// Sent and Failed count the client's requests from the event to the
	// takeover.
	Sent, Failed int
	// FirstErrors are a few of the failures.
	FirstErrors []string
}

func (r FailoverResult) String() string {
	return fmt.Sprintf("%s: VIP %s moved %s -> %s in %s (%d/%d requests failed)",
		r.Event, r.VIP, r.OldOwner, r.NewOwner, r.Takeover.Round(time.Millisecond), r.Failed, r.Sent)
}

// Probe cadence: a new request every probeEvery, each bounded by
// probeTimeout, at most probeMax in one Failover. Requests overlap, so a
// request stuck on the dead owner does not delay the one that shows the
// takeover.
const (
	probeEvery   = 20 * time.Millisecond
	probeTimeout = time.Second
	probeMax     = 1500 // 30 s at probeEvery
)

type probe struct {
	start, end     time.Time
	err            error
	macBefore, mac string
}

// Failover makes the current owner of vip go away by event while the
// client sends a fresh HTTP request to vip:80 every 20 ms, and returns
// once a request succeeded through the new owner (or within limit). The
// old owner is left as the event left it: see Restore.
func (l *Lab) Failover(ctx context.Context, vip netip.Addr, event FailoverEvent, limit time.Duration) (FailoverResult, *Node, error) {
	return l.FailoverVia(ctx, vip, event, limit, l.Client(), l.Client())
}

// FailoverVia is Failover with client sending the requests and neigh the
// host on the VLAN whose neighbour entry for vip must name the new owner:
// the client itself when it is on the VLAN, its router when it is behind
// one (see AddRouter).
func (l *Lab) FailoverVia(ctx context.Context, vip netip.Addr, event FailoverEvent, limit time.Duration, client, neigh *Host) (FailoverResult, *Node, error) {
	res := FailoverResult{Event: event, VIP: vip}
	old, err := l.WaitOwner(ctx, vip, nil, l.opts.StartTimeout)
	if err != nil {
		return res, nil, err
	}
	res.OldOwner = old.Name
	target := netip.AddrPortFrom(vip, ServiceHTTPPort)
	// The client (or its router) must already have a neighbour entry on
	// the old owner, as one in the middle of its traffic has: the
	// takeover has to update it.
	if _, err := client.HTTPGet(ctx, target, "/"); err != nil {
		return res, old, fmt.Errorf("request before %s: %w", event, err)
	}

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu     sync.Mutex
		probes []probe
		wg     sync.WaitGroup
	)
	macOf := func() string {
		n, ok, err := neigh.Neighbor(vip)
		if err != nil || !ok {
			return ""
		}
		return n.MAC.String()
	}
	t0 := time.Now()
	switch event {
	case EventSigkill:
		err = old.LBD.Signal(syscall.SIGKILL)
	case EventGraceful:
		err = old.LBD.Signal(syscall.SIGTERM)
	case EventLinkLoss:
		err = ipIn(ctx, l.Switch, "link", "set", switchPort(old), "down")
	default:
		err = fmt.Errorf("unknown event %q", event)
	}
	if err != nil {
		return res, old, fmt.Errorf("%s on %s: %w", event, old.Name, err)
	}
	l.opts.Logf("lab %s: %s on %s (owner of %s)", l.Prefix, event, old.Name, vip)

	// The owner the surviving lbds agree on, polled apart from the probes:
	// "lbd status" is a process per node, too slow for the probe cadence.
	var newOwner *Node
	ownerCh := make(chan *Node, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pctx.Err() == nil {
			if n := l.agreedOwner(pctx, vip, old); n != nil {
				ownerCh <- n
				return
			}
			select {
			case <-pctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	tick := time.NewTicker(probeEvery)
	defer tick.Stop()
	deadline := time.After(limit)
	for sent := 0; ; {
		if newOwner == nil {
			select {
			case newOwner = <-ownerCh:
			default:
			}
		}
		if newOwner != nil {
			mu.Lock()
			done := slices.ContainsFunc(probes, func(p probe) bool {
				return p.err == nil && p.macBefore == newOwner.MAC.String() && p.mac == newOwner.MAC.String()
			})
			mu.Unlock()
			if done {
				break
			}
		}
		if sent >= probeMax {
			return res, old, fmt.Errorf("%s: no takeover after %d requests", event, sent)
		}
		select {
		case <-ctx.Done():
			return res, old, ctx.Err()
		case <-deadline:
			stop()
			wg.Wait()
			return res, old, fmt.Errorf("%s: no request through a new owner within %s (new owner by status: %v; %d requests)", event, limit, nodeName(newOwner), len(probes))
		case <-tick.C:
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			before := macOf()
			// Not pctx: requests in flight at the takeover run to their
			// own end, so that each one counts as a success or a failure.
			rctx, cancel := context.WithTimeout(ctx, probeTimeout)
			_, err := client.HTTPGet(rctx, target, "/")
			cancel()
			p := probe{start: start, end: time.Now(), err: err, macBefore: before, mac: macOf()}
			mu.Lock()
			probes = append(probes, p)
			mu.Unlock()
		}()
	}
	stop()
	wg.Wait()
	res.NewOwner = newOwner.Name
	sort.Slice(probes, func(i, j int) bool { return probes[i].end.Before(probes[j].end) })
	var takeover time.Time
	for _, p := range probes {
		if p.err == nil && p.macBefore == newOwner.MAC.String() && p.mac == newOwner.MAC.String() {
			takeover = p.end
			break
		}
	}
	res.Takeover = takeover.Sub(t0)
	// Count every request started before the takeover request ended,
	// whenever it ended: one stuck on the dead owner fails late.
	for _, p := range probes {
		if !p.start.Before(takeover) {
			continue
		}
		res.Sent++
		if p.err != nil {
			res.Failed++
			if len(res.FirstErrors) < 3 {
				res.FirstErrors = append(res.FirstErrors, p.err.Error())
			}
		}
	}
	return res, old, nil
}

func nodeName(n *Node) string {
	if n == nil {
		return "none"
	}
	return n.Name
}

func switchPort(n *Node) string { return fmt.Sprintf("n%d", n.Index) }

// Restore undoes event on node n: restarts its lbd or brings its link
// back, and waits until every VIP in vips has exactly one owner again.
// It returns the time from the restoring action to convergence.
func (l *Lab) Restore(ctx context.Context, n *Node, event FailoverEvent, vips []netip.Addr) (time.Duration, error) {
	t0 := time.Now()
	switch event {
	case EventSigkill, EventGraceful:
		select {
		case <-n.LBD.done:
		case <-time.After(l.opts.StopTimeout):
			return 0, fmt.Errorf("restore %s: lbd on %s still runs %s after %s", event, n.Name, l.opts.StopTimeout, event)
		}
		t0 = time.Now()
		if err := l.StartNodeLBD(ctx, n, false); err != nil {
			return 0, err
		}
	case EventLinkLoss:
		if err := ipIn(ctx, l.Switch, "link", "set", switchPort(n), "up"); err != nil {
			return 0, err
		}
	}
	for _, vip := range vips {
		if _, err := l.WaitOwner(ctx, vip, nil, l.opts.StartTimeout); err != nil {
			return 0, fmt.Errorf("restore %s on %s: %w", event, n.Name, err)
		}
	}
	return time.Since(t0), nil
}

// agreedOwner returns the owner of vip that the status of every running
// lbd but except's agrees on, or nil while they do not agree.
func (l *Lab) agreedOwner(ctx context.Context, vip netip.Addr, except *Node) *Node {
	var owner string
	for _, n := range l.Nodes {
		if n == except || n.LBD == nil {
			continue
		}
		if done, _ := n.LBD.Exited(); done {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := l.StatusAnyHealth(sctx, n)
		cancel()
		if err != nil {
			return nil
		}
		var o string
		for _, v := range st.VIPs {
			if v.VIP == vip {
				o = v.Owner
			}
		}
		if o == "" || (owner != "" && o != owner) {
			return nil
		}
		owner = o
	}
	if n := l.Node(owner); n != nil && n != except {
		return n
	}
	return nil
}

// WaitOwner waits until the running lbds (but except's) agree on one owner
// of vip and a fresh ARP request from the client for vip is answered by
// that owner's MAC alone, and returns the owner.
func (l *Lab) WaitOwner(ctx context.Context, vip netip.Addr, except *Node, timeout time.Duration) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		owner := l.agreedOwner(ctx, vip, except)
		if owner == nil {
			last = "statuses disagree or name no owner"
		} else {
			macs, err := l.Client().ARPResponders(ctx, vip, 200*time.Millisecond)
			switch {
			case err != nil:
				last = err.Error()
			case len(macs) == 1 && macs[0].String() == owner.MAC.String():
				return owner, nil
			default:
				last = fmt.Sprintf("ARP answered by %v, want only %s's %s", macs, owner.Name, owner.MAC)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for one owner of %s: %w (last: %s)", vip, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StatusAnyHealth is Status, also when lbd status reports warnings or
// errors (exit status 3 or 1): those come with the full JSON status too.
func (l *Lab) StatusAnyHealth(ctx context.Context, n *Node) (*Status, error) {
	out, err := l.statusJSONAnyHealth(ctx, n)
	if err != nil {
		return nil, err
	}
	return ParseStatus(out)
}

// statusJSONAnyHealth runs lbd status -o json on n and returns its output,
// also when it reports warnings or errors (exit status 3 or 1): those come
// with the full JSON status too.
func (l *Lab) statusJSONAnyHealth(ctx context.Context, n *Node) ([]byte, error) {
	cmd := exec.CommandContext(ctx, l.opts.LBD, "status", "--socket", n.Socket, "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || (ee.ExitCode() != 1 && ee.ExitCode() != 3)) {
		return nil, fmt.Errorf("run lbd status on %s: %w: %s", n.Name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
