// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lbd-project/lbd/pkg/model"
)

// flat is a Result with errors as strings, for comparison.
type flat struct {
	VIPs       []netip.Addr
	Err        string
	RestoreErr string
}

func flatten(res map[model.ServiceKey]Result) map[model.ServiceKey]flat {
	out := make(map[model.ServiceKey]flat, len(res))
	for k, r := range res {
		f := flat{VIPs: r.VIPs}
		if r.Err != nil {
			f.Err = r.Err.Error()
		}
		if r.RestoreErr != nil {
			f.RestoreErr = r.RestoreErr.Error()
		}
		out[k] = f
	}
	return out
}

var cmpAddr = cmpopts.EquateComparable(netip.Addr{})

func TestAllocate(t *testing.T) {
	svcs := []model.Service{
		svc("zz-wants-1", wantIPs("10.20.1.1")),
		svc("aa-auto"),
		svc("mm-restored", func(s *model.Service) { s.VIPs = addrs("10.20.1.2") }),
		svc("ext", external),
		svc("ext-restored-wrong", func(s *model.Service) { s.VIPs = addrs("10.20.1.200") }),
		svc("gone-pool", func(s *model.Service) { s.VIPs = addrs("192.0.2.7") }),
		svc("shared-1", sharing("K"), ports(tcp(80))),
		svc("shared-2", sharing("K"), ports(tcp(443))),
		svc("no-v6", fams(model.IPv6)),
	}
	in := slices.Clone(svcs)
	res, err := Allocate(exclusivePools(), svcs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, svcs, cmpAddr); diff != "" {
		t.Errorf("Allocate modified its input (-before +after):\n%s", diff)
	}
	want := map[model.ServiceKey][]netip.Addr{
		key("zz-wants-1"):         addrs("10.20.1.1"), // requests go before auto, whatever the key order
		key("mm-restored"):        addrs("10.20.1.2"), // restored before anything is assigned
		key("aa-auto"):            addrs("10.20.1.3"),
		key("ext"):                addrs("10.20.1.128"),
		key("ext-restored-wrong"): addrs("10.20.1.4"), // refused on restore: internal never keeps external
		key("gone-pool"):          addrs("10.20.1.5"),
		key("shared-1"):           addrs("10.20.1.6"),
		key("shared-2"):           addrs("10.20.1.6"),
		key("no-v6"):              nil,
	}
	got := map[model.ServiceKey][]netip.Addr{}
	for k, r := range res {
		got[k] = r.VIPs
	}
	if diff := cmp.Diff(want, got, cmpAddr, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
	for k, wantErr := range map[model.ServiceKey]struct{ restore, assign error }{
		key("ext-restored-wrong"): {restore: ErrNotAllowed},
		key("gone-pool"):          {restore: ErrNoPool},
		key("no-v6"):              {assign: ErrNoPool},
	} {
		if r := res[k]; !errors.Is(r.RestoreErr, wantErr.restore) || !errors.Is(r.Err, wantErr.assign) ||
			(wantErr.restore == nil) != (r.RestoreErr == nil) || (wantErr.assign == nil) != (r.Err == nil) {
			t.Errorf("%s: RestoreErr %v, Err %v; want %v, %v", k, r.RestoreErr, r.Err, wantErr.restore, wantErr.assign)
		}
	}
	if _, err := Allocate(exclusivePools(), []model.Service{svc("a"), svc("a")}); err == nil {
		t.Error("Allocate accepted a duplicate service key")
	}
	if _, err := Allocate([]model.Pool{{Name: "bad"}}, nil); err == nil {
		t.Error("Allocate accepted an invalid pool")
	}
}

// randomServices builds n services exercising every feature, from a seed.
func randomServices(n int, seed uint64) []model.Service {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]model.Service, 0, n)
	for i := range n {
		s := svc(fmt.Sprintf("svc-%05d", i), ports(tcp(uint16(80+r.IntN(3)))))
		s.Key.Namespace = fmt.Sprintf("ns-%d", r.IntN(4))
		switch r.IntN(10) {
		case 0:
			external(&s)
		case 1:
			s.SharingKey = fmt.Sprintf("k%d", r.IntN(5))
		case 2:
			s.VIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 1, byte(1 + r.IntN(254))})}
		case 3:
			s.RequestedIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 1, byte(1 + r.IntN(254))})}
		case 4:
			s.Families = []model.Family{model.IPv4, model.IPv6}
		case 5:
			s.RequestedPool = "external"
			external(&s)
		}
		out = append(out, s)
	}
	return out
}

func dualPools() []model.Pool {
	pools := exclusivePools()
	pools = append(pools, model.Pool{
		Name:       "dual",
		Ranges:     []model.AddrRange{cidr("10.21.0.0/24"), cidr("fd00::/64")},
		AutoAssign: true,
		Priority:   -1,
	})
	return pools
}

func TestAllocateDeterministic(t *testing.T) {
	svcs := randomServices(400, 42)
	pools := dualPools()
	first, err := Allocate(pools, svcs)
	if err != nil {
		t.Fatal(err)
	}
	want := flatten(first)
	var ok, failed int
	for _, r := range first {
		if r.Err == nil {
			ok++
		} else {
			failed++
		}
	}
	// The input must exercise both outcomes for the comparison to mean
	// something.
	if ok < 100 || failed < 10 {
		t.Fatalf("degenerate input: %d assigned, %d failed", ok, failed)
	}
	r := rand.New(rand.NewPCG(7, 7))
	for i := range 5 {
		shuffled := slices.Clone(svcs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		p := slices.Clone(pools)
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		got, err := Allocate(p, shuffled)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, flatten(got), cmpAddr); diff != "" {
			t.Fatalf("shuffle %d: results differ (-first +shuffled):\n%s", i, diff)
		}
	}

	// The results also satisfy the invariants when replayed into an
	// allocator: no internal service on an external address, sharing only
	// when allowed.
	a, err := New(pools)
	if err != nil {
		t.Fatal(err)
	}
	specs := map[model.ServiceKey]model.Service{}
	for _, s := range svcs {
		specs[s.Key] = s
		if r := first[s.Key]; r.Err == nil {
			if err := a.Restore(&s, r.VIPs); err != nil {
				t.Fatalf("replaying %s: %v", s.Key, err)
			}
		}
	}
	checkInvariants(t, a, specs)
}

// TestRestartKeepsEverything is the leader restart: allocate, then build a
// new allocator, restore everything from "status" in random order and
// re-assign: nothing may move.
func TestRestartKeepsEverything(t *testing.T) {
	svcs := randomServices(300, 3)
	res, err := Allocate(dualPools(), svcs)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(dualPools())
	if err != nil {
		t.Fatal(err)
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(len(svcs))
	for _, i := range order {
		s := svcs[i]
		if err := a.Restore(&s, res[s.Key].VIPs); err != nil {
			t.Fatalf("restore %s: %v", s.Key, err)
		}
	}
	for _, i := range order {
		s := svcs[i]
		got, err := a.Assign(&s)
		want := res[s.Key]
		if want.Err != nil {
			continue // it had nothing; what it gets now is not a move
		}
		if err != nil {
			t.Fatalf("re-assign %s: %v", s.Key, err)
		}
		if !cmp.Equal(want.VIPs, got, cmpAddr) {
			t.Fatalf("%s moved from %v to %v after restart", s.Key, want.VIPs, got)
		}
	}
}

func TestPoolRemovedRestore(t *testing.T) {
	a, err := New(exclusivePools())
	if err != nil {
		t.Fatal(err)
	}
	s := svc("a", external)
	vips, err := a.Assign(&s)
	if err != nil {
		t.Fatal(err)
	}
	// The operator removes the external pool.
	b, err := New(exclusivePools()[:1])
	if err != nil {
		t.Fatal(err)
	}
	err = b.Restore(&s, vips)
	if !errors.Is(err, ErrNoPool) {
		t.Fatalf("Restore after pool removal: %v, want ErrNoPool", err)
	}
	want := "restoring default/a: no pool: 10.20.1.128 is in no pool"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got := b.Assigned(s.Key); got != nil {
		t.Errorf("refused address recorded: %v", got)
	}
	// The external service is not selected by internal: it gets nothing
	// rather than an internal address it did not qualify for.
	if _, err := b.Assign(&s); !errors.Is(err, ErrNoPool) {
		t.Errorf("Assign after removal: %v, want ErrNoPool", err)
	}
}
