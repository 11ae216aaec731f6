// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"
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
	id       uint32
	svc      model.ServiceKey
	val      lbLbSvc
	backends []backendKey // sorted
	ranges   []netip.Prefix
	synced   bool // table written by this process
}

// desired is a frontend as the State wants it.
type desired struct {
	svc      model.ServiceKey
	flags    uint32
	timeout  uint32
	backends []backendKey
	ranges   []netip.Prefix
}

// Desired computes the frontends node self programs from st. Every node
// programs every VIP, owner or not, so a takeover needs no map writes.
// Backends are the ready endpoints (for externalTrafficPolicy: Local only
// those on self); when none is ready, serving terminating endpoints are used
// (as kube-proxy does) so a rolling restart does not black-hole. Backends are
// of the VIP's family only (IPv4 VIPs to IPv4 pods, IPv6 to IPv6).
func Desired(st *model.State, self string) (map[frontendKey]desired, error) {
	out := make(map[frontendKey]desired)
	var errs []error
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			for _, sp := range svc.Ports {
				fk := frontendKey{VIP: vip, Port: sp.Port, Proto: sp.Protocol}
				if prev, dup := out[fk]; dup {
					errs = append(errs, fmt.Errorf("service %s: %s:%d/%s already used by %s", svc.Key, vip, sp.Port, sp.Protocol, prev.svc))
					continue
				}
				out[fk] = desiredFor(svc, sp, vip, self)
			}
		}
	}
	return out, errors.Join(errs...)
}

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
}

// Sync programs the maps for st as seen from node self, writing only what
// changed since the last Sync (after a restart, the first Sync rewrites
// the Maglev tables once). Per-frontend failures are joined; the others are
// still applied. Writes are ordered so a packet never sees a frontend
// whose backends are not written yet.
func (d *Datapath) Sync(st *model.State, self string) (SyncStats, error) {
	want, derr := Desired(st, self)
	d.mu.Lock()
	defer d.mu.Unlock()
	var stats SyncStats
	errs := []error{derr}

	keys := make([]frontendKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpFrontend)
	for _, fk := range keys {
		if err := d.syncFrontend(fk, want[fk], &stats); err != nil {
			errs = append(errs, fmt.Errorf("frontend %s:%d/%s of %s: %w", fk.VIP, fk.Port, fk.Proto, want[fk].svc, err))
		}
	}
	for fk, fe := range d.frontends {
		if _, ok := want[fk]; !ok {
			if err := d.removeFrontend(fk, fe); err != nil {
				errs = append(errs, fmt.Errorf("remove frontend %s:%d/%s: %w", fk.VIP, fk.Port, fk.Proto, err))
			}
			stats.FrontendsRemoved++
		}
	}
	errs = append(errs, d.syncMarkers(want))
	for bk, ref := range d.backends {
		if ref.refs == 0 {
			d.objs.LbBackends.Put(ref.id, lbLbBackend{})
			d.beIDs.put(ref.id)
			delete(d.backends, bk)
			stats.BackendsRemoved++
		}
	}
	return stats, errors.Join(errs...)
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

func (d *Datapath) syncFrontend(fk frontendKey, w desired, stats *SyncStats) error {
	fe, exists := d.frontends[fk]
	if !exists {
		id, err := d.svcIDs.get()
		if err != nil {
			return fmt.Errorf("allocate service id (max %d): %w", d.opts.MaxServices, err)
		}
		// A reused id must not inherit the previous service's counters.
		d.resetStats(id)
		fe = &frontend{id: id}
		stats.FrontendsAdded++
	}
	fe.svc = w.svc
	if !exists || !fe.synced || !slices.Equal(fe.backends, w.backends) {
		ids, err := d.refBackends(w.backends, stats)
		if err != nil {
			return err
		}
		if err := d.writeTable(fe.id, w.backends, ids); err != nil {
			d.unrefBackends(w.backends)
			return err
		}
		if exists {
			d.unrefBackends(fe.backends)
			// Sticky clients must not stay on a backend that left.
			if fe.val.Flags&uint32(lbLbSvcFlagsLB_SVC_AFFINITY) != 0 {
				d.purgeAffinity(fe.id, w.backends)
			}
		}
		fe.backends = w.backends
		fe.synced = true
		stats.TablesWritten++
	}
	if !slices.Equal(fe.ranges, w.ranges) || !exists {
		if err := d.writeRanges(fe.id, fe.ranges, w.ranges); err != nil {
			return err
		}
		fe.ranges = w.ranges
	}
	val := lbLbSvc{Id: fe.id, Flags: w.flags, Backends: uint32(len(w.backends)), AffinityTimeout: w.timeout}
	if !exists || val != fe.val {
		if err := d.objs.LbServices.Put(svcKey(fk), val); err != nil {
			return fmt.Errorf("write service: %w", err)
		}
		if exists {
			stats.FrontendsUpdated++
		}
		fe.val = val
	}
	d.frontends[fk] = fe
	d.svcIDs.take(fe.id)
	return nil
}

func svcKey(fk frontendKey) lbLbSvcKey {
	return lbLbSvcKey{Addr: toKeyAddr(fk.VIP), Port: htons(fk.Port), Proto: uint8(fk.Proto)}
}

func (d *Datapath) refBackends(bs []backendKey, stats *SyncStats) ([]uint32, error) {
	ids := make([]uint32, len(bs))
	for i, bk := range bs {
		ref, ok := d.backends[bk]
		if !ok {
			id, err := d.beIDs.get()
			if err != nil {
				d.unrefBackends(bs[:i])
				return nil, fmt.Errorf("allocate backend id (max %d): %w", d.opts.MaxBackends, err)
			}
			var flags uint8
			if bk.Local {
				flags = uint8(lbLbBackendFlagsLB_BE_LOCAL)
			}
			v := lbLbBackend{Addr: toKeyAddr(bk.Addr.Addr()), Port: htons(bk.Addr.Port()), Flags: flags}
			if err := d.objs.LbBackends.Put(id, v); err != nil {
				d.beIDs.put(id)
				d.unrefBackends(bs[:i])
				return nil, fmt.Errorf("write backend %s: %w", bk.Addr, err)
			}
			ref = &backendRef{id: id}
			d.backends[bk] = ref
			stats.BackendsAdded++
		}
		ref.refs++
		ids[i] = ref.id
	}
	return ids, nil
}

func (d *Datapath) unrefBackends(bs []backendKey) {
	for _, bk := range bs {
		if ref, ok := d.backends[bk]; ok && ref.refs > 0 {
			ref.refs--
		}
	}
}

// writeTable writes a frontend's Maglev table in one batch.
func (d *Datapath) writeTable(id uint32, bs []backendKey, ids []uint32) error {
	m := d.maglev.Size()
	keys := make([]uint32, m)
	vals := make([]uint32, m)
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.Addr.String()
	}
	table := d.maglev.Table(names)
	for i := range keys {
		keys[i] = id*m + uint32(i)
		if table != nil {
			vals[i] = ids[table[i]]
		}
	}
	if _, err := d.objs.LbMaglev.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("write maglev table: %w", err)
	}
	return nil
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

func (d *Datapath) removeFrontend(fk frontendKey, fe *frontend) error {
	delete(d.frontends, fk)
	err := d.objs.LbServices.Delete(svcKey(fk))
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		err = nil
	}
	d.writeRanges(fe.id, fe.ranges, nil)
	d.unrefBackends(fe.backends)
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

// syncMarkers keeps one {VIP, 0, 0} entry per VIP.
func (d *Datapath) syncMarkers(want map[frontendKey]desired) error {
	vips := make(map[netip.Addr]bool)
	for fk := range want {
		vips[fk.VIP] = true
	}
	var errs []error
	marker := lbLbSvc{Flags: uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER)}
	for v := range vips {
		if !d.vips[v] {
			if err := d.objs.LbServices.Put(lbLbSvcKey{Addr: toKeyAddr(v)}, marker); err != nil {
				errs = append(errs, fmt.Errorf("write VIP marker %s: %w", v, err))
				continue
			}
			d.vips[v] = true
		}
	}
	for v := range d.vips {
		if !vips[v] {
			d.objs.LbServices.Delete(lbLbSvcKey{Addr: toKeyAddr(v)})
			delete(d.vips, v)
		}
	}
	return errors.Join(errs...)
}

func (d *Datapath) resetStats(id uint32) {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return
	}
	d.objs.LbStats.Put(id, make([]lbLbSvcStats, n))
}

// restore rebuilds ids from the pinned maps after a restart, so existing
// frontends keep their ids (and their Maglev tables keep serving) until the
// first Sync rewrites what changed.
func (d *Datapath) restore() error {
	var (
		k lbLbSvcKey
		v lbLbSvc
	)
	it := d.objs.LbServices.Iterate()
	for it.Next(&k, &v) {
		addr := fromKeyAddr(k.Addr)
		if v.Flags&uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER) != 0 {
			d.vips[addr] = true
			continue
		}
		if v.Id >= d.opts.MaxServices {
			continue
		}
		fk := frontendKey{VIP: addr, Port: htons(k.Port), Proto: model.Protocol(k.Proto)}
		d.frontends[fk] = &frontend{id: v.Id, val: v}
		d.svcIDs.take(v.Id)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate services: %w", err)
	}
	var (
		id uint32
		be lbLbBackend
	)
	bit := d.objs.LbBackends.Iterate()
	for bit.Next(&id, &be) {
		if be == (lbLbBackend{}) {
			continue
		}
		bk := backendKey{Addr: netip.AddrPortFrom(fromKeyAddr(be.Addr), htons(be.Port)), Local: be.Flags&uint8(lbLbBackendFlagsLB_BE_LOCAL) != 0}
		d.backends[bk] = &backendRef{id: id}
		d.beIDs.take(id)
	}
	return bit.Err()
}
