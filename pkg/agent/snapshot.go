// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/pkg/announce"
	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/status"
)

// Snapshot returns the status served on the status socket.
func (a *Agent) Snapshot() status.Status {
	a.mu.Lock()
	st, owned, errs, pools, poolOf := a.state, a.owned, slices.Clone(a.errs), a.pools, a.poolOf
	election, ownerChanges := a.election, a.ownerChanges
	a.mu.Unlock()

	out := status.Status{Node: a.cfg.NodeName, Version: a.cfg.Version, Source: a.src.Name(), Errors: errs}
	out.Datapath.PinDir = a.cfg.Datapath.PinDir
	out.Reconcile = a.reconcileInfo()
	out.Datapath.Attached = map[string]string{}
	out.Warnings = append(out.Warnings, a.attachWarnings()...)
	if a.dp != nil {
		for i, m := range a.dp.Attached() {
			out.Datapath.Attached[i] = string(m)
		}
		if r, err := a.dp.Reasons(); err == nil {
			out.Datapath.Reasons = r
		}
		if n, err := a.dp.Conntrack(); err == nil {
			out.Datapath.Conntrack = n
		}
	}
	if a.ann != nil {
		for iface, s := range a.ann.Stats() {
			out.Announce.Interfaces = append(out.Announce.Interfaces, iface)
			out.Announce.Answered += s.Answered
			out.Announce.Gratuitous += s.Gratuitous
			out.Announce.Conflicts += s.Conflicts
		}
		slices.Sort(out.Announce.Interfaces)
	}
	out.Announce.OwnerChanges = ownerChanges
	for _, p := range pools {
		ps := status.Pool{Name: p.Name, Total: p.Total, Used: p.Used}
		if st != nil {
			for _, sp := range st.Pools {
				if sp.Name == p.Name {
					for _, r := range sp.Ranges {
						ps.Ranges = append(ps.Ranges, r.String())
					}
				}
			}
		}
		out.Pools = append(out.Pools, ps)
	}
	if mem := a.membership(); mem != nil {
		fenced := mem.Fenced()
		out.Members = append(out.Members, status.Member{Node: a.cfg.NodeName, Addr: a.cfg.Datapath.NodeIP4.String(), Healthy: !fenced})
		// The fenced, no-ready-backend and pool-nearly-full warnings are
		// status.Check's, derived from this data (status.Checker).
		for _, m := range mem.Members() {
			out.Members = append(out.Members, status.Member{Node: m.Node, Addr: m.Addr.String(), Healthy: m.Healthy})
		}
	}
	if st == nil {
		return out
	}
	counters := map[fkey]datapath.Counters{}
	if a.dp != nil {
		if fes, err := a.dp.Frontends(); err == nil {
			for _, f := range fes {
				counters[fkey{f.VIP, f.Port, f.Protocol}] = f.Counters
			}
		} else {
			out.Errors = append(out.Errors, fmt.Sprintf("read datapath counters: %v", err))
		}
	}
	if election == nil {
		election = announce.Elect(st, a.liveFunc())
	}
	byVIP := map[netip.Addr]*status.VIP{}
	var order []netip.Addr
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			v, ok := byVIP[vip]
			if !ok {
				// The owner announced from, not one re-elected here: status
				// shows what the responders do.
				owner, _ := election.Owner(vip)
				pool, ok := poolOf(vip)
				if !ok {
					pool = announce.PoolOf(st, vip)
				}
				v = &status.VIP{VIP: vip.String(), Pool: pool, Owner: owner, Owned: owned[vip]}
				byVIP[vip] = v
				order = append(order, vip)
			}
			v.Services = append(v.Services, svc.Key.String())
			for _, sp := range svc.Ports {
				p := status.Port{Port: sp.Port, Protocol: sp.Protocol.String(), Service: svc.Key.String(), Policy: svc.TrafficPolicy.String()}
				c := counters[fkey{vip, sp.Port, sp.Protocol.String()}]
				p.Counters = status.Counters{Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.NewFlows, Drops: c.Drops}
				for _, ep := range svc.Endpoints {
					port, has := ep.PortFor(sp)
					// A VIP's backends are of its family, as in the
					// datapath (a dual-stack Service lists both).
					if !has || ep.Addr.Unmap().Is4() != vip.Unmap().Is4() {
						continue
					}
					p.Backends = append(p.Backends, status.Backend{
						Addr: netip.AddrPortFrom(ep.Addr, port).String(), Node: ep.NodeName,
						Ready: ep.Ready, Terminating: ep.Terminating, Local: ep.NodeName == a.cfg.NodeName,
					})
				}
				v.Ports = append(v.Ports, p)
			}
		}
	}
	slices.SortFunc(order, netip.Addr.Compare)
	for _, vip := range order {
		v := byVIP[vip]
		v.Service = strings.Join(v.Services, ",")
		out.VIPs = append(out.VIPs, *v)
	}
	return out
}

type fkey struct {
	vip   netip.Addr
	port  uint16
	proto string
}
