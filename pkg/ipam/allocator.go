// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/pkg/model"
)

// Allocator assigns VIPs from a fixed set of pools and remembers which
// service holds which address. Build one with [New]; when the pools change,
// build a new one and [Allocator.Restore] the current allocations into it.
//
// An Allocator is not safe for concurrent use.
type Allocator struct {
	// pools in selection order: Priority descending, then name.
	pools  []*pool
	byName map[string]*pool
	// ranges of every pool sorted by netip.Addr.Compare (IPv4 first), for
	// address-to-pool lookups by binary search.
	ranges []*rangeState
	// addrs holds every address in use and who uses it.
	addrs map[netip.Addr]*holding
	// svcs holds every service's allocation.
	svcs map[model.ServiceKey]*allocation
	// shared indexes the addresses held under each non-empty sharing key,
	// so that auto-assignment finds a shareable address without scanning
	// every service.
	shared map[string]map[netip.Addr]struct{}
}

type pool struct {
	model.Pool
	// ranges sorted by First, IPv4 before IPv6.
	ranges []*rangeState
	// used counts distinct addresses in use (a shared address counts
	// once), per family: [0] IPv4, [1] IPv6.
	used [2]uint64
}

func famIndex(f model.Family) int {
	if f == model.IPv4 {
		return 0
	}
	return 1
}

type rangeState struct {
	model.AddrRange
	pool *pool
	// next is the search cursor: every address in [First, next) is in use
	// or unusable (.0/.255 with AvoidBuggyIPs). Invalid (zero) when the
	// whole range is. Releasing an address below it moves it back down, so
	// the lowest free address is always found at or after next.
	next netip.Addr
}

// holding is one address in use.
type holding struct {
	rng *rangeState
	// holders sorted by key; more than one only when they share.
	holders []model.ServiceKey
}

// allocation is what one service holds.
type allocation struct {
	sharingKey string
	ports      []model.ServicePort
	// addrs has at most one address per family, in the order the service
	// listed its families.
	addrs []netip.Addr
}

// New validates pools and returns an allocator with no allocations.
//
// Pools must have unique, non-empty names and at least one range; every
// range must have First <= Last, both of one family, without zone and not
// IPv4-mapped IPv6; no two ranges, of the same pool or of different pools,
// may overlap. All problems are reported at once, joined.
func New(pools []model.Pool) (*Allocator, error) {
	a := &Allocator{
		byName: make(map[string]*pool, len(pools)),
		addrs:  make(map[netip.Addr]*holding),
		svcs:   make(map[model.ServiceKey]*allocation),
		shared: make(map[string]map[netip.Addr]struct{}),
	}
	var errs []error
	for i := range pools {
		mp := pools[i]
		name := mp.Name
		if name == "" {
			errs = append(errs, fmt.Errorf("pool #%d: empty name", i))
			name = fmt.Sprintf("#%d", i)
		} else if _, dup := a.byName[name]; dup {
			errs = append(errs, fmt.Errorf("pool %s: duplicate name", name))
			continue
		}
		if len(mp.Ranges) == 0 {
			errs = append(errs, fmt.Errorf("pool %s: no address ranges", name))
		}
		p := &pool{Pool: mp}
		// Do not alias the caller's slice: the pool is ours from now on.
		p.Pool.Ranges = slices.Clone(mp.Ranges)
		for _, r := range p.Pool.Ranges {
			if err := checkRange(r); err != nil {
				errs = append(errs, fmt.Errorf("pool %s: %w", name, err))
				continue
			}
			rs := &rangeState{AddrRange: r, pool: p, next: r.First}
			p.ranges = append(p.ranges, rs)
			a.ranges = append(a.ranges, rs)
		}
		slices.SortFunc(p.ranges, func(x, y *rangeState) int { return x.First.Compare(y.First) })
		a.byName[name] = p
		a.pools = append(a.pools, p)
	}
	slices.SortFunc(a.ranges, func(x, y *rangeState) int {
		return cmp.Or(x.First.Compare(y.First), x.Last.Compare(y.Last))
	})
	for i := 1; i < len(a.ranges); i++ {
		prev, cur := a.ranges[i-1], a.ranges[i]
		if cur.First.Compare(prev.Last) <= 0 {
			errs = append(errs, fmt.Errorf("range %s of pool %s overlaps range %s of pool %s",
				cur.AddrRange, cur.pool.Name, prev.AddrRange, prev.pool.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("validating pools: %w", err)
	}
	slices.SortFunc(a.pools, func(x, y *pool) int {
		return cmp.Or(cmp.Compare(y.Priority, x.Priority), strings.Compare(x.Name, y.Name))
	})
	return a, nil
}

func checkRange(r model.AddrRange) error {
	switch {
	case !r.First.IsValid() || !r.Last.IsValid():
		return fmt.Errorf("range %s: invalid address", r)
	case r.First.Zone() != "" || r.Last.Zone() != "":
		return fmt.Errorf("range %s: addresses must not have a zone", r)
	case r.First.Is4In6() || r.Last.Is4In6():
		return fmt.Errorf("range %s: use the IPv4 form, not IPv4-mapped IPv6", r)
	case r.First.BitLen() != r.Last.BitLen():
		return fmt.Errorf("range %s: first and last are of different families", r)
	case r.Last.Less(r.First):
		return fmt.Errorf("range %s: first is after last", r)
	}
	return nil
}

// rangeOf returns the range containing addr, or nil.
func (a *Allocator) rangeOf(addr netip.Addr) *rangeState {
	i, _ := slices.BinarySearchFunc(a.ranges, addr, func(r *rangeState, t netip.Addr) int {
		// Find the first range whose Last is >= addr.
		return r.Last.Compare(t)
	})
	if i < len(a.ranges) && a.ranges[i].Contains(addr) {
		return a.ranges[i]
	}
	return nil
}

// PoolOf returns the name of the pool containing addr.
func (a *Allocator) PoolOf(addr netip.Addr) (string, bool) {
	if r := a.rangeOf(addr.Unmap()); r != nil {
		return r.pool.Name, true
	}
	return "", false
}

// Assigned returns the addresses svc currently holds, in the order of its
// families, or nil.
func (a *Allocator) Assigned(key model.ServiceKey) []netip.Addr {
	if al := a.svcs[key]; al != nil {
		return slices.Clone(al.addrs)
	}
	return nil
}

// refusal returns why p does not select svc, or "" when it does.
func (p *pool) refusal(svc *model.Service) string {
	if p.ServiceSelector != nil && !p.ServiceSelector.Matches(svc.Labels) {
		return fmt.Sprintf("serviceSelector %s does not select %s", p.ServiceSelector, svc.Key)
	}
	if p.NamespaceSelector != nil && !p.NamespaceSelector.Matches(svc.NamespaceLabels) {
		return fmt.Sprintf("namespaceSelector %s does not select namespace %s of %s",
			p.NamespaceSelector, svc.Key.Namespace, svc.Key)
	}
	return ""
}

func (p *pool) hasFamily(f model.Family) bool {
	for _, r := range p.ranges {
		if familyOf(r.First) == f {
			return true
		}
	}
	return false
}

// size returns the usable addresses of family f in p, saturating.
func (p *pool) size(f model.Family) uint64 {
	var n uint64
	for _, r := range p.ranges {
		if familyOf(r.First) == f {
			n = satAdd(n, rangeSize(r.AddrRange, p.AvoidBuggyIPs))
		}
	}
	return n
}

// families returns the families svc wants, in its order of preference.
// Without Families it wants the families of its requested addresses, or
// IPv4 alone.
func families(svc *model.Service) ([]model.Family, error) {
	var fams []model.Family
	src := svc.Families
	if len(src) == 0 {
		for _, ip := range svc.RequestedIPs {
			if ip.IsValid() {
				src = append(src, familyOf(ip.Unmap()))
			}
		}
	}
	if len(src) == 0 {
		return []model.Family{model.IPv4}, nil
	}
	for _, f := range src {
		if f != model.IPv4 && f != model.IPv6 {
			return nil, fmt.Errorf("%w: %s has unknown address family %d", ErrInvalid, svc.Key, f)
		}
		if !slices.Contains(fams, f) {
			fams = append(fams, f)
		}
	}
	return fams, nil
}

// requested returns svc's requested address per family, nil without a
// request. The request must name exactly one address for every wanted
// family: lbd does not mix a requested IPv4 VIP with an auto-assigned IPv6
// one, as the user asked for specific addresses.
func requested(svc *model.Service, fams []model.Family) (map[model.Family]netip.Addr, error) {
	if len(svc.RequestedIPs) == 0 {
		return nil, nil
	}
	req := make(map[model.Family]netip.Addr, len(fams))
	for _, ip := range svc.RequestedIPs {
		if !ip.IsValid() || ip.Zone() != "" {
			return nil, fmt.Errorf("%w: %s requests invalid address %q", ErrInvalid, svc.Key, ip)
		}
		ip = ip.Unmap()
		f := familyOf(ip)
		if !slices.Contains(fams, f) {
			return nil, fmt.Errorf("%w: %s requests %s address %s but does not want %s",
				ErrInvalid, svc.Key, familyName(f), ip, familyName(f))
		}
		if prev, dup := req[f]; dup {
			if prev == ip {
				continue
			}
			return nil, fmt.Errorf("%w: %s requests two %s addresses, %s and %s",
				ErrInvalid, svc.Key, familyName(f), prev, ip)
		}
		req[f] = ip
	}
	for _, f := range fams {
		if _, ok := req[f]; !ok {
			return nil, fmt.Errorf("%w: %s requests addresses but none of family %s it wants",
				ErrInvalid, svc.Key, familyName(f))
		}
	}
	return req, nil
}

// collision returns a port and protocol both lists use.
func collision(x, y []model.ServicePort) (model.ServicePort, bool) {
	for _, p := range x {
		for _, q := range y {
			if p.Port == q.Port && p.Protocol == q.Protocol {
				return p, true
			}
		}
	}
	return model.ServicePort{}, false
}

// shareCheck returns nil if svc may hold addr alongside its current
// holders, else an error wrapping ErrInUse that says why not.
func (a *Allocator) shareCheck(svc *model.Service, addr netip.Addr) error {
	h := a.addrs[addr]
	if h == nil {
		return nil
	}
	for _, k := range h.holders {
		if k == svc.Key {
			continue
		}
		other := a.svcs[k]
		switch {
		case svc.SharingKey == "":
			return fmt.Errorf("%w: %s is held by %s and %s has no sharing key", ErrInUse, addr, k, svc.Key)
		case other.sharingKey == "":
			return fmt.Errorf("%w: %s is held by %s, which has no sharing key", ErrInUse, addr, k)
		case other.sharingKey != svc.SharingKey:
			return fmt.Errorf("%w: %s is held by %s with sharing key %q, not %q",
				ErrInUse, addr, k, other.sharingKey, svc.SharingKey)
		}
		if p, ok := collision(other.ports, svc.Ports); ok {
			return fmt.Errorf("%w: %s is held by %s, which also uses port %d/%s",
				ErrInUse, addr, k, p.Port, p.Protocol)
		}
	}
	return nil
}

// checkAddr returns nil if svc may be given addr: addr is in a pool that
// selects svc (and is reqPool, when set) and is free or shareable.
// avoidBuggy also refuses .0/.255 addresses of pools that avoid them.
func (a *Allocator) checkAddr(svc *model.Service, addr netip.Addr, reqPool *pool, avoidBuggy bool) error {
	r := a.rangeOf(addr)
	if r == nil {
		return fmt.Errorf("%w: %s is in no pool", ErrNoPool, addr)
	}
	p := r.pool
	if why := p.refusal(svc); why != "" {
		return fmt.Errorf("%w: %s is in pool %s whose %s", ErrNotAllowed, addr, p.Name, why)
	}
	if reqPool != nil && p != reqPool {
		return fmt.Errorf("%w: %s is in pool %s, not in requested pool %s", ErrNotAllowed, addr, p.Name, reqPool.Name)
	}
	if avoidBuggy && p.AvoidBuggyIPs && buggy(addr) {
		return fmt.Errorf("%w: %s ends in .0 or .255 and pool %s avoids buggy IPs", ErrNotAllowed, addr, p.Name)
	}
	return a.shareCheck(svc, addr)
}

// hold records svc as a holder of addr, which must be in a pool.
func (a *Allocator) hold(svc *model.Service, addr netip.Addr) {
	h := a.addrs[addr]
	if h == nil {
		r := a.rangeOf(addr)
		h = &holding{rng: r}
		a.addrs[addr] = h
		r.pool.used[famIndex(familyOf(addr))]++
	}
	if i, found := slices.BinarySearchFunc(h.holders, svc.Key, cmpKey); !found {
		h.holders = slices.Insert(h.holders, i, svc.Key)
	}
	if svc.SharingKey != "" {
		set := a.shared[svc.SharingKey]
		if set == nil {
			set = make(map[netip.Addr]struct{})
			a.shared[svc.SharingKey] = set
		}
		set[addr] = struct{}{}
	}
}

// unhold removes key (holding addr under sharingKey) from addr's holders.
func (a *Allocator) unhold(key model.ServiceKey, sharingKey string, addr netip.Addr) {
	h := a.addrs[addr]
	if h == nil {
		return
	}
	if i, found := slices.BinarySearchFunc(h.holders, key, cmpKey); found {
		h.holders = slices.Delete(h.holders, i, i+1)
	}
	if len(h.holders) > 0 {
		// The others hold it under the same key (that is what let them
		// share), so the sharing index stays right.
		return
	}
	delete(a.addrs, addr)
	h.rng.pool.used[famIndex(familyOf(addr))]--
	if sharingKey != "" {
		if set := a.shared[sharingKey]; set != nil {
			delete(set, addr)
			if len(set) == 0 {
				delete(a.shared, sharingKey)
			}
		}
	}
	if r := h.rng; !r.next.IsValid() || addr.Less(r.next) {
		r.next = addr
	}
}

func cmpKey(x, y model.ServiceKey) int {
	return cmp.Or(strings.Compare(x.Namespace, y.Namespace), strings.Compare(x.Name, y.Name))
}

// Release frees every address key holds. Addresses shared with other
// services stay in use by them. Releasing an unknown service does nothing.
func (a *Allocator) Release(key model.ServiceKey) {
	al := a.svcs[key]
	if al == nil {
		return
	}
	for _, addr := range al.addrs {
		a.unhold(key, al.sharingKey, addr)
	}
	delete(a.svcs, key)
}

// record replaces svc's allocation by addrs, which have been checked.
func (a *Allocator) record(svc *model.Service, addrs []netip.Addr) {
	a.Release(svc.Key)
	if len(addrs) == 0 {
		return
	}
	a.svcs[svc.Key] = &allocation{
		sharingKey: svc.SharingKey,
		ports:      slices.Clone(svc.Ports),
		addrs:      addrs,
	}
	for _, addr := range addrs {
		a.hold(svc, addr)
	}
}

// Restore records that svc already holds ips (read back from its status
// after a restart or a pool change), without moving anything. Call it for
// every existing allocation before the first Assign.
//
// Each address is checked on its own and recorded if it is in a pool that
// selects svc and free or shareable with svc; one address per family is kept.
// The others are left out and reported in a joined error wrapping, per
// address, ErrNoPool (in no pool: removed or shrunk), ErrNotAllowed (the
// pool does not select svc), ErrInUse (another restored service holds it and
// cannot share) or ErrInvalid (a second address of one family). See the
// package documentation for what the caller should do about each.
//
// Restore replaces anything recorded for svc before. Restoring no address
// releases svc.
func (a *Allocator) Restore(svc *model.Service, ips []netip.Addr) error {
	a.Release(svc.Key)
	var keep []netip.Addr
	var errs []error
	for _, ip := range ips {
		if !ip.IsValid() {
			errs = append(errs, fmt.Errorf("%w: invalid address %q", ErrInvalid, ip))
			continue
		}
		ip = ip.Unmap()
		if i := slices.IndexFunc(keep, func(k netip.Addr) bool { return familyOf(k) == familyOf(ip) }); i >= 0 {
			if keep[i] != ip {
				errs = append(errs, fmt.Errorf("%w: second %s address %s after %s",
					ErrInvalid, familyName(familyOf(ip)), ip, keep[i]))
			}
			continue
		}
		// Buggy addresses already in use stay: moving a working VIP is
		// worse than serving it on an address some clients dislike.
		if err := a.checkAddr(svc, ip, nil, false); err != nil {
			errs = append(errs, err)
			continue
		}
		keep = append(keep, ip)
	}
	a.record(svc, keep)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restoring %s: %w", svc.Key, err)
	}
	return nil
}

// Assign returns the VIPs for svc, one per wanted family (svc.Families,
// IPv4 alone when empty) in the order of svc.Families, and records them.
//
// Addresses svc already holds are kept while they stay valid (see the
// package documentation). Missing families are filled from, in order of
// precedence: svc.RequestedIPs (which must then name one address per wanted
// family), the pool named by svc.RequestedPool (which need not have
// AutoAssign), or the highest-priority AutoAssign pool that selects svc and
// has every missing family, lowest free address first.
//
// On error Assign releases everything svc held, so the allocator never
// records an address the caller will not publish. The error wraps
// ErrNotAllowed, ErrInUse, ErrNoPool, ErrPoolExhausted or ErrInvalid.
func (a *Allocator) Assign(svc *model.Service) ([]netip.Addr, error) {
	addrs, err := a.assign(svc)
	if err != nil {
		a.Release(svc.Key)
		return nil, fmt.Errorf("assigning %s: %w", svc.Key, err)
	}
	a.record(svc, addrs)
	return slices.Clone(addrs), nil
}

func (a *Allocator) assign(svc *model.Service) ([]netip.Addr, error) {
	fams, err := families(svc)
	if err != nil {
		return nil, err
	}
	req, err := requested(svc, fams)
	if err != nil {
		return nil, err
	}
	var reqPool *pool
	if svc.RequestedPool != "" {
		reqPool = a.byName[svc.RequestedPool]
		if reqPool == nil {
			return nil, fmt.Errorf("%w: requested pool %s does not exist", ErrNoPool, svc.RequestedPool)
		}
		if why := reqPool.refusal(svc); why != "" {
			return nil, fmt.Errorf("%w: requested pool %s: %s", ErrNotAllowed, reqPool.Name, why)
		}
	}

	picked := make(map[model.Family]netip.Addr, len(fams))
	var keptPool *pool
	if cur := a.svcs[svc.Key]; cur != nil {
		for _, addr := range cur.addrs {
			f := familyOf(addr)
			if !slices.Contains(fams, f) {
				continue
			}
			if want, ok := req[f]; ok && want != addr {
				continue
			}
			if a.checkAddr(svc, addr, reqPool, false) != nil {
				continue
			}
			picked[f] = addr
			keptPool = a.rangeOf(addr).pool
		}
	}
	var missing []model.Family
	for _, f := range fams {
		if _, ok := picked[f]; !ok {
			missing = append(missing, f)
		}
	}

	if len(missing) > 0 {
		var fresh map[model.Family]netip.Addr
		switch {
		case req != nil:
			fresh = make(map[model.Family]netip.Addr, len(missing))
			for _, f := range missing {
				if err := a.checkAddr(svc, req[f], reqPool, true); err != nil {
					return nil, err
				}
				fresh[f] = req[f]
			}
		case reqPool != nil:
			fresh, err = a.fromPool(svc, reqPool, missing)
		default:
			fresh, err = a.auto(svc, missing, keptPool)
		}
		if err != nil {
			return nil, err
		}
		for f, addr := range fresh {
			picked[f] = addr
		}
	}

	out := make([]netip.Addr, 0, len(fams))
	for _, f := range fams {
		out = append(out, picked[f])
	}
	return out, nil
}

// auto picks addresses of every family in fams from one pool: prefer (the
// pool of an address svc keeps) if it qualifies, else the first pool in
// priority order that has AutoAssign, selects svc and has every family.
func (a *Allocator) auto(svc *model.Service, fams []model.Family, prefer *pool) (map[model.Family]netip.Addr, error) {
	cands := a.pools
	if prefer != nil {
		cands = append([]*pool{prefer}, slices.DeleteFunc(slices.Clone(a.pools), func(p *pool) bool { return p == prefer })...)
	}
	var refused, exhausted []string
	for _, p := range cands {
		if !p.AutoAssign {
			refused = append(refused, p.Name+": autoAssign is off")
			continue
		}
		if why := p.refusal(svc); why != "" {
			refused = append(refused, p.Name+": "+why)
			continue
		}
		if i := slices.IndexFunc(fams, func(f model.Family) bool { return !p.hasFamily(f) }); i >= 0 {
			refused = append(refused, p.Name+": no "+familyName(fams[i])+" range")
			continue
		}
		got, err := a.fromPool(svc, p, fams)
		if err != nil {
			// Only exhaustion is left: the pool has every family.
			exhausted = append(exhausted, p.Name)
			continue
		}
		return got, nil
	}
	if len(exhausted) > 0 {
		return nil, &exhaustedError{pools: exhausted,
			err: fmt.Errorf("%w: no free %s in pool %s", ErrPoolExhausted, famList(fams), strings.Join(exhausted, ", "))}
	}
	if len(refused) == 0 {
		return nil, fmt.Errorf("%w: no pools configured", ErrNoPool)
	}
	return nil, fmt.Errorf("%w: no pool auto-assigns %s to %s (%s)", ErrNoPool, famList(fams), svc.Key, strings.Join(refused, "; "))
}

func famList(fams []model.Family) string {
	s := make([]string, len(fams))
	for i, f := range fams {
		s[i] = familyName(f)
	}
	return strings.Join(s, "+") + " address"
}

// fromPool picks one address of each family in fams from p, or none.
func (a *Allocator) fromPool(svc *model.Service, p *pool, fams []model.Family) (map[model.Family]netip.Addr, error) {
	got := make(map[model.Family]netip.Addr, len(fams))
	for _, f := range fams {
		if !p.hasFamily(f) {
			return nil, fmt.Errorf("%w: pool %s has no %s range", ErrNoPool, p.Name, familyName(f))
		}
		addr, ok := a.pick(svc, p, f)
		if !ok {
			return nil, &exhaustedError{pools: []string{p.Name},
				err: fmt.Errorf("%w: no free %s address for %s in pool %s (%d in use of %d)",
					ErrPoolExhausted, familyName(f), svc.Key, p.Name, p.used[famIndex(f)], p.size(f))}
		}
		got[f] = addr
	}
	return got, nil
}

// pick returns the address of family f in p that svc should get: the lowest
// address already held under svc's sharing key that svc can share, else the
// lowest free one.
func (a *Allocator) pick(svc *model.Service, p *pool, f model.Family) (netip.Addr, bool) {
	if svc.SharingKey != "" {
		var cands []netip.Addr
		for addr := range a.shared[svc.SharingKey] {
			if familyOf(addr) == f && a.addrs[addr].rng.pool == p {
				cands = append(cands, addr)
			}
		}
		slices.SortFunc(cands, netip.Addr.Compare)
		for _, addr := range cands {
			if a.shareCheck(svc, addr) == nil {
				return addr, true
			}
		}
	}
	for _, r := range p.ranges {
		if familyOf(r.First) != f {
			continue
		}
		if addr, ok := a.lowestFree(r); ok {
			return addr, true
		}
	}
	return netip.Addr{}, false
}

// lowestFree returns the lowest free usable address of r, probing at most
// maxProbes addresses from the cursor. It moves the cursor up to the
// address found (not past it: the caller may not take it).
func (a *Allocator) lowestFree(r *rangeState) (netip.Addr, bool) {
	addr := r.next
	if !addr.IsValid() {
		return netip.Addr{}, false
	}
	avoid := r.pool.AvoidBuggyIPs
	for range maxProbes {
		if (!avoid || !buggy(addr)) && a.addrs[addr] == nil {
			r.next = addr
			return addr, true
		}
		if addr == r.Last {
			r.next = netip.Addr{}
			return netip.Addr{}, false
		}
		addr = addr.Next()
	}
	// Everything probed is taken; resume from here next time.
	r.next = addr
	return netip.Addr{}, false
}

// PoolStats is the usage of one pool.
type PoolStats struct {
	Name string
	// Total is the number of assignable addresses (without .0/.255 when
	// the pool avoids them), saturating at math.MaxUint64.
	Total uint64
	// Used is the number of distinct addresses in use; an address shared
	// by several services counts once. It can exceed Total only when .0 or
	// .255 addresses restored from before AvoidBuggyIPs was set are still
	// in use.
	Used uint64
}

// Stats returns the usage of every pool, sorted by pool name.
func (a *Allocator) Stats() []PoolStats {
	out := make([]PoolStats, 0, len(a.pools))
	for _, p := range a.pools {
		var total uint64
		for _, r := range p.ranges {
			total = satAdd(total, rangeSize(r.AddrRange, p.AvoidBuggyIPs))
		}
		out = append(out, PoolStats{Name: p.Name, Total: total, Used: p.used[0] + p.used[1]})
	}
	slices.SortFunc(out, func(x, y PoolStats) int { return strings.Compare(x.Name, y.Name) })
	return out
}
