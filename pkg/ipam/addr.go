// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strconv"

	"github.com/lbd-project/lbd/pkg/model"
)

// maxProbes bounds the addresses one search for a free address examines in
// one range, so that a pathological pool (a /64 whose first 2^40 addresses
// are taken) cannot stall the reconcile loop.
const maxProbes = 1 << 16

// familyOf returns the family of a valid address.
func familyOf(a netip.Addr) model.Family {
	if a.Is4() {
		return model.IPv4
	}
	return model.IPv6
}

func familyName(f model.Family) string {
	switch f {
	case model.IPv4:
		return "IPv4"
	case model.IPv6:
		return "IPv6"
	}
	return "family-" + strconv.Itoa(int(f))
}

// buggy reports whether a is an IPv4 address ending in .0 or .255. Some old
// client stacks treat those as network or broadcast addresses of a classful
// /24 and will not talk to them.
func buggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

// rangeSize returns the number of usable addresses in r, saturating at
// math.MaxUint64 (an IPv6 /64 has exactly 2^64 and does not fit).
func rangeSize(r model.AddrRange, avoidBuggy bool) uint64 {
	if r.First.Is4() {
		f := uint64(binary.BigEndian.Uint32(r.First.AsSlice()))
		l := uint64(binary.BigEndian.Uint32(r.Last.AsSlice()))
		n := l - f + 1
		if avoidBuggy {
			n -= buggyUpTo(l) - buggyUpTo(f) + boolToUint(buggy(r.First))
		}
		return n
	}
	fb, lb := r.First.As16(), r.Last.As16()
	fhi, flo := binary.BigEndian.Uint64(fb[:8]), binary.BigEndian.Uint64(fb[8:])
	lhi, llo := binary.BigEndian.Uint64(lb[:8]), binary.BigEndian.Uint64(lb[8:])
	hi := lhi - fhi
	lo := llo - flo
	if llo < flo {
		hi-- // borrow
	}
	if hi > 0 || lo == math.MaxUint64 {
		return math.MaxUint64
	}
	return lo + 1
}

// buggyUpTo counts the values in [0, n] whose low byte is 0 or 255.
func buggyUpTo(n uint64) uint64 {
	return n/256 + 1 + (n+1)/256
}

func boolToUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// satAdd adds without wrapping past math.MaxUint64.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
