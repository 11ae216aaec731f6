// SPDX-License-Identifier: Apache-2.0

package lab

// The datapath side of "lbd status -o json": per-port backends and
// counters, drop reasons and the connection-table size. Like status.go, it
// reads only the fields the scenarios need.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// DPStatus is a node's status with its datapath view.
type DPStatus struct {
	VIPs []DPVIP
	// Reasons are the datapath's per-reason packet counters summed over
	// CPUs ("fwd", "drop_src_range", ...).
	Reasons map[string]uint64
	// Conntrack is the number of entries in the connection table.
	Conntrack int
	// Attached maps interfaces to attachment modes ("tcx", "xdp").
	Attached map[string]string
}

// DPVIP is a VIP with its ports' backends and counters.
type DPVIP struct {
	VIPStatus
	Ports []DPPort
}

// DPPort is one service port of a VIP.
type DPPort struct {
	Port     uint16
	Protocol string
	Service  string
	Policy   string
	Backends []DPBackend
	Counters DPCounters
}

// DPBackend is one endpoint behind a port as the agent sees it.
type DPBackend struct {
	Addr        netip.AddrPort
	Node        string
	Ready       bool
	Terminating bool
}

// DPCounters are a port's datapath counters.
type DPCounters struct {
	Packets, Bytes, NewFlows, Drops uint64
}

// ReadyBackends returns the sorted addresses of the ready backends.
func (p DPPort) ReadyBackends() []netip.Addr {
	var out []netip.Addr
	for _, b := range p.Backends {
		if b.Ready {
			out = append(out, b.Addr.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// VIPFor returns the VIP serving service ("namespace/name").
func (s *DPStatus) VIPFor(service string) (DPVIP, bool) {
	for _, v := range s.VIPs {
		for _, p := range v.Ports {
			if p.Service == service {
				return v, true
			}
		}
	}
	return DPVIP{}, false
}

// Port returns the counters and backends of service's port/protocol.
func (s *DPStatus) Port(service string, port uint16, proto string) (DPPort, bool) {
	for _, v := range s.VIPs {
		for _, p := range v.Ports {
			if p.Service == service && p.Port == port && strings.EqualFold(p.Protocol, proto) {
				return p, true
			}
		}
	}
	return DPPort{}, false
}

// ParseDPStatus parses "lbd status -o json" output.
func ParseDPStatus(b []byte) (*DPStatus, error) {
	var raw struct {
		VIPs []struct {
			VIP     string `json:"vip"`
			Service string `json:"service"`
			Pool    string `json:"pool"`
			Owner   string `json:"owner"`
			Ports   []struct {
				Port     uint16 `json:"port"`
				Protocol string `json:"protocol"`
				Service  string `json:"service"`
				Policy   string `json:"policy"`
				Backends []struct {
					Addr        string `json:"addr"`
					Node        string `json:"node"`
					Ready       bool   `json:"ready"`
					Terminating bool   `json:"terminating"`
				} `json:"backends"`
				Counters struct {
					Packets  uint64 `json:"packets"`
					Bytes    uint64 `json:"bytes"`
					NewFlows uint64 `json:"newFlows"`
					Drops    uint64 `json:"drops"`
				} `json:"counters"`
			} `json:"ports"`
		} `json:"vips"`
		Datapath struct {
			Attached  map[string]string `json:"attached"`
			Reasons   map[string]uint64 `json:"reasons"`
			Conntrack int               `json:"conntrack"`
		} `json:"datapath"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse lbd status: %w", err)
	}
	st := &DPStatus{Reasons: raw.Datapath.Reasons, Conntrack: raw.Datapath.Conntrack, Attached: raw.Datapath.Attached}
	for _, rv := range raw.VIPs {
		a, err := netip.ParseAddr(rv.VIP)
		if err != nil {
			return nil, fmt.Errorf("parse lbd status: vip %q: %w", rv.VIP, err)
		}
		v := DPVIP{VIPStatus: VIPStatus{VIP: a, Service: rv.Service, Pool: rv.Pool, Owner: rv.Owner}}
		for _, rp := range rv.Ports {
			p := DPPort{Port: rp.Port, Protocol: rp.Protocol, Service: rp.Service, Policy: rp.Policy,
				Counters: DPCounters(rp.Counters)}
			v.VIPStatus.Ports = append(v.VIPStatus.Ports, PortStatus{Port: rp.Port, Protocol: strings.ToUpper(rp.Protocol)})
			for _, rb := range rp.Backends {
				ap, err := netip.ParseAddrPort(rb.Addr)
				if err != nil {
					return nil, fmt.Errorf("parse lbd status: backend %q: %w", rb.Addr, err)
				}
				p.Backends = append(p.Backends, DPBackend{Addr: ap, Node: rb.Node, Ready: rb.Ready, Terminating: rb.Terminating})
			}
			v.Ports = append(v.Ports, p)
		}
		st.VIPs = append(st.VIPs, v)
	}
	return st, nil
}

// DatapathStatus asks node n's lbd for its status, also when it reports
// warnings or errors (exit status 3 or 1, with the full JSON status).
func (l *Lab) DatapathStatus(ctx context.Context, n *Node) (*DPStatus, error) {
	out, err := l.statusJSONAnyHealth(ctx, n)
	if err != nil {
		return nil, err
	}
	return ParseDPStatus(out)
}
