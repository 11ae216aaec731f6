// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/model"
)

// FuzzNew feeds arbitrary ranges to New. It must not panic, and a pool set
// it accepts must map each range's ends back to its own pool and allocate
// from it.
func FuzzNew(f *testing.F) {
	f.Add("10.0.0.1", "10.0.0.9", "10.0.0.10", "10.0.0.20", true)
	f.Add("10.0.0.1", "10.0.0.9", "10.0.0.5", "10.0.0.20", false)
	f.Add("fd00::", "fd00::ffff:ffff:ffff:ffff", "10.0.0.0", "10.0.0.255", true)
	f.Add("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0.0.0.0", "255.255.255.255", true)
	f.Add("10.0.0.9", "10.0.0.1", "::ffff:1.2.3.4", "fe80::1%eth0", false)
	f.Fuzz(func(t *testing.T, f1, l1, f2, l2 string, avoid bool) {
		parse := func(s string) netip.Addr { a, _ := netip.ParseAddr(s); return a }
		pools := []model.Pool{
			{Name: "a", Ranges: []model.AddrRange{{First: parse(f1), Last: parse(l1)}}, AutoAssign: true, AvoidBuggyIPs: avoid},
			{Name: "b", Ranges: []model.AddrRange{{First: parse(f2), Last: parse(l2)}}, AutoAssign: true, Priority: 1},
		}
		a, err := New(pools)
		if err != nil {
			return
		}
		for _, p := range pools {
			for _, r := range p.Ranges {
				for _, end := range []netip.Addr{r.First, r.Last} {
					if got, ok := a.PoolOf(end); !ok || got != p.Name {
						t.Fatalf("PoolOf(%s) = %q, %v; want %q", end, got, ok, p.Name)
					}
				}
			}
		}
		specs := map[model.ServiceKey]model.Service{}
		for i, fam := range []model.Family{model.IPv4, model.IPv6, model.IPv4} {
			s := svc(fmt.Sprint(i), fams(fam))
			specs[s.Key] = s
			if got, err := a.Assign(&s); err == nil {
				p, ok := a.PoolOf(got[0])
				if !ok || familyOf(got[0]) != fam || (avoid && p == "a" && buggy(got[0])) {
					t.Fatalf("Assign = %v (pool %q), bad for family %d", got, p, fam)
				}
			}
		}
		checkInvariants(t, a, specs)
		st := a.Stats()
		for _, s := range st {
			if s.Used > s.Total {
				t.Fatalf("pool %s: used %d > total %d", s.Name, s.Used, s.Total)
			}
		}
	})
}

// FuzzAssign drives an allocator over the reference pools plus small
// dual-stack and IPv6 pools with an arbitrary sequence of Assign, Release
// and Restore, checking the invariants (security included) after each.
func FuzzAssign(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 1, 1, 0, 0, 2, 2, 0})
	f.Add([]byte{0, 1, 3, 130, 0, 2, 3, 130, 1, 1, 0, 0, 0, 2, 3, 130})
	f.Add([]byte{2, 3, 0, 140, 0, 3, 0, 0, 0, 4, 4, 5, 0, 5, 4, 6, 1, 4, 0, 0})
	f.Add([]byte{0, 0, 8, 1, 0, 1, 8, 1, 0, 2, 9, 1, 0, 3, 24, 3})
	pools := append(exclusivePools(),
		model.Pool{Name: "dual", Ranges: []model.AddrRange{cidr("10.21.0.0/30"), cidr("fd00::/126")}, AutoAssign: true, Priority: -1},
		model.Pool{Name: "v6", Ranges: []model.AddrRange{cidr("2001:db8::/64")}, AutoAssign: true},
		model.Pool{Name: "manual", Ranges: []model.AddrRange{cidr("10.30.0.0/31")}, AvoidBuggyIPs: true},
	)
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		a, err := New(pools)
		if err != nil {
			t.Fatal(err)
		}
		specs := map[model.ServiceKey]model.Service{}
		for len(ops) >= 4 {
			op, who, flags, b := ops[0], ops[1], ops[2], ops[3]
			ops = ops[4:]
			s := svc(fmt.Sprint(who % 8))
			if flags&1 != 0 {
				external(&s)
			}
			if flags&2 != 0 {
				s.RequestedIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 1, b})}
			}
			if flags&4 != 0 {
				s.Families = []model.Family{model.IPv6, model.IPv4}[:1+int(b%2)]
			}
			if flags&8 != 0 {
				s.SharingKey = fmt.Sprint("k", b%2)
				s.Ports = []model.ServicePort{tcp(uint16(b % 3))}
			}
			if flags&16 != 0 {
				s.RequestedPool = []string{"internal", "external", "dual", "v6", "manual", "none"}[b%6]
			}
			switch op % 3 {
			case 0:
				got, err := a.Assign(&s)
				specs[s.Key] = s
				if err == nil {
					want, _ := families(&s)
					if len(got) != len(want) {
						t.Fatalf("Assign(%+v) = %v, want %d addresses", s, got, len(want))
					}
					for i, addr := range got {
						if familyOf(addr) != want[i] {
							t.Fatalf("Assign(%+v) = %v, family order %v", s, got, want)
						}
					}
				} else if a.Assigned(s.Key) != nil {
					t.Fatalf("failed Assign left %v", a.Assigned(s.Key))
				}
			case 1:
				a.Release(s.Key)
				delete(specs, s.Key)
			case 2:
				ips := []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 1, b})}
				if flags&32 != 0 {
					ips = append(ips, netip.MustParseAddr("2001:db8::").Next())
				}
				_ = a.Restore(&s, ips)
				specs[s.Key] = s
			}
			if err := invariants(a, specs); err != nil {
				t.Fatal(err)
			}
		}
	})
}
