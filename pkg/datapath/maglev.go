// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// DefaultMaglevSize is the Maglev table size per service: a prime. Each
// service costs 8 bytes per slot in the kernel (an array map stores a
// 4-byte value in 8; 1021 slots = 8 KiB, preallocated for every
// MaxServices) and nothing in lbd's heap between Syncs. Keep it
// at least ~100x the largest backend count for an even spread (1021 suits up
// to ~10 backends within a few percent; use 16381 for services with
// hundreds of backends).
const DefaultMaglevSize = 1021

// ErrMaglevSize is returned for a table size that is not a prime > 2.
var ErrMaglevSize = errors.New("maglev table size must be a prime > 2")

// Maglev computes Maglev consistent-hashing tables (Eisenbud et al., NSDI
// 2016) of a fixed size. It is stateless and safe for concurrent use.
type Maglev struct {
	m uint64
}

// NewMaglev returns a Maglev of table size m. Returns ErrMaglevSize unless
// m is a prime > 2 and fits the kernel's u32 index.
func NewMaglev(m uint32) (*Maglev, error) {
	if m <= 2 || !big.NewInt(int64(m)).ProbablyPrime(20) {
		return nil, fmt.Errorf("maglev size %d: %w", m, ErrMaglevSize)
	}
	return &Maglev{m: uint64(m)}, nil
}

// Size returns the table size.
func (g *Maglev) Size() uint32 { return uint32(g.m) }

// Table fills a table of backend indexes (into names) so that every slot
// holds one backend, backends get shares within a slot of each other, and
// removing one of N backends moves only ~1/N of the slots. names must be
// distinct; their order does not matter for which slots a backend gets, only
// the names do, so every node computes the same table. With no names the
// table is nil.
func (g *Maglev) Table(names []string) []int {
	if len(names) == 0 {
		return nil
	}
	var s maglevScratch
	for _, n := range names {
		s.add([]byte(n))
	}
	t := g.fill(&s)
	out := make([]int, len(t))
	for i, v := range t {
		out[i] = int(v)
	}
	return out
}

// maglevScratch holds one table computation's inputs and buffers, reused
// from one service to the next so a Sync of thousands of services does not
// allocate per service. Names are added as bytes (add), then fill.
type maglevScratch struct {
	names []byte // the names, back to back
	ends  []int  // end of name i in names
	pos   []uint64
	skip  []uint64
	order []int
	table []int32
	// For the caller: a name's bytes and the backend ids of a table.
	buf []byte
	ids []uint64
}

func (s *maglevScratch) reset() {
	s.names, s.ends = s.names[:0], s.ends[:0]
}

func (s *maglevScratch) add(name []byte) {
	s.names = append(s.names, name...)
	s.ends = append(s.ends, len(s.names))
}

func (s *maglevScratch) name(i int) []byte {
	start := 0
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.names[start:s.ends[i]]
}

// fill computes the table of the names in s; the result is s's buffer,
// valid until the next fill. Each backend's preference list is
// offset + j*skip (mod m); the position in it is kept as the slot itself,
// advanced by one addition, not recomputed with a division per probe.
func (g *Maglev) fill(s *maglevScratch) []int32 {
	n := len(s.ends)
	m := g.m
	s.pos = resize(s.pos, n)
	s.skip = resize(s.skip, n)
	s.order = resize(s.order, n)
	s.table = resize(s.table, int(m))
	for i := range n {
		h1, h2 := hash2(s.name(i))
		s.pos[i] = h1 % m
		s.skip[i] = h2%(m-1) + 1
		s.order[i] = i
	}
	// Fill in name order so the result is independent of input order.
	slices.SortFunc(s.order, func(a, b int) int { return bytes.Compare(s.name(a), s.name(b)) })
	table := s.table
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for {
		for _, i := range s.order {
			c, skip := s.pos[i], s.skip[i]
			for table[c] >= 0 {
				if c += skip; c >= m {
					c -= m
				}
			}
			table[c] = int32(i)
			if c += skip; c >= m {
				c -= m
			}
			s.pos[i] = c
			filled++
			if filled == m {
				return table
			}
		}
	}
}

func resize[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// hash2 is two FNV-1a 64 hashes of s: of s, and of s followed by 4 fixed
// bytes (the state carried on), inline so no hasher is allocated.
func hash2(s []byte) (uint64, uint64) {
	const prime = 1099511628211
	a := uint64(14695981039346656037)
	for _, c := range s {
		a ^= uint64(c)
		a *= prime
	}
	b := a
	for _, c := range [4]byte{0x9e, 0x37, 0x79, 0xb9} {
		b ^= uint64(c)
		b *= prime
	}
	return a, b
}
