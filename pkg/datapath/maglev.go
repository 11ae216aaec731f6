// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
	"slices"
	"strings"
)

// DefaultMaglevSize is the Maglev table size per service: a prime. Each
// service costs 4 bytes per slot in the kernel (1021 slots = 4 KiB). Keep it
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
	n := len(names)
	if n == 0 {
		return nil
	}
	m := g.m
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	for i, name := range names {
		h1, h2 := hash2(name)
		offset[i] = h1 % m
		skip[i] = h2%(m-1) + 1
	}
	// Fill in name order so the result is independent of input order.
	order := sortedIndex(names)
	next := make([]uint64, n)
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for {
		for _, i := range order {
			c := (offset[i] + next[i]*skip[i]) % m
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % m
			}
			table[c] = i
			next[i]++
			filled++
			if filled == m {
				return table
			}
		}
	}
}

func hash2(s string) (uint64, uint64) {
	h := fnv.New64a()
	h.Write([]byte(s))
	a := h.Sum64()
	h.Write([]byte{0x9e, 0x37, 0x79, 0xb9})
	return a, h.Sum64()
}

func sortedIndex(names []string) []int {
	idx := make([]int, len(names))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	return idx
}
