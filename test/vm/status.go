// SPDX-License-Identifier: Apache-2.0

package lab

// This file is the only place that knows the shape of "lbd status -o json".
// It reads just the fields the lab needs and ignores everything else, so
// the daemon's output can grow without breaking the lab; adapt it here when
// the shape changes.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Status is the part of lbd's status the lab reads.
type Status struct {
	VIPs     []VIPStatus
	Warnings []string
}

// VIPStatus is one allocated VIP.
type VIPStatus struct {
	VIP     netip.Addr
	Service string // "namespace/name"
	Pool    string
	Owner   string // node announcing the VIP; "" while none does
	Ports   []PortStatus
}

// PortStatus is one service port of a VIP.
type PortStatus struct {
	Port     uint16
	Protocol string // "TCP", "UDP", ...; "" when lbd did not say
	Name     string
}

// VIPFor returns the first VIP of service ("namespace/name").
func (s *Status) VIPFor(service string) (VIPStatus, bool) {
	for _, v := range s.VIPs {
		if v.Service == service {
			return v, true
		}
	}
	return VIPStatus{}, false
}

// ParseStatus parses "lbd status -o json" output. It expects
//
//	{"vips":[{"vip":"10.20.1.1","service":"default/web-internal",
//	          "pool":"internal","owner":"node2","ports":[...]}], ...}
//
// and accepts a few spellings the daemon may settle on: "address" or "ip"
// for "vip"; "node" for "owner"; service as "ns/name" or as an object with
// namespace and name; ports as numbers, "80/TCP" strings or objects with
// port, protocol and name. Unknown fields are ignored.
func ParseStatus(b []byte) (*Status, error) {
	var raw struct {
		VIPs     []map[string]json.RawMessage `json:"vips"`
		Warnings []string                     `json:"warnings"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("parse lbd status: %w", err)
	}
	st := &Status{Warnings: raw.Warnings}
	for i, m := range raw.VIPs {
		var v VIPStatus
		addr := firstString(m, "vip", "address", "ip")
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("parse lbd status: vip %d: %w", i, err)
		}
		v.VIP = a
		v.Service = serviceName(m["service"])
		v.Pool = firstString(m, "pool")
		v.Owner = firstString(m, "owner", "node")
		ports, err := parsePorts(m["ports"])
		if err != nil {
			return nil, fmt.Errorf("parse lbd status: vip %s: %w", a, err)
		}
		v.Ports = ports
		st.VIPs = append(st.VIPs, v)
	}
	return st, nil
}

func firstString(m map[string]json.RawMessage, keys ...string) string {
	for _, k := range keys {
		var s string
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

func serviceName(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct{ Namespace, Name string }
	if json.Unmarshal(raw, &o) == nil && o.Name != "" {
		return o.Namespace + "/" + o.Name
	}
	return ""
}

func parsePorts(raw json.RawMessage) ([]PortStatus, error) {
	if raw == nil {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("ports: %w", err)
	}
	var out []PortStatus
	for _, it := range items {
		var n uint16
		if json.Unmarshal(it, &n) == nil {
			out = append(out, PortStatus{Port: n})
			continue
		}
		var s string
		if json.Unmarshal(it, &s) == nil {
			num, proto, _ := strings.Cut(s, "/")
			p, err := strconv.ParseUint(num, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("port %q: %w", s, err)
			}
			out = append(out, PortStatus{Port: uint16(p), Protocol: strings.ToUpper(proto)})
			continue
		}
		var o struct {
			Port     uint16 `json:"port"`
			Protocol any    `json:"protocol"`
			Proto    any    `json:"proto"`
			Name     string `json:"name"`
		}
		if err := json.Unmarshal(it, &o); err != nil {
			return nil, fmt.Errorf("port %s: %w", it, err)
		}
		proto := o.Protocol
		if proto == nil {
			proto = o.Proto
		}
		out = append(out, PortStatus{Port: o.Port, Protocol: protoName(proto), Name: o.Name})
	}
	return out, nil
}

// protoName accepts "TCP"/"tcp" or an IANA number.
func protoName(p any) string {
	switch v := p.(type) {
	case string:
		return strings.ToUpper(v)
	case float64:
		switch v {
		case 6:
			return "TCP"
		case 17:
			return "UDP"
		case 132:
			return "SCTP"
		}
		return fmt.Sprintf("proto-%d", int(v))
	}
	return ""
}

// Status asks node n's lbd for its status and parses it.
func (l *Lab) Status(ctx context.Context, n *Node) (*Status, error) {
	b, err := l.LBDStatus(ctx, n, true)
	if err != nil {
		return nil, err
	}
	return ParseStatus(b)
}

// WaitVIPs polls node n's status until every service in services has a VIP
// with an owner, and returns those VIPs in the order of services.
func (l *Lab) WaitVIPs(ctx context.Context, n *Node, services ...string) ([]VIPStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.StartTimeout)
	defer cancel()
	var lastErr error
	for {
		st, err := l.Status(ctx, n)
		if err == nil {
			var vips []VIPStatus
			for _, s := range services {
				v, ok := st.VIPFor(s)
				if !ok || v.Owner == "" {
					err = fmt.Errorf("service %s has no owned VIP yet", s)
					break
				}
				vips = append(vips, v)
			}
			if err == nil {
				return vips, nil
			}
		}
		lastErr = err
		if err := l.CheckLBD(); err != nil {
			return nil, fmt.Errorf("wait for VIPs on %s: %w", n.Name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for VIPs on %s: %w (last: %w)", n.Name, ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ExpectedVIP is the address a fresh lab allocates to service: the first of
// its pool. A fallback for when status cannot be read.
func ExpectedVIP(service string) (vip netip.Addr, pool string) {
	if service == ServiceExternal {
		return ExternalRange[0], PoolExternal
	}
	return InternalRange[0], PoolInternal
}
