// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"

	"github.com/lbd-project/lbd/pkg/model"
)

// fpSeed keys the fingerprints: random per process (fingerprints are never
// stored across restarts), so no input is crafted to collide.
var (
	fpSeed     = maphash.MakeSeed()
	fpSeedWord = maphash.String(fpSeed, "lbd fingerprint")
)

// fp is a 64-bit multiply-xorshift accumulator: a few cycles a word, for
// a Sync that fingerprints every service of the State.
type fp uint64

func (h *fp) word(v uint64) {
	x := (uint64(*h) ^ v) * 0x9e3779b97f4a7c15
	*h = fp(bits.RotateLeft64(x, 29) ^ x>>31)
}

// str adds s exactly: up to 8 bytes packed into a word, longer strings
// through maphash.
func (h *fp) str(s string) {
	h.word(uint64(len(s)))
	if len(s) <= 8 {
		var b [8]byte
		copy(b[:], s)
		h.word(binary.LittleEndian.Uint64(b[:]))
		return
	}
	h.word(maphash.String(fpSeed, s))
}

func (h *fp) addr(a netip.Addr, extra uint64) {
	b := a.As16()
	h.word(binary.LittleEndian.Uint64(b[:8]))
	h.word(binary.LittleEndian.Uint64(b[8:]))
	h.word(extra<<1 | uint64(boolBit(a.Is4())))
}

// fingerprint hashes every field of svc that desiredFor reads, as node self
// sees them (an endpoint's node only matters as "self or not"). Sync skips
// a service whose fingerprint is the one it last wrote. A field that
// desiredFor starts to read must be added here (TestFingerprintFields).
func fingerprint(svc *model.Service, self string) uint64 {
	h := fp(fpSeedWord)
	h.str(svc.Key.Namespace)
	h.str(svc.Key.Name)
	h.word(uint64(len(svc.VIPs)))
	for _, v := range svc.VIPs {
		h.addr(v, 0)
	}
	h.word(uint64(len(svc.Ports)))
	for _, p := range svc.Ports {
		h.str(p.Name)
		h.word(uint64(p.Port)<<8 | uint64(p.Protocol))
	}
	h.word(uint64(svc.TrafficPolicy))
	h.word(uint64(svc.AffinityTimeout))
	h.word(uint64(len(svc.SourceRanges)))
	for _, r := range svc.SourceRanges {
		h.addr(r.Addr(), uint64(r.Bits()))
	}
	h.word(uint64(len(svc.Endpoints)))
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		flags := boolBit(ep.Ready) | boolBit(ep.Serving)<<1 | boolBit(ep.Terminating)<<2 | boolBit(ep.NodeName == self)<<3
		h.addr(ep.Addr, uint64(flags)<<8|uint64(len(ep.Ports)))
		for _, p := range ep.Ports {
			h.str(p.Name)
			h.word(uint64(p.Port)<<8 | uint64(p.Protocol))
		}
	}
	return uint64(h)
}

func boolBit(b bool) int {
	if b {
		return 1
	}
	return 0
}
