// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/pkg/model"
)

// frontendKey is one {VIP, port, protocol}: one lb_services entry.
type frontendKey struct {
	VIP   netip.Addr
	Port  uint16
	Proto model.Protocol
}

// backendKey is one backend as the datapath sees it.
type backendKey struct {
	Addr  netip.AddrPort
	Local bool
}

type backendRef struct {
	id   uint32
	refs int
}

// frontend is what lbd last wrote for a frontend.
type frontend struct {
	fk       frontendKey
	id       uint32
	svc      model.ServiceKey
	val      lbLbSvc
	backends []backendKey // sorted
	ranges   []netip.Prefix
	synced   bool   // table written by this process
	gen      uint64 // the last Sync that wanted it
	wanted   uint64 // the last Sync that computed a service wanting it
	gone     bool   // removed from the maps
}

// desired is a frontend as the State wants it.
type desired struct {
	svc      model.ServiceKey
	flags    uint32
	timeout  uint32
	backends []backendKey
	ranges   []netip.Prefix
}

// desiredFor computes the frontend node self programs for one VIP and port
// of svc. Every node programs every VIP, owner or not, so a takeover needs
// no map writes. Backends are the ready endpoints (for
// externalTrafficPolicy: Local only those on self); when none is ready,
// serving terminating endpoints are used (as kube-proxy does) so a rolling
// restart does not black-hole. Backends are of the VIP's family only (IPv4
// VIPs to IPv4 pods, IPv6 to IPv6).
func desiredFor(svc *model.Service, sp model.ServicePort, vip netip.Addr, self string) desired {
	d := desired{svc: svc.Key, ranges: svc.SourceRanges}
	local := svc.TrafficPolicy == model.PolicyLocal
	if local {
		d.flags |= uint32(lbLbSvcFlagsLB_SVC_LOCAL)
	}
	if svc.AffinityTimeout > 0 {
		d.flags |= uint32(lbLbSvcFlagsLB_SVC_AFFINITY)
		d.timeout = uint32(svc.AffinityTimeout / time.Second)
	}
	if len(svc.SourceRanges) > 0 {
		d.flags |= uint32(lbLbSvcFlagsLB_SVC_SRC_RANGES)
	}
	pick := func(ok func(model.Endpoint) bool) []backendKey {
		var bs []backendKey
		for _, ep := range svc.Endpoints {
			// A VIP's backends are of its family: the datapath
			// translates addresses, not protocols.
			if !ok(ep) || (local && ep.NodeName != self) || ep.Addr.Is4() != vip.Is4() {
				continue
			}
			port, has := ep.PortFor(sp)
			if !has {
				continue
			}
			bs = append(bs, backendKey{Addr: netip.AddrPortFrom(ep.Addr, port), Local: ep.NodeName == self})
		}
		return bs
	}
	d.backends = pick(func(ep model.Endpoint) bool { return ep.Ready })
	if len(d.backends) == 0 {
		d.backends = pick(func(ep model.Endpoint) bool { return ep.Serving && ep.Terminating })
	}
	slices.SortFunc(d.backends, func(a, b backendKey) int { return a.Addr.Compare(b.Addr) })
	d.backends = slices.Compact(d.backends)
	return d
}

// SyncStats says what a Sync wrote.
type SyncStats struct {
	FrontendsAdded, FrontendsUpdated, FrontendsRemoved int
	TablesWritten                                      int
	BackendsAdded, BackendsRemoved                     int
	// ServicesSkipped counts services found unchanged since the last
	// Sync by their fingerprint: nothing of them was computed or written.
	ServicesSkipped int
}

// svcMemo is what the last Sync saw of a service: the fingerprint of its
// datapath-relevant fields and the frontends it produced.
type svcMemo struct {
	key model.ServiceKey
	fp  uint64 // 0: compute again
	gen uint64 // the last Sync that saw the service
	pos int    // its index in d.order
	// fes are the frontends the service produced, for claim: pointers,
	// not keys, so an unchanged service costs no frontend lookup.
	fes []*frontend
	// rev and vips are the service's Revision and VIPs (see
	// model.Service.Revision): when the source says the service is the
	// same and the VIPs are, it is skipped without a fingerprint.
	rev  uint64
	vips []netip.Addr
}

// unchanged reports whether svc is what m saw, by its revision.
func (m *svcMemo) unchanged(svc *model.Service) bool {
	return m.fp != 0 && svc.Revision != 0 && m.rev == svc.Revision && sameAddrs(m.vips, svc.VIPs)
}

// sameAddrs is slices.Equal without reading the elements when both are
// the same memory (a source that kept the Service hands over the same
// slice): one cache miss less per service of a 10 000-service Sync.
func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || unsafe.SliceData(a) == unsafe.SliceData(b) {
		return true
	}
	return slices.Equal(a, b)
}

// syncBatch collects one Sync's map writes so each map is written in few
// syscalls, in an order where a packet never sees a frontend whose
// backends or table are not written yet: backends, tables, services.
type syncBatch struct {
	beKeys   []uint32
	beVals   []lbLbBackend
	svcKeys  []lbLbSvcKey
	svcVals  []lbLbSvc
	newIDs   []uint32 // frontend ids whose counters must start at zero
	tables   []tableWrite
	released []backendKey // backends unreferenced this Sync: freed if at 0
}

type tableWrite struct {
	id  uint32
	bs  []backendKey
	ids []uint32 // the backend ids of bs: no map lookup per backend in the fill
}

// Sync programs the maps for st as seen from node self, writing only what
// changed since the last Sync (after a restart, the first Sync rewrites
// the Maglev tables once). Services the source gave the same Revision
// (and the same VIPs), or whose fingerprint did not change, are skipped
// without computing their frontends: one change among 10 000 services
// costs well under a millisecond with revisions, a hash per service
// without. Per-frontend failures are joined; the others are still
// applied, and what failed is computed again on the next Sync.
func (d *Datapath) Sync(st *model.State, self string) (SyncStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	d.live = 0
	var (
		stats SyncStats
		errs  []error
		b     syncBatch
	)
	type change struct {
		fk   frontendKey
		w    desired
		memo *svcMemo
	}
	var changed []change
	// wanted: the frontends of the services computed in this Sync, so two
	// of them asking for one frontend conflict like a computed one and a
	// skipped one do (through frontend.gen and frontend.wanted).
	wanted := make(map[frontendKey]model.ServiceKey)
	if self != d.self {
		// Revisions say nothing of which endpoints are on self.
		for _, m := range d.memo {
			m.rev = 0
		}
		d.self = self
	}
	// The services of a State come in the same order from one Sync to
	// the next (sorted by key): the memos are found by walking the last
	// order alongside, a map lookup only where they differ.
	prev := d.order
	order := make([]*svcMemo, 0, len(st.Services))
	next := 0
	for i := range st.Services {
		svc := &st.Services[i]
		var (
			m  *svcMemo
			ok bool
		)
		if next < len(prev) && prev[next].key == svc.Key {
			m, ok = prev[next], true
		} else {
			m, ok = d.memo[svc.Key]
		}
		if ok {
			if m.gen == d.gen {
				errs = append(errs, fmt.Errorf("service %s listed twice", svc.Key))
				continue
			}
			next = m.pos + 1
		}
		if ok && m.unchanged(svc) && d.claim(svc.Key, m.fes) {
			m.gen, m.pos = d.gen, len(order)
			order = append(order, m)
			stats.ServicesSkipped++
			continue
		}
		fp := fingerprint(svc, self)
		if ok && m.fp == fp && d.claim(svc.Key, m.fes) {
			m.gen, m.pos, m.rev, m.vips = d.gen, len(order), svc.Revision, svc.VIPs
			order = append(order, m)
			stats.ServicesSkipped++
			continue
		}
		memo := &svcMemo{key: svc.Key, fp: fp, gen: d.gen, pos: len(order), rev: svc.Revision, vips: svc.VIPs}
		d.memo[svc.Key] = memo
		order = append(order, memo)
		ok = true
		for _, vip := range svc.VIPs {
			for _, sp := range svc.Ports {
				fk := frontendKey{VIP: vip, Port: sp.Port, Proto: sp.Protocol}
				owner, taken := wanted[fk]
				fe, exists := d.frontends[fk]
				if !taken && exists && fe.gen == d.gen {
					owner, taken = fe.svc, true
				}
				if taken {
					if owner != svc.Key {
						errs = append(errs, fmt.Errorf("service %s: %s:%d/%s already used by %s", svc.Key, vip, sp.Port, sp.Protocol, owner))
						ok = false
					}
					continue
				}
				wanted[fk] = svc.Key
				if exists {
					// Not to be claimed by a skipped service.
					fe.wanted = d.gen
				}
				changed = append(changed, change{fk, desiredFor(svc, sp, vip, self), memo})
			}
		}
		if !ok {
			// Computed again on the next Sync, to report the conflict.
			memo.fp = 0
		}
	}
	d.order = order
	// Ids are handed out lowest first in frontend order, as before
	// fingerprints: the same State gets the same ids on every node.
	slices.SortFunc(changed, func(a, b change) int { return cmpFrontend(a.fk, b.fk) })
	for _, c := range changed {
		fe, err := d.syncFrontend(c.fk, c.w, &stats, &b)
		if err != nil {
			errs = append(errs, fmt.Errorf("frontend %s:%d/%s of %s: %w", c.fk.VIP, c.fk.Port, c.fk.Proto, c.w.svc, err))
			// Written again on the next Sync.
			c.memo.fp = 0
		}
		if fe != nil {
			c.memo.fes = append(c.memo.fes, fe)
		}
	}
	errs = append(errs, d.flush(&b, &stats))
	remove := func(fe *frontend) {
		if err := d.removeFrontend(fe.fk, fe, &b); err != nil {
			errs = append(errs, fmt.Errorf("remove frontend %s:%d/%s: %w", fe.fk.VIP, fe.fk.Port, fe.fk.Proto, err))
		}
		stats.FrontendsRemoved++
	}
	// What no service wants any more is found through the memos of the
	// last Sync that this one did not see again (gone or recomputed):
	// no walk over 10 000 entries for one change.
	for _, m := range prev {
		if m.gen == d.gen {
			continue
		}
		if d.memo[m.key] == m {
			delete(d.memo, m.key)
		}
		for _, fe := range m.fes {
			if !fe.gone && fe.gen != d.gen {
				remove(fe)
			}
		}
	}
	if d.live != len(d.frontends) {
		// Frontends no memo knows: restored from the pins.
		for _, fe := range d.frontends {
			if fe.gen != d.gen {
				remove(fe)
			}
		}
	}
	if d.restored {
		// Backends restored from the pins and wanted by no frontend.
		for bk, ref := range d.backends {
			if ref.refs == 0 {
				b.released = append(b.released, bk)
			}
		}
		d.restored = false
	}
	for _, bk := range b.released {
		if ref, ok := d.backends[bk]; ok && ref.refs == 0 {
			d.objs.LbBackends.Put(ref.id, lbLbBackend{})
			d.beIDs.put(ref.id)
			delete(d.backends, bk)
			stats.BackendsRemoved++
		}
	}
	return stats, errors.Join(errs...)
}

// claim marks the frontends fes, unchanged since the last Sync, as wanted
// by svc in this one. It reports false (and marks nothing) when one is
// gone, or is another service's, or is wanted by another service already:
// svc must be computed again.
func (d *Datapath) claim(svc model.ServiceKey, fes []*frontend) bool {
	for _, fe := range fes {
		if fe.gone || fe.svc != svc || fe.gen == d.gen || fe.wanted == d.gen {
			return false
		}
	}
	for _, fe := range fes {
		d.mark(fe)
	}
	return true
}

// mark records that frontend fe (in d.frontends) is wanted by this Sync.
func (d *Datapath) mark(fe *frontend) {
	if fe.gen != d.gen {
		fe.gen = d.gen
		d.live++
	}
}

// flush writes the batch: backends, then tables, then services (a packet
// never sees a frontend whose table is not written), then zeroes the
// counters of new ids.
func (d *Datapath) flush(b *syncBatch, stats *SyncStats) error {
	var errs []error
	if len(b.beKeys) > 0 {
		if _, err := d.objs.LbBackends.BatchUpdate(b.beKeys, b.beVals, nil); err != nil {
			errs = append(errs, fmt.Errorf("write %d backends: %w", len(b.beKeys), err))
		}
	}
	if len(b.tables) > 0 {
		if err := d.writeTables(b.tables); err != nil {
			errs = append(errs, err)
		}
		stats.TablesWritten += len(b.tables)
	}
	if len(b.newIDs) > 0 {
		if err := d.resetStats(b.newIDs); err != nil {
			errs = append(errs, err)
		}
	}
	if len(b.svcKeys) > 0 {
		if _, err := d.objs.LbServices.BatchUpdate(b.svcKeys, b.svcVals, nil); err != nil {
			errs = append(errs, fmt.Errorf("write %d services: %w", len(b.svcKeys), err))
		}
	}
	return errors.Join(errs...)
}

// syncFrontend writes frontend fk as w wants it and returns it, or nil if
// it could not be created.
func (d *Datapath) syncFrontend(fk frontendKey, w desired, stats *SyncStats, b *syncBatch) (*frontend, error) {
	fe, exists := d.frontends[fk]
	if exists {
		d.mark(fe)
	} else {
		id, err := d.svcIDs.get()
		if err != nil {
			return nil, fmt.Errorf("allocate service id (max %d): %w", d.opts.MaxServices, err)
		}
		// A reused id must not inherit the previous service's counters.
		b.newIDs = append(b.newIDs, id)
		fe = &frontend{fk: fk, id: id, gen: d.gen}
		stats.FrontendsAdded++
	}
	fe.svc = w.svc
	if !exists || !fe.synced || !slices.Equal(fe.backends, w.backends) {
		ids, err := d.refBackends(w.backends, stats, b)
		if err != nil {
			if !exists {
				d.svcIDs.put(fe.id)
				return nil, err
			}
			return fe, err
		}
		b.tables = append(b.tables, tableWrite{id: fe.id, bs: w.backends, ids: ids})
		if exists {
			d.unrefBackends(fe.backends, b)
			// Sticky clients must not stay on a backend that left.
			if fe.val.Flags&uint32(lbLbSvcFlagsLB_SVC_AFFINITY) != 0 {
				d.purgeAffinity(fe.id, w.backends)
			}
		}
		fe.backends = w.backends
		fe.synced = true
	}
	// A range that failed is written again on the next Sync (fe.ranges
	// stays the old list); the frontend is still written, so the
	// bookkeeping keeps matching the maps.
	var rangeErr error
	if !slices.Equal(fe.ranges, w.ranges) || !exists {
		if rangeErr = d.writeRanges(fe.id, fe.ranges, w.ranges); rangeErr == nil {
			fe.ranges = w.ranges
		}
	}
	val := lbLbSvc{Id: fe.id, Flags: w.flags, Backends: uint32(len(w.backends)), AffinityTimeout: w.timeout}
	if !exists || val != fe.val {
		b.svcKeys = append(b.svcKeys, svcKey(fk))
		b.svcVals = append(b.svcVals, val)
		if exists {
			stats.FrontendsUpdated++
		}
		fe.val = val
	}
	if !exists {
		d.frontends[fk] = fe
		d.svcIDs.take(fe.id)
		if d.vips[fk.VIP]++; d.vips[fk.VIP] == 1 {
			b.svcKeys = append(b.svcKeys, lbLbSvcKey{Addr: toKeyAddr(fk.VIP)})
			b.svcVals = append(b.svcVals, lbLbSvc{Flags: uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER)})
		}
		d.live++
	}
	return fe, rangeErr
}

func cmpFrontend(a, b frontendKey) int {
	if c := a.VIP.Compare(b.VIP); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Port, b.Port); c != 0 {
		return c
	}
	return cmp.Compare(a.Proto, b.Proto)
}

func svcKey(fk frontendKey) lbLbSvcKey {
	return lbLbSvcKey{Addr: toKeyAddr(fk.VIP), Port: htons(fk.Port), Proto: uint8(fk.Proto)}
}

// refBackends takes a reference on each of bs, allocating ids (and queuing
// the lb_backends writes) for new ones, and returns their ids.
func (d *Datapath) refBackends(bs []backendKey, stats *SyncStats, b *syncBatch) ([]uint32, error) {
	ids := make([]uint32, 0, len(bs))
	for i, bk := range bs {
		ref, ok := d.backends[bk]
		if !ok {
			id, err := d.beIDs.get()
			if err != nil {
				d.unrefBackends(bs[:i], b)
				return nil, fmt.Errorf("allocate backend id (max %d): %w", d.opts.MaxBackends, err)
			}
			var flags uint8
			if bk.Local {
				flags = uint8(lbLbBackendFlagsLB_BE_LOCAL)
			}
			b.beKeys = append(b.beKeys, id)
			b.beVals = append(b.beVals, lbLbBackend{Addr: toKeyAddr(bk.Addr.Addr()), Port: htons(bk.Addr.Port()), Flags: flags})
			ref = &backendRef{id: id}
			d.backends[bk] = ref
			stats.BackendsAdded++
		}
		ref.refs++
		ids = append(ids, ref.id)
	}
	return ids, nil
}

func (d *Datapath) unrefBackends(bs []backendKey, b *syncBatch) {
	for _, bk := range bs {
		if ref, ok := d.backends[bk]; ok && ref.refs > 0 {
			if ref.refs--; ref.refs == 0 {
				b.released = append(b.released, bk)
			}
		}
	}
}

// writeTables computes and writes Maglev tables straight into lb_maglev
// through memory mappings (one copy per slot, no syscall per table). The
// kernel maps every page of a mapping up front and counts it in lbd's
// resident memory while mapped, so tables are written through windows of
// at most maglevWindow bytes over the ids at hand, unmapped right after:
// one change maps a table's 2-3 pages, not the whole map.
func (d *Datapath) writeTables(ts []tableWrite) error {
	slices.SortFunc(ts, func(a, b tableWrite) int { return cmp.Compare(a.id, b.id) })
	// An array map stores each value in 8 bytes (value sizes round up to
	// 8): a slot is a uint64 whose low half (little-endian: the first 4
	// bytes) is the u32 the program reads.
	const slot = 8
	page := int64(os.Getpagesize())
	tbytes := int64(d.maglev.Size()) * slot
	for len(ts) > 0 {
		start := int64(ts[0].id) * tbytes / page * page
		n := 1
		for n < len(ts) && (int64(ts[n].id)+1)*tbytes-start <= maglevWindow {
			n++
		}
		end := (int64(ts[n-1].id)+1)*tbytes + page - 1
		end -= end % page
		if err := d.writeWindow(ts[:n], start, end-start); err != nil {
			return err
		}
		ts = ts[n:]
	}
	return nil
}

// maglevWindow bounds one mapping of lb_maglev (1000 tables of 1021 slots).
const maglevWindow = 8 << 20

func (d *Datapath) writeWindow(ts []tableWrite, off, size int64) error {
	mem, err := unix.Mmap(d.objs.LbMaglev.FD(), off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map the maglev table at %d+%d: %w", off, size, err)
	}
	defer unix.Munmap(mem)
	slots := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), len(mem)/8)
	// Tables are independent: computed in parallel (the Maglev fill is
	// most of a large Sync), each worker with its own buffers, writing its
	// own tables' slots. d.backends is only read meanwhile.
	workers := min(runtime.GOMAXPROCS(0), len(d.scratch), (len(ts)+63)/64)
	var wg sync.WaitGroup
	for w := range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.fillTables(&d.scratch[w], ts[w*len(ts)/max(workers, 1):(w+1)*len(ts)/max(workers, 1)], slots, off/8)
		}()
	}
	wg.Wait()
	return nil
}

// fillTables computes ts into slots, which start at slot index base.
func (d *Datapath) fillTables(s *maglevScratch, ts []tableWrite, slots []uint64, base int64) {
	m := int64(d.maglev.Size())
	for _, t := range ts {
		first := int64(t.id)*m - base
		out := slots[first : first+m]
		if len(t.bs) == 0 {
			clear(out)
			continue
		}
		s.reset()
		s.ids = s.ids[:0]
		for i, bk := range t.bs {
			s.buf = bk.Addr.AppendTo(s.buf[:0])
			s.add(s.buf)
			s.ids = append(s.ids, uint64(t.ids[i]))
		}
		for i, be := range d.maglev.fill(s) {
			out[i] = s.ids[be]
		}
	}
}

func srcKey(id uint32, p netip.Prefix) lbLbSrcKey {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return lbLbSrcKey{Prefixlen: uint32(32 + bits), SvcId: id, Addr: toKeyAddr(p.Masked().Addr())}
}

func (d *Datapath) writeRanges(id uint32, old, want []netip.Prefix) error {
	var errs []error
	for _, p := range want {
		if err := d.objs.LbSrcRanges.Put(srcKey(id, p), uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("write source range %s: %w", p, err))
		}
	}
	for _, p := range old {
		if !slices.Contains(want, p) {
			d.objs.LbSrcRanges.Delete(srcKey(id, p))
		}
	}
	return errors.Join(errs...)
}

func (d *Datapath) removeFrontend(fk frontendKey, fe *frontend, b *syncBatch) error {
	delete(d.frontends, fk)
	fe.gone = true
	err := d.objs.LbServices.Delete(svcKey(fk))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	if d.vips[fk.VIP]--; d.vips[fk.VIP] <= 0 {
		delete(d.vips, fk.VIP)
		d.objs.LbServices.Delete(lbLbSvcKey{Addr: toKeyAddr(fk.VIP)})
	}
	d.writeRanges(fe.id, fe.ranges, nil)
	d.unrefBackends(fe.backends, b)
	// A service reusing this id must not inherit its sticky clients.
	if fe.val.Flags&uint32(lbLbSvcFlagsLB_SVC_AFFINITY) != 0 {
		d.purgeAffinity(fe.id, nil)
	}
	d.svcIDs.put(fe.id)
	return err
}

// purgeAffinity deletes the affinity entries of service id whose backend is
// not in keep. It walks the map: affinity changes are rare (backend set
// changes of services with sessionAffinity) and the map is bounded.
func (d *Datapath) purgeAffinity(id uint32, keep []backendKey) {
	var (
		k    lbLbAffinityKey
		v    lbLbAffinityEntry
		dead []lbLbAffinityKey
	)
	it := d.objs.LbAffinity.Iterate()
	for it.Next(&k, &v) {
		if k.SvcId != id {
			continue
		}
		be := netip.AddrPortFrom(fromKeyAddr(v.Baddr), htons(v.Bport))
		if !slices.ContainsFunc(keep, func(b backendKey) bool { return b.Addr == be }) {
			dead = append(dead, k)
		}
	}
	for _, k := range dead {
		d.objs.LbAffinity.Delete(k)
	}
}

// resetStats zeroes the per-CPU counters of ids, in one batch.
func (d *Datapath) resetStats(ids []uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count cpus: %w", err)
	}
	if _, err := d.objs.LbStats.BatchUpdate(ids, make([]lbLbSvcStats, n*len(ids)), nil); err != nil {
		return fmt.Errorf("zero the counters of %d services: %w", len(ids), err)
	}
	return nil
}

// restore rebuilds ids from the pinned maps after a restart, so existing
// frontends keep their ids (and their Maglev tables keep serving) until the
// first Sync rewrites what changed.
func (d *Datapath) restore() error {
	var markers []netip.Addr
	keys, vals, err := batchAll[lbLbSvcKey, lbLbSvc](d.objs.LbServices)
	if err != nil {
		return fmt.Errorf("read services: %w", err)
	}
	for i, k := range keys {
		v := vals[i]
		addr := fromKeyAddr(k.Addr)
		if v.Flags&uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER) != 0 {
			markers = append(markers, addr)
			continue
		}
		if v.Id >= d.opts.MaxServices {
			continue
		}
		fk := frontendKey{VIP: addr, Port: htons(k.Port), Proto: model.Protocol(k.Proto)}
		d.frontends[fk] = &frontend{fk: fk, id: v.Id, val: v}
		d.svcIDs.take(v.Id)
		d.vips[addr]++
	}
	// A marker whose frontends are all gone would never be removed (that
	// happens with the last frontend); one missing would never be written.
	for _, a := range markers {
		if d.vips[a] == 0 {
			d.objs.LbServices.Delete(lbLbSvcKey{Addr: toKeyAddr(a)})
		}
	}
	for a := range d.vips {
		if !slices.Contains(markers, a) {
			d.objs.LbServices.Put(lbLbSvcKey{Addr: toKeyAddr(a)}, lbLbSvc{Flags: uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER)})
		}
	}
	ids, bes, err := batchAll[uint32, lbLbBackend](d.objs.LbBackends)
	if err != nil {
		return fmt.Errorf("read backends: %w", err)
	}
	for i, id := range ids {
		be := bes[i]
		if be == (lbLbBackend{}) {
			continue
		}
		bk := backendKey{Addr: netip.AddrPortFrom(fromKeyAddr(be.Addr), htons(be.Port)), Local: be.Flags&uint8(lbLbBackendFlagsLB_BE_LOCAL) != 0}
		d.backends[bk] = &backendRef{id: id}
		d.beIDs.take(id)
		d.restored = true
	}
	return nil
}

// batchAll reads every entry of m in batches of 4096 (a map walk entry by
// entry costs two syscalls per entry: seconds for 100 000 backends).
func batchAll[K, V any](m *ebpf.Map) ([]K, []V, error) {
	var (
		keys   []K
		vals   []V
		cursor ebpf.MapBatchCursor
	)
	kb, vb := make([]K, 4096), make([]V, 4096)
	for {
		n, err := m.BatchLookup(&cursor, kb, vb, nil)
		keys = append(keys, kb[:n]...)
		vals = append(vals, vb[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, vals, nil
		}
		if err != nil {
			return nil, nil, err
		}
	}
}
