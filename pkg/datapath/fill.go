// SPDX-License-Identifier: Apache-2.0

package datapath

// MapFill is the fill level of one BPF map. Entries is -1 where counting
// would mean walking a large LRU map (lb_conntrack: the status snapshot
// counts it; lb_revnat and lb_affinity: not counted).
type MapFill struct {
	Map      string
	Entries  int64
	Capacity uint64
}

// MapFill returns the fill levels of the maps whose capacity an operator
// sizes (--max-services, --conntrack-size, ...), from lbd's own
// bookkeeping: no map is walked. Safe for concurrent use.
func (d *Datapath) MapFill() []MapFill {
	d.mu.Lock()
	defer d.mu.Unlock()
	return []MapFill{
		{Map: lbMapLbServices, Entries: int64(len(d.frontends) + len(d.vips)), Capacity: uint64(d.opts.MaxServices) * 2},
		{Map: lbMapLbBackends, Entries: int64(len(d.backends)), Capacity: uint64(d.opts.MaxBackends) - 1}, // id 0 unused
		{Map: lbMapLbConntrack, Entries: -1, Capacity: uint64(d.opts.ConntrackSize)},
		{Map: lbMapLbRevnat, Entries: -1, Capacity: uint64(d.opts.revnatSize())},
	}
}
