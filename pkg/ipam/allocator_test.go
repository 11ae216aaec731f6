// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lbd-project/lbd/pkg/model"
)

type opKind int

const (
	opAssign opKind = iota
	opRelease
	opRestore
)

// step is one operation of a stateful scenario and what it must return.
type step struct {
	desc string
	op   opKind
	svc  model.Service
	// restore are the addresses given to Restore.
	restore []string
	// want are the VIPs Assign returns (or, for Restore, what the service
	// holds afterwards).
	want    []string
	wantErr error
	// wantMsg must appear in the error message.
	wantMsg string
}

func assignS(desc string, s model.Service, want ...string) step {
	return step{desc: desc, op: opAssign, svc: s, want: want}
}

func refuseS(desc string, s model.Service, wantErr error, wantMsg string) step {
	return step{desc: desc, op: opAssign, svc: s, wantErr: wantErr, wantMsg: wantMsg}
}

func releaseS(name string) step {
	return step{desc: "release " + name, op: opRelease, svc: svc(name)}
}

func restoreS(desc string, s model.Service, restore []string, wantErr error, want ...string) step {
	return step{desc: desc, op: opRestore, svc: s, restore: restore, wantErr: wantErr, want: want}
}

func runScenario(t *testing.T, pools []model.Pool, steps []step) {
	t.Helper()
	a, err := New(pools)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	specs := map[model.ServiceKey]model.Service{}
	for i, st := range steps {
		var got []netip.Addr
		switch st.op {
		case opAssign:
			s := st.svc
			got, err = a.Assign(&s)
			specs[s.Key] = s
		case opRelease:
			a.Release(st.svc.Key)
			delete(specs, st.svc.Key)
			err = nil
		case opRestore:
			s := st.svc
			err = a.Restore(&s, addrs(st.restore...))
			got = a.Assigned(s.Key)
			specs[s.Key] = s
		}
		if st.wantErr == nil && err != nil {
			t.Fatalf("step %d (%s): unexpected error: %v", i, st.desc, err)
		}
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("step %d (%s): error %v, want one wrapping %v", i, st.desc, err, st.wantErr)
			}
			if !strings.Contains(err.Error(), st.wantMsg) {
				t.Fatalf("step %d (%s): error %q does not say %q", i, st.desc, err, st.wantMsg)
			}
		}
		if st.op != opRelease && (st.wantErr == nil || st.op == opRestore) {
			if diff := cmp.Diff(addrs(st.want...), got, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("step %d (%s): VIPs (-want +got):\n%s", i, st.desc, diff)
			}
		}
		if st.op == opAssign && st.wantErr != nil {
			if held := a.Assigned(st.svc.Key); held != nil {
				t.Fatalf("step %d (%s): failed Assign left %v held", i, st.desc, held)
			}
		}
		checkInvariants(t, a, specs)
	}
}

func TestReferenceCluster(t *testing.T) {
	steps := []step{
		assignS("internal auto gets the lowest internal address", svc("foo"), "10.20.1.1"),
		assignS("external auto gets .128 first", svc("ext1", external), "10.20.1.128"),
		assignS("second external gets .129", svc("ext2", external), "10.20.1.129"),
		refuseS("internal requesting an external address is refused with the reason",
			svc("bar", wantIPs("10.20.1.130")), ErrNotAllowed,
			"10.20.1.130 is in pool external whose serviceSelector lb-type=external does not select default/bar"),
		refuseS("internal requesting the external pool is refused",
			svc("bar", inPool("external")), ErrNotAllowed,
			"requested pool external: serviceSelector lb-type=external does not select default/bar"),
		refuseS("internal with a held VIP that then asks for an external one loses nothing to external",
			svc("foo", wantIPs("10.20.1.200")), ErrNotAllowed,
			"10.20.1.200 is in pool external whose serviceSelector lb-type=external does not select default/foo"),
		assignS("a failed Assign released foo's .1", svc("baz"), "10.20.1.1"),
		assignS("external may request an external address", svc("ext3", external, wantIPs("10.20.1.200")), "10.20.1.200"),
		assignS("external may request the external pool", svc("ext4", external, inPool("external")), "10.20.1.130"),
		assignS("external losing its label moves to internal", svc("ext1"), "10.20.1.2"),
		assignS("the freed external address is reused", svc("ext5", external), "10.20.1.128"),
		refuseS("requested address in no pool", svc("far", wantIPs("192.0.2.1")), ErrNoPool, "192.0.2.1 is in no pool"),
		refuseS("requested pool that does not exist", svc("far", inPool("nope")), ErrNoPool, "requested pool nope does not exist"),
	}
	for _, tc := range []struct {
		name  string
		pools []model.Pool
	}{
		{"exclusive selectors", exclusivePools()},
		{"priority", priorityPools()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := steps
			if tc.name == "priority" {
				// Internal selects everything here, so an external
				// service may also request an internal address; the
				// refusals above do not depend on that.
				st = append(st[:len(st):len(st)],
					assignS("external may request internal", svc("ext6", external, wantIPs("10.20.1.100")), "10.20.1.100"))
			} else {
				st = append(st[:len(st):len(st)],
					refuseS("external may not request internal", svc("ext6", external, wantIPs("10.20.1.100")), ErrNotAllowed,
						"10.20.1.100 is in pool internal whose serviceSelector lb-type!=external does not select default/ext6"))
			}
			runScenario(t, tc.pools, st)
		})
	}
}

func TestRequestedIPs(t *testing.T) {
	runScenario(t, exclusivePools(), []step{
		assignS("requested address honoured", svc("a", wantIPs("10.20.1.50")), "10.20.1.50"),
		assignS("auto skips nothing below it", svc("b"), "10.20.1.1"),
		refuseS("requested address held by a service without sharing key", svc("c", wantIPs("10.20.1.50")), ErrInUse,
			"10.20.1.50 is held by default/a and default/c has no sharing key"),
		assignS("changing the request moves the service", svc("a", wantIPs("10.20.1.51")), "10.20.1.51"),
		assignS("and frees the old one", svc("c", wantIPs("10.20.1.50")), "10.20.1.50"),
		assignS("same spec again keeps everything", svc("a", wantIPs("10.20.1.51")), "10.20.1.51"),
		refuseS("two addresses of one family", svc("d", external, inPool("external"), wantIPs("10.20.1.129", "10.20.1.5")),
			ErrInvalid, "two IPv4 addresses"),
		refuseS("request of a family not wanted", svc("d", fams(model.IPv4), wantIPs("2001:db8::1")),
			ErrInvalid, "requests IPv6 address 2001:db8::1 but does not want IPv6"),
		refuseS("request not covering every family", svc("d", fams(model.IPv4, model.IPv6), wantIPs("10.20.1.9")),
			ErrInvalid, "none of family IPv6"),
		assignS("IPv4-mapped request is unmapped", svc("d", wantIPs("::ffff:10.20.1.9")), "10.20.1.9"),
	})
}

func TestRequestedPoolWithoutAutoAssign(t *testing.T) {
	pools := append(exclusivePools(), model.Pool{
		Name:   "manual",
		Ranges: []model.AddrRange{cidr("10.30.0.0/30")},
	})
	runScenario(t, pools, []step{
		assignS("requested pool is used even without autoAssign", svc("a", inPool("manual")), "10.30.0.0"),
		assignS("request by IP inside it", svc("b", wantIPs("10.30.0.3")), "10.30.0.3"),
		refuseS("IP outside the requested pool", svc("c", inPool("manual"), wantIPs("10.20.1.5")), ErrNotAllowed,
			"10.20.1.5 is in pool internal, not in requested pool manual"),
		assignS("auto never picks it", svc("d"), "10.20.1.1"),
		assignS("requested pool fills up", svc("e", inPool("manual")), "10.30.0.1"),
		assignS("to the last", svc("f", inPool("manual")), "10.30.0.2"),
		refuseS("then exhausts", svc("g", inPool("manual")), ErrPoolExhausted, "no free IPv4 address for default/g in pool manual (4 in use of 4)"),
		assignS("dropping the pool request keeps the address: manual still selects a", svc("a"), "10.30.0.0"),
		refuseS("so manual is still full", svc("g", inPool("manual")), ErrPoolExhausted, ""),
		releaseS("a"),
		assignS("releasing frees manual's first address", svc("g", inPool("manual")), "10.30.0.0"),
	})
}

func TestRestoreThenAssign(t *testing.T) {
	runScenario(t, exclusivePools(), []step{
		restoreS("restore an internal VIP", svc("a"), []string{"10.20.1.7"}, nil, "10.20.1.7"),
		restoreS("restore an external VIP", svc("b", external), []string{"10.20.1.128"}, nil, "10.20.1.128"),
		restoreS("restore conflicting with a", svc("c"), []string{"10.20.1.7"}, ErrInUse),
		restoreS("restore of an internal service on an external VIP is refused", svc("d"), []string{"10.20.1.140"}, ErrNotAllowed),
		restoreS("restore from a removed pool", svc("e"), []string{"10.99.0.1"}, ErrNoPool),
		assignS("new service gets .1, not a restored VIP", svc("new"), "10.20.1.1"),
		assignS("new external skips the restored .128", svc("new-ext", external), "10.20.1.129"),
		assignS("restored a keeps its VIP", svc("a"), "10.20.1.7"),
		assignS("restored b keeps its VIP", svc("b", external), "10.20.1.128"),
		assignS("c, refused on restore, gets a fresh internal one", svc("c"), "10.20.1.2"),
		assignS("d, refused on restore, gets an internal one", svc("d"), "10.20.1.3"),
	})
}

func TestRestorePartialDualStack(t *testing.T) {
	pools := []model.Pool{{
		Name:       "dual",
		Ranges:     []model.AddrRange{cidr("10.0.0.0/24"), cidr("2001:db8::/120")},
		AutoAssign: true,
	}}
	ds := svc("ds", fams(model.IPv4, model.IPv6))
	runScenario(t, pools, []step{
		restoreS("v6 from a removed pool is dropped, v4 kept", ds, []string{"10.0.0.9", "2001:db8:1::5"}, ErrNoPool, "10.0.0.9"),
		assignS("assign keeps v4 and fills v6 from the same pool", ds, "10.0.0.9", "2001:db8::"),
		restoreS("two addresses of one family", svc("x"), []string{"10.0.0.20", "10.0.0.21"}, ErrInvalid, "10.0.0.20"),
		assignS("service going single-stack keeps its v4", svc("ds", fams(model.IPv4)), "10.0.0.9"),
		assignS("and the v6 is free again", svc("v6", fams(model.IPv6)), "2001:db8::"),
	})
}

func TestSharing(t *testing.T) {
	runScenario(t, exclusivePools(), []step{
		assignS("first of key K", svc("a", sharing("K"), ports(tcp(80))), "10.20.1.1"),
		assignS("second of key K with other port shares", svc("b", sharing("K"), ports(tcp(443))), "10.20.1.1"),
		assignS("third of key K colliding on 80/TCP gets its own", svc("c", sharing("K"), ports(tcp(80))), "10.20.1.2"),
		assignS("80/UDP does not collide with 80/TCP", svc("d", sharing("K"), ports(udp(80))), "10.20.1.1"),
		assignS("other key never shares", svc("e", sharing("L"), ports(tcp(8080))), "10.20.1.3"),
		refuseS("requesting a K address with key L", svc("f", sharing("L"), ports(tcp(9)), wantIPs("10.20.1.1")), ErrInUse,
			`10.20.1.1 is held by default/a with sharing key "K", not "L"`),
		refuseS("requesting a K address without key", svc("f", ports(tcp(9)), wantIPs("10.20.1.1")), ErrInUse,
			"10.20.1.1 is held by default/a and default/f has no sharing key"),
		refuseS("requesting a K address with a colliding port", svc("f", sharing("K"), ports(tcp(443)), wantIPs("10.20.1.1")), ErrInUse,
			"10.20.1.1 is held by default/b, which also uses port 443/TCP"),
		assignS("requesting a K address with free ports", svc("f", sharing("K"), ports(tcp(9)), wantIPs("10.20.1.1")), "10.20.1.1"),
		assignS("a port change that collides moves b", svc("b", sharing("K"), ports(tcp(9))), "10.20.1.2"),
		releaseS("a"),
		releaseS("d"),
		releaseS("f"),
		assignS("released shared address is free once the last holder goes", svc("h"), "10.20.1.1"),
		releaseS("c"),
		assignS("shared .2 is still held by b", svc("i"), "10.20.1.4"),
	})
}

func TestExhaustionAndRelease(t *testing.T) {
	pools := []model.Pool{{Name: "tiny", Ranges: []model.AddrRange{rng("10.0.0.1", "10.0.0.3")}, AutoAssign: true}}
	runScenario(t, pools, []step{
		assignS("1", svc("a"), "10.0.0.1"),
		assignS("2", svc("b"), "10.0.0.2"),
		assignS("3", svc("c"), "10.0.0.3"),
		refuseS("4 exhausts", svc("d"), ErrPoolExhausted, "no free IPv4 address in pool tiny"),
		releaseS("b"),
		assignS("release frees", svc("d"), "10.0.0.2"),
		refuseS("full again", svc("e"), ErrPoolExhausted, ""),
		releaseS("c"),
		releaseS("a"),
		assignS("lowest free first after release", svc("e"), "10.0.0.1"),
	})
}

func TestAvoidBuggyIPs(t *testing.T) {
	for _, avoid := range []bool{true, false} {
		name := "avoid"
		want := []string{"10.0.0.254", "10.0.1.1", ""}
		if !avoid {
			name = "allow"
			want = []string{"10.0.0.254", "10.0.0.255", "10.0.1.0"}
		}
		t.Run(name, func(t *testing.T) {
			pools := []model.Pool{{
				Name: "p", Ranges: []model.AddrRange{rng("10.0.0.254", "10.0.1.1")}, AutoAssign: true, AvoidBuggyIPs: avoid,
			}}
			steps := []step{assignS("first", svc("a"), want[0]), assignS("second", svc("b"), want[1])}
			if avoid {
				steps = append(steps,
					refuseS("third exhausts", svc("c"), ErrPoolExhausted, ""),
					refuseS("requesting .255", svc("c", wantIPs("10.0.0.255")), ErrNotAllowed,
						"10.0.0.255 ends in .0 or .255 and pool p avoids buggy IPs"),
					refuseS("requesting .0", svc("c", wantIPs("10.0.1.0")), ErrNotAllowed, "avoids buggy IPs"),
					restoreS("a .255 already in use is restored", svc("c"), []string{"10.0.0.255"}, nil, "10.0.0.255"),
					assignS("and kept by Assign: moving a working VIP is worse", svc("c"), "10.0.0.255"),
					releaseS("c"),
					refuseS("once released it is avoided again", svc("d"), ErrPoolExhausted, ""))
			} else {
				steps = append(steps, assignS("third", svc("c"), want[2]))
			}
			runScenario(t, pools, steps)
			a, err := New(pools)
			if err != nil {
				t.Fatal(err)
			}
			wantTotal := uint64(4)
			if avoid {
				wantTotal = 2
			}
			if got := a.Stats()[0].Total; got != wantTotal {
				t.Errorf("Total = %d, want %d", got, wantTotal)
			}
		})
	}
}

func TestDualStack(t *testing.T) {
	pools := []model.Pool{
		{Name: "dual", Ranges: []model.AddrRange{cidr("10.0.0.0/24"), cidr("fd00::/120")}, AutoAssign: true},
		{Name: "v4only", Ranges: []model.AddrRange{cidr("10.1.0.0/24")}, AutoAssign: true, Priority: 5},
		{Name: "v6only", Ranges: []model.AddrRange{cidr("fd01::/120")}, AutoAssign: true, Priority: 5},
	}
	runScenario(t, pools, []step{
		assignS("v4 service prefers the higher-priority v4 pool", svc("a"), "10.1.0.0"),
		assignS("v6 service prefers the higher-priority v6 pool", svc("b", fams(model.IPv6)), "fd01::"),
		assignS("dual-stack goes to the one dual pool, in family order", svc("c", fams(model.IPv6, model.IPv4)), "fd00::", "10.0.0.0"),
		assignS("dual-stack request by IP", svc("d", fams(model.IPv4, model.IPv6), wantIPs("fd00::9", "10.0.0.9")), "10.0.0.9", "fd00::9"),
		assignS("families inferred from the request", svc("e", wantIPs("fd01::7")), "fd01::7"),
		assignS("dual pool requested", svc("f", fams(model.IPv4, model.IPv6), inPool("dual")), "10.0.0.1", "fd00::1"),
		refuseS("v6 from a v4-only pool", svc("g", fams(model.IPv6), inPool("v4only")), ErrNoPool, "pool v4only has no IPv6 range"),
		refuseS("unknown family", svc("g", fams(5)), ErrInvalid, "unknown address family 5"),
	})
}

func TestDualStackNoPool(t *testing.T) {
	pools := []model.Pool{
		{Name: "v4", Ranges: []model.AddrRange{cidr("10.1.0.0/24")}, AutoAssign: true},
		{Name: "v6", Ranges: []model.AddrRange{cidr("fd01::/120")}, AutoAssign: true},
	}
	runScenario(t, pools, []step{
		refuseS("no single pool has both families", svc("a", fams(model.IPv4, model.IPv6)), ErrNoPool,
			"no pool auto-assigns IPv4+IPv6 address to default/a (v4: no IPv6 range; v6: no IPv4 range)"),
	})
}

func TestNamespaceSelector(t *testing.T) {
	pools := []model.Pool{
		{Name: "team-a", Ranges: []model.AddrRange{cidr("10.0.0.0/29")}, AutoAssign: true, Priority: 1, NamespaceSelector: labelSel{"team=a"}},
		{Name: "rest", Ranges: []model.AddrRange{cidr("10.0.1.0/29")}, AutoAssign: false},
	}
	teamA := func(s *model.Service) { s.NamespaceLabels = map[string]string{"team": "a"} }
	runScenario(t, pools, []step{
		assignS("namespace selected", svc("a", teamA), "10.0.0.0"),
		refuseS("other namespace with only a manual pool", svc("b"), ErrNoPool,
			"no pool auto-assigns IPv4 address to default/b (team-a: namespaceSelector team=a does not select namespace default of default/b; rest: autoAssign is off)"),
		refuseS("requesting a team-a address from elsewhere", svc("b", wantIPs("10.0.0.5")), ErrNotAllowed,
			"10.0.0.5 is in pool team-a whose namespaceSelector team=a does not select namespace default of default/b"),
	})
}

func TestIPv6Slash64(t *testing.T) {
	pools := []model.Pool{{Name: "v6", Ranges: []model.AddrRange{cidr("2001:db8::/64")}, AutoAssign: true}}
	v6 := fams(model.IPv6)
	runScenario(t, pools, []step{
		assignS("first", svc("a", v6), "2001:db8::"),
		assignS("second", svc("b", v6), "2001:db8::1"),
		assignS("request at the top of the /64", svc("c", v6, wantIPs("2001:db8::ffff:ffff:ffff:ffff")), "2001:db8::ffff:ffff:ffff:ffff"),
		releaseS("a"),
		assignS("released low address reused", svc("d", v6), "2001:db8::"),
		assignS("next", svc("e", v6), "2001:db8::2"),
	})
	a, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Stats(); !cmp.Equal(got, []PoolStats{{Name: "v6", Total: math.MaxUint64}}) {
		t.Errorf("Stats = %+v, want Total saturated at MaxUint64", got)
	}
}

// TestProbeCap fills more than maxProbes consecutive addresses of a /64 by
// restoring them, so the search from the bottom hits the cap once and
// resumes on the next call.
func TestProbeCap(t *testing.T) {
	if testing.Short() {
		t.Skip("restores 65537 addresses")
	}
	pools := []model.Pool{{Name: "v6", Ranges: []model.AddrRange{cidr("2001:db8::/64")}, AutoAssign: true}}
	a, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("2001:db8::")
	for i := range maxProbes + 1 {
		s := svc("r" + strconv.Itoa(i))
		if err := a.Restore(&s, []netip.Addr{addr}); err != nil {
			t.Fatal(err)
		}
		addr = addr.Next()
	}
	s := svc("new", fams(model.IPv6))
	if _, err := a.Assign(&s); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("first Assign past the cap: %v, want ErrPoolExhausted", err)
	}
	got, err := a.Assign(&s)
	if err != nil {
		t.Fatalf("second Assign resumes from the cursor: %v", err)
	}
	if want := addrs("2001:db8::1:1"); !cmp.Equal(got, want, cmpopts.EquateComparable(netip.Addr{})) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRangeSize(t *testing.T) {
	for _, tc := range []struct {
		r     model.AddrRange
		avoid bool
		want  uint64
	}{
		{rng("10.0.0.1", "10.0.0.1"), false, 1},
		{cidr("10.0.0.0/24"), false, 256},
		{cidr("10.0.0.0/24"), true, 254},
		{cidr("10.0.0.0/23"), true, 508},
		{rng("10.0.0.255", "10.0.1.0"), true, 0},
		{rng("10.0.0.5", "10.0.0.9"), true, 5},
		{cidr("0.0.0.0/0"), false, 1 << 32},
		{cidr("0.0.0.0/0"), true, 1<<32 - 2*(1<<24)},
		{cidr("2001:db8::/120"), false, 256},
		{cidr("2001:db8::/120"), true, 256}, // IPv6 has no buggy addresses
		{cidr("2001:db8::/65"), false, 1 << 63},
		{cidr("2001:db8::/64"), false, math.MaxUint64},
		{cidr("::/0"), false, math.MaxUint64},
		{rng("2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"), false, 2}, // borrow across the 64-bit halves
	} {
		if got := rangeSize(tc.r, tc.avoid); got != tc.want {
			t.Errorf("rangeSize(%s, avoid=%v) = %d, want %d", tc.r, tc.avoid, got, tc.want)
		}
	}
}

func TestStatsAndPoolOf(t *testing.T) {
	a, err := New(exclusivePools())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []model.Service{svc("a"), svc("b"), svc("c", external), svc("d", sharing("K")), svc("e", sharing("K"), ports(tcp(1)))} {
		if _, err := a.Assign(&s); err != nil {
			t.Fatal(err)
		}
	}
	want := []PoolStats{{Name: "external", Total: 127, Used: 1}, {Name: "internal", Total: 127, Used: 3}}
	if diff := cmp.Diff(want, a.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		addr   string
		pool   string
		inPool bool
	}{
		{"10.20.1.1", "internal", true},
		{"10.20.1.127", "internal", true},
		{"10.20.1.128", "external", true},
		{"10.20.1.254", "external", true},
		{"10.20.1.0", "", false},
		{"10.20.1.255", "", false},
		{"::ffff:10.20.1.200", "external", true},
		{"2001:db8::1", "", false},
	} {
		p, ok := a.PoolOf(netip.MustParseAddr(tc.addr))
		if p != tc.pool || ok != tc.inPool {
			t.Errorf("PoolOf(%s) = %q, %v; want %q, %v", tc.addr, p, ok, tc.pool, tc.inPool)
		}
	}
}

func TestNewValidation(t *testing.T) {
	ok := func(name string, rs ...model.AddrRange) model.Pool { return model.Pool{Name: name, Ranges: rs} }
	for _, tc := range []struct {
		name    string
		pools   []model.Pool
		wantMsg string // "" means valid
	}{
		{"reference", exclusivePools(), ""},
		{"no pools", nil, ""},
		{"adjacent ranges across pools", []model.Pool{ok("a", rng("10.0.0.0", "10.0.0.9")), ok("b", rng("10.0.0.10", "10.0.0.20"))}, ""},
		{"dual-stack", []model.Pool{ok("a", cidr("10.0.0.0/24"), cidr("fd00::/64"))}, ""},
		{"overlap across pools", []model.Pool{ok("a", cidr("10.0.0.0/24")), ok("b", rng("10.0.0.255", "10.0.1.5"))},
			"range 10.0.0.255-10.0.1.5 of pool b overlaps range 10.0.0.0-10.0.0.255 of pool a"},
		{"overlap within a pool", []model.Pool{ok("a", cidr("fd00::/64"), cidr("fd00::/120"))}, "of pool a overlaps"},
		{"first after last", []model.Pool{ok("a", rng("10.0.0.9", "10.0.0.1"))}, "first is after last"},
		{"mixed family", []model.Pool{ok("a", rng("10.0.0.1", "fd00::1"))}, "different families"},
		{"duplicate name", []model.Pool{ok("a", cidr("10.0.0.0/24")), ok("a", cidr("10.0.1.0/24"))}, "pool a: duplicate name"},
		{"empty name", []model.Pool{ok("", cidr("10.0.0.0/24"))}, "pool #0: empty name"},
		{"no ranges", []model.Pool{ok("a")}, "pool a: no address ranges"},
		{"zero address", []model.Pool{ok("a", model.AddrRange{})}, "invalid address"},
		{"mapped", []model.Pool{ok("a", rng("::ffff:10.0.0.1", "::ffff:10.0.0.2"))}, "IPv4-mapped"},
		{"zone", []model.Pool{ok("a", rng("fe80::1%eth0", "fe80::2%eth0"))}, "zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.pools)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("New: %v, want error saying %q", err, tc.wantMsg)
			}
		})
	}
}

func TestNewDoesNotAliasInput(t *testing.T) {
	pools := exclusivePools()
	a, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	pools[0].Ranges[0] = rng("10.20.1.128", "10.20.1.254") // would now overlap
	s := svc("a")
	got, err := a.Assign(&s)
	if err != nil || got[0] != netip.MustParseAddr("10.20.1.1") {
		t.Fatalf("Assign after caller mutated its pools = %v, %v", got, err)
	}
}
