// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/lbd-project/lbd/pkg/model"
)

// labelSel is a minimal model.Selector: every requirement must hold.
// "k=v" needs label k equal to v; "k!=v" needs it absent or different.
type labelSel []string

func (s labelSel) Matches(labels map[string]string) bool {
	for _, req := range s {
		if k, v, ok := strings.Cut(req, "!="); ok {
			if labels[k] == v {
				return false
			}
			continue
		}
		k, v, _ := strings.Cut(req, "=")
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (s labelSel) String() string { return strings.Join(s, ",") }

func rng(first, last string) model.AddrRange {
	return model.AddrRange{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
}

func cidr(s string) model.AddrRange {
	p := netip.MustParsePrefix(s).Masked()
	last := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		last[i/8] |= 1 << (7 - i%8)
	}
	l := netip.AddrFrom16(last)
	if p.Addr().Is4() {
		l = l.Unmap()
	}
	return model.AddrRange{First: p.Addr(), Last: l}
}

// exclusivePools is the reference cluster with disjoint selectors.
func exclusivePools() []model.Pool {
	return []model.Pool{
		{
			Name:            "internal",
			Ranges:          []model.AddrRange{rng("10.20.1.1", "10.20.1.127")},
			AutoAssign:      true,
			ServiceSelector: labelSel{"lb-type!=external"},
		},
		{
			Name:            "external",
			Ranges:          []model.AddrRange{rng("10.20.1.128", "10.20.1.254")},
			AutoAssign:      true,
			ServiceSelector: labelSel{"lb-type=external"},
		},
	}
}

// priorityPools is the reference cluster where internal selects every
// service and external wins for its services by priority.
func priorityPools() []model.Pool {
	return []model.Pool{
		{
			Name:       "internal",
			Ranges:     []model.AddrRange{rng("10.20.1.1", "10.20.1.127")},
			AutoAssign: true,
		},
		{
			Name:            "external",
			Ranges:          []model.AddrRange{rng("10.20.1.128", "10.20.1.254")},
			AutoAssign:      true,
			ServiceSelector: labelSel{"lb-type=external"},
			Priority:        10,
		},
	}
}

func key(name string) model.ServiceKey { return model.ServiceKey{Namespace: "default", Name: name} }

// svc builds a service; opts modify it.
func svc(name string, opts ...func(*model.Service)) model.Service {
	s := model.Service{Key: key(name), Ports: []model.ServicePort{{Port: 80, Protocol: model.TCP}}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func external(s *model.Service) { s.Labels = map[string]string{"lb-type": "external"} }

func wantIPs(ips ...string) func(*model.Service) {
	return func(s *model.Service) { s.RequestedIPs = addrs(ips...) }
}

func inPool(p string) func(*model.Service) { return func(s *model.Service) { s.RequestedPool = p } }

func sharing(k string) func(*model.Service) { return func(s *model.Service) { s.SharingKey = k } }

func ports(ps ...model.ServicePort) func(*model.Service) {
	return func(s *model.Service) { s.Ports = ps }
}

func fams(fs ...model.Family) func(*model.Service) {
	return func(s *model.Service) { s.Families = fs }
}

func tcp(p uint16) model.ServicePort { return model.ServicePort{Port: p, Protocol: model.TCP} }
func udp(p uint16) model.ServicePort { return model.ServicePort{Port: p, Protocol: model.UDP} }

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// checkInvariants verifies what must hold after every operation, from the
// allocator's internals and the last spec of each service (specs).
func checkInvariants(t testing.TB, a *Allocator, specs map[model.ServiceKey]model.Service) {
	t.Helper()
	if err := invariants(a, specs); err != nil {
		t.Fatal(err)
	}
}

func invariants(a *Allocator, specs map[model.ServiceKey]model.Service) error {
	used := map[string]uint64{}
	for addr, h := range a.addrs {
		r := a.rangeOf(addr)
		if r == nil || r != h.rng {
			return fmt.Errorf("%s held but in range %v, recorded %v", addr, r, h.rng)
		}
		used[r.pool.Name]++
		if len(h.holders) == 0 {
			return fmt.Errorf("%s held by nobody", addr)
		}
		for i, k := range h.holders {
			al := a.svcs[k]
			if al == nil || !slices.Contains(al.addrs, addr) {
				return fmt.Errorf("%s lists holder %s which does not hold it", addr, k)
			}
			// The security invariant: the pool selects every holder.
			if spec, ok := specs[k]; ok {
				if why := r.pool.refusal(&spec); why != "" {
					return fmt.Errorf("%s of pool %s held by %s: %s", addr, r.pool.Name, k, why)
				}
			}
			for _, k2 := range h.holders[i+1:] {
				o := a.svcs[k2]
				if al.sharingKey == "" || al.sharingKey != o.sharingKey {
					return fmt.Errorf("%s shared by %s (%q) and %s (%q)", addr, k, al.sharingKey, k2, o.sharingKey)
				}
				if p, ok := collision(al.ports, o.ports); ok {
					return fmt.Errorf("%s shared by %s and %s on %d/%s", addr, k, k2, p.Port, p.Protocol)
				}
			}
		}
	}
	for k, al := range a.svcs {
		seen := map[model.Family]bool{}
		for _, addr := range al.addrs {
			if seen[familyOf(addr)] {
				return fmt.Errorf("%s holds two %s addresses: %v", k, familyName(familyOf(addr)), al.addrs)
			}
			seen[familyOf(addr)] = true
			if h := a.addrs[addr]; h == nil || !slices.Contains(h.holders, k) {
				return fmt.Errorf("%s holds %s but is not its holder", k, addr)
			}
		}
	}
	// The cursor invariant: every address below it is held or unusable.
	for _, r := range a.ranges {
		end := r.next
		for addr, n := r.First, 0; n < 512 && (!end.IsValid() || addr.Less(end)) && r.Contains(addr); addr, n = addr.Next(), n+1 {
			if a.addrs[addr] == nil && !(r.pool.AvoidBuggyIPs && buggy(addr)) {
				return fmt.Errorf("range %s: %s is free but below cursor %s", r.AddrRange, addr, r.next)
			}
		}
	}
	for _, st := range a.Stats() {
		if st.Used != used[st.Name] {
			return fmt.Errorf("pool %s: Stats says %d used, allocator holds %d", st.Name, st.Used, used[st.Name])
		}
	}
	return nil
}
