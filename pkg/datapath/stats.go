// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/lbd-project/lbd/pkg/model"
)

// Counters are a frontend's datapath counters, summed over CPUs.
type Counters struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"newFlows"`
	Drops    uint64 `json:"drops"`
}

// Backend is a backend as programmed.
type Backend struct {
	Addr  netip.AddrPort `json:"addr"`
	Local bool           `json:"local"`
}

// Frontend describes one programmed {VIP, port, protocol}.
type Frontend struct {
	VIP      netip.Addr       `json:"vip"`
	Port     uint16           `json:"port"`
	Protocol string           `json:"protocol"`
	Service  model.ServiceKey `json:"-"`
	ID       uint32           `json:"id"`
	Local    bool             `json:"local"`
	Backends []Backend        `json:"backends"`
	Counters Counters         `json:"counters"`
}

// Frontends returns the programmed frontends with their counters, read from
// the per-CPU maps now.
func (d *Datapath) Frontends() ([]Frontend, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Frontend, 0, len(d.frontends))
	for fk, fe := range d.frontends {
		f := Frontend{
			VIP: fk.VIP, Port: fk.Port, Protocol: fk.Proto.String(), Service: fe.svc, ID: fe.id,
			Local: fe.val.Flags&uint32(lbLbSvcFlagsLB_SVC_LOCAL) != 0,
		}
		for _, b := range fe.backends {
			f.Backends = append(f.Backends, Backend{Addr: b.Addr, Local: b.Local})
		}
		var per []lbLbSvcStats
		if err := d.objs.LbStats.Lookup(fe.id, &per); err != nil {
			return nil, fmt.Errorf("read counters of %s:%d: %w", fk.VIP, fk.Port, err)
		}
		for _, s := range per {
			f.Counters.Packets += s.Packets
			f.Counters.Bytes += s.Bytes
			f.Counters.NewFlows += s.NewFlows
			f.Counters.Drops += s.Drops
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Frontend) int {
		return cmpFrontend(frontendKey{a.VIP, a.Port, 0}, frontendKey{b.VIP, b.Port, 0})
	})
	return out, nil
}

// Reasons returns the per-reason packet counters summed over CPUs, keyed by
// reason name ("pass", "fwd", "drop_no_backend", ...).
func (d *Datapath) Reasons() (map[string]uint64, error) {
	out := make(map[string]uint64)
	for r := lbLbReason(0); r < lbLbReasonLB_R_MAX; r++ {
		var per []uint64
		if err := d.objs.LbReasons.Lookup(uint32(r), &per); err != nil {
			return nil, fmt.Errorf("read reason %d: %w", r, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[ReasonName(uint32(r))] = sum
	}
	return out, nil
}

// ReasonName returns the metric-friendly name of a datapath reason code
// ("fwd", "drop_no_backend", ...), taken from the enum in bpf/lib/types.h
// through the object's BTF, so C stays the single source of the names.
func ReasonName(r uint32) string {
	names := reasonNames()
	if int(r) < len(names) && names[r] != "" {
		return names[r]
	}
	return fmt.Sprintf("reason_%d", r)
}

var reasonNames = sync.OnceValue(func() []string {
	spec, err := loadLb()
	if err != nil {
		return nil
	}
	var e *btf.Enum
	if err := spec.Types.TypeByName("lb_reason", &e); err != nil {
		return nil
	}
	names := make([]string, lbLbReasonLB_R_MAX)
	for _, v := range e.Values {
		if v.Value < uint64(len(names)) {
			names[v.Value] = strings.ToLower(strings.TrimPrefix(v.Name, "LB_R_"))
		}
	}
	return names
})

// Conntrack counts the entries of the connection table (a full walk: for
// status, not for hot paths).
func (d *Datapath) Conntrack() (int, error) {
	var (
		k lbLbFlowKey
		v lbLbCt
		n int
	)
	it := d.objs.LbConntrack.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	return n, it.Err()
}
