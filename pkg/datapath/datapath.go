// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/lbd-project/lbd/pkg/model"
)

// Datapath is the loaded BPF datapath of one node.
type Datapath struct {
	mu     sync.Mutex
	opts   Options
	objs   *lbObjects
	maglev *Maglev

	frontends map[frontendKey]*frontend
	vips      map[netip.Addr]int // frontends per VIP: its marker lives while > 0
	backends  map[backendKey]*backendRef
	memo      map[model.ServiceKey]*svcMemo // what the last Sync saw of each service
	self      string                        // the node the memos were made for
	order     []*svcMemo                    // the memos in the last State's order
	live      int                           // frontends wanted by the running Sync
	gen       uint64                        // Sync count: frontend.gen == gen is wanted now
	scratch   [4]maglevScratch              // one per table-filling worker
	restored  bool                          // backends restored from pins: the next Sync frees the unused
	svcIDs    *idPool
	beIDs     *idPool
	attached  map[string]Mode
	flowsOpen bool // a FlowReader is open (flows.go)
}

// New loads the datapath, reopening the maps pinned under opts.PinDir (so
// flows survive a restart) and restoring service and backend ids from
// them. Returns an error wrapping ebpf.ErrNotSupported when the kernel
// lacks a needed feature.
func New(opts Options) (*Datapath, error) {
	if err := opts.defaults(); err != nil {
		return nil, fmt.Errorf("datapath options: %w", err)
	}
	mg, err := NewMaglev(opts.MaglevSize)
	if err != nil {
		return nil, err
	}
	objs, err := loadObjects(&opts)
	if err != nil {
		return nil, err
	}
	d := &Datapath{
		opts:      opts,
		objs:      objs,
		maglev:    mg,
		frontends: make(map[frontendKey]*frontend),
		vips:      make(map[netip.Addr]int),
		memo:      make(map[model.ServiceKey]*svcMemo),
		backends:  make(map[backendKey]*backendRef),
		svcIDs:    newIDPool(0, opts.MaxServices-1),
		beIDs:     newIDPool(1, opts.MaxBackends-1), // 0 means "none" in lb_maglev
		attached:  make(map[string]Mode),
	}
	if err := d.restore(); err != nil {
		objs.Close()
		return nil, fmt.Errorf("restore datapath state from pinned maps: %w", err)
	}
	return d, nil
}

// Close releases lbd's handles. Pinned maps and links stay, so traffic keeps
// flowing until the next lbd takes over; use Cleanup to remove them.
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.objs.Close()
}

// Cleanup detaches every program lbd attached and removes all its pins:
// removing a link's pin drops its last reference, which detaches it.
func Cleanup(pinDir string) error {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("remove pins under %s: %w", pinDir, err)
	}
	return nil
}

// Options returns the effective options.
func (d *Datapath) Options() Options { return d.opts }

// toKeyAddr converts an address to the datapath's 16-byte layout (IPv4 as
// v4-mapped IPv6).
func toKeyAddr(a netip.Addr) [16]uint8 {
	if a.Is4() {
		return netip.AddrFrom16(a.As16()).As16()
	}
	return a.As16()
}

func fromKeyAddr(b [16]uint8) netip.Addr {
	return netip.AddrFrom16(b).Unmap()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// idPool hands out small integer ids, lowest first, for stable map slots.
type idPool struct {
	next, max uint32
	free      []uint32
	used      map[uint32]bool
}

func newIDPool(min, max uint32) *idPool {
	return &idPool{next: min, max: max, used: make(map[uint32]bool)}
}

var errIDsExhausted = errors.New("ids exhausted")

func (p *idPool) get() (uint32, error) {
	for len(p.free) > 0 {
		id := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		if !p.used[id] {
			p.used[id] = true
			return id, nil
		}
	}
	for p.next <= p.max {
		id := p.next
		p.next++
		if !p.used[id] {
			p.used[id] = true
			return id, nil
		}
	}
	return 0, errIDsExhausted
}

func (p *idPool) take(id uint32) { p.used[id] = true }

func (p *idPool) put(id uint32) {
	if p.used[id] {
		delete(p.used, id)
		p.free = append(p.free, id)
	}
}
