// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// backendNames returns n backend names the way Sync spells them
// (netip.AddrPort.String()).
func backendNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("10.241.2.%d:8080", i+1)
	}
	return names
}

func mustMaglev(tb testing.TB, m uint32) *Maglev {
	tb.Helper()
	g, err := NewMaglev(m)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// byName maps a table of indexes to the backend names, so tables built from
// differently ordered inputs can be compared.
func byName(table []int, names []string) []string {
	out := make([]string, len(table))
	for i, v := range table {
		out[i] = names[v]
	}
	return out
}

// runLength summarises the first slots of a table as "name*count" runs.
func runLength(slots []string) string {
	var b strings.Builder
	for i := 0; i < len(slots); {
		j := i
		for j < len(slots) && slots[j] == slots[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s*%d", strings.TrimSuffix(slots[i], ":8080"), j-i)
		i = j
	}
	return b.String()
}

func digest(slots []string) string {
	s := sha256.Sum256([]byte(strings.Join(slots, ",")))
	return hex.EncodeToString(s[:8])
}

// TestMaglevGolden pins the table of a fixed backend set. Every lbd of a
// cluster must compute the same table from the same backends (a flow moved by
// a VIP takeover must land on the same backend), and so must every lbd
// version: a change here breaks established flows on upgrade, so it must be
// deliberate. The golden values were computed once by this implementation
// after TestMaglevProperties held for them.
func TestMaglevGolden(t *testing.T) {
	g := mustMaglev(t, DefaultMaglevSize)
	names := backendNames(5)
	slots := byName(g.Table(names), names)

	const (
		wantHead   = "10.241.2.5*1 10.241.2.2*1 10.241.2.3*1 10.241.2.1*1 10.241.2.4*1 10.241.2.5*1 10.241.2.1*1 10.241.2.5*3 10.241.2.1*1 10.241.2.3*1 10.241.2.2*2 10.241.2.4*1 10.241.2.2*1"
		wantDigest = "d892c0a720008126" // sha256 of the comma-joined names, first 8 bytes
	)
	if got := runLength(slots[:16]); got != wantHead {
		t.Errorf("first 16 slots:\n got %s\nwant %s", got, wantHead)
	}
	if got := digest(slots); got != wantDigest {
		t.Errorf("table digest = %s, want %s", got, wantDigest)
	}
	counts := make(map[string]int)
	for _, s := range slots {
		counts[s]++
	}
	// 1021 = 5*204 + 1: the name filled first in the last round gets 205.
	want := map[string]int{"10.241.2.1:8080": 205, "10.241.2.2:8080": 204, "10.241.2.3:8080": 204, "10.241.2.4:8080": 204, "10.241.2.5:8080": 204}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("slot counts (-want +got):\n%s", diff)
	}
}

func TestMaglevProperties(t *testing.T) {
	for _, m := range []uint32{DefaultMaglevSize, 16381} {
		for _, n := range []int{1, 2, 3, 10, 97} {
			t.Run(fmt.Sprintf("m=%d/n=%d", m, n), func(t *testing.T) {
				g := mustMaglev(t, m)
				names := backendNames(n)
				table := g.Table(names)
				if len(table) != int(m) {
					t.Fatalf("len(table) = %d, want %d", len(table), m)
				}
				counts := make([]int, n)
				for i, v := range table {
					if v < 0 || v >= n {
						t.Fatalf("slot %d = %d, not a backend index in [0,%d)", i, v, n)
					}
					counts[v]++
				}
				// Maglev fills slots in rounds, one per backend per round,
				// so shares differ by at most one slot.
				lo, hi := slices.Min(counts), slices.Max(counts)
				if hi-lo > 1 {
					t.Errorf("shares range %d..%d, want within one slot", lo, hi)
				}
				ideal := float64(m) / float64(n)
				for i, c := range counts {
					if d := float64(c) - ideal; d > 0.01*float64(m) || d < -0.01*float64(m) {
						t.Errorf("backend %d has %d slots, ideal %.1f (more than 1%% of %d off)", i, c, ideal, m)
					}
				}
			})
		}
	}
}

func TestMaglevEmpty(t *testing.T) {
	g := mustMaglev(t, DefaultMaglevSize)
	if got := g.Table(nil); got != nil {
		t.Errorf("Table(nil) = %d slots, want nil", len(got))
	}
}

// TestMaglevDisruption removes each one of 10 backends in turn and counts
// the slots of surviving backends that change hands. Maglev is only
// near-minimal: the measured churn among survivors is 2.3-5.1% with the
// default 1021 slots (about 100 per backend) and under 1% from 16381 slots.
// That is the algorithm's (the same sizes with SHA-256-derived offsets and
// skips churn as much), so the 2% bound is checked where the table is large
// enough for it, and the default size gets a looser bound that still
// catches a table that reshuffles (a non-consistent hash moves ~90%).
func TestMaglevDisruption(t *testing.T) {
	for _, tc := range []struct {
		m        uint32
		maxMoved float64
	}{
		{DefaultMaglevSize, 0.06},
		{16381, 0.02},
		{65537, 0.02},
	} {
		t.Run(fmt.Sprintf("m=%d", tc.m), func(t *testing.T) {
			g := mustMaglev(t, tc.m)
			names := backendNames(10)
			before := byName(g.Table(names), names)
			for r := range names {
				rest := slices.Delete(slices.Clone(names), r, r+1)
				after := byName(g.Table(rest), rest)
				moved, kept := 0, 0
				for i := range before {
					if before[i] == names[r] {
						if after[i] == names[r] {
							t.Fatalf("slot %d still maps to removed backend %s", i, names[r])
						}
						continue
					}
					if after[i] != before[i] {
						moved++
					} else {
						kept++
					}
				}
				if frac := float64(moved) / float64(moved+kept); frac > tc.maxMoved {
					t.Errorf("removing %s moved %d of %d survivor slots (%.2f%%), want <= %.0f%%",
						names[r], moved, moved+kept, 100*frac, 100*tc.maxMoved)
				}
			}
		})
	}
}

// TestMaglevOrderIndependent: nodes see endpoints in arbitrary order, yet
// all must agree on the table.
func TestMaglevOrderIndependent(t *testing.T) {
	g := mustMaglev(t, DefaultMaglevSize)
	names := backendNames(10)
	want := byName(g.Table(names), names)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		shuffled := slices.Clone(names)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		got := byName(g.Table(shuffled), shuffled)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("shuffle %d (%v) changed the table (-want +got):\n%s", i, shuffled, diff)
		}
	}
}

func TestMaglevSize(t *testing.T) {
	for _, m := range []uint32{0, 1, 2, 4, 9, 1000, 1024, 1 << 16, 65535, 4294967295} {
		if _, err := NewMaglev(m); !errors.Is(err, ErrMaglevSize) {
			t.Errorf("NewMaglev(%d) error = %v, want ErrMaglevSize", m, err)
		}
	}
	for _, m := range []uint32{3, 251, DefaultMaglevSize, 16381, 65537, 4294967291} {
		g, err := NewMaglev(m)
		if err != nil {
			t.Errorf("NewMaglev(%d): %v", m, err)
			continue
		}
		if g.Size() != m {
			t.Errorf("NewMaglev(%d).Size() = %d", m, g.Size())
		}
	}
}

func BenchmarkMaglevTable(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("m=%d/n=%d", DefaultMaglevSize, n), func(b *testing.B) {
			g := mustMaglev(b, DefaultMaglevSize)
			names := backendNames(n)
			for b.Loop() {
				g.Table(names)
			}
		})
	}
}

// referenceTable is the textbook Maglev population (one division per
// probe, a hasher per name): the fast fill must produce exactly its
// tables, so nodes running either agree and an upgrade moves no flow.
func referenceTable(m uint64, names []string) []int {
	n := len(names)
	offset, skip, next := make([]uint64, n), make([]uint64, n), make([]uint64, n)
	for i, name := range names {
		h := fnv.New64a()
		h.Write([]byte(name))
		a := h.Sum64()
		h.Write([]byte{0x9e, 0x37, 0x79, 0xb9})
		offset[i], skip[i] = a%m, h.Sum64()%(m-1)+1
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
	table := make([]int, m)
	for i := range table {
		table[i] = -1
	}
	for filled := uint64(0); ; {
		for _, i := range order {
			c := (offset[i] + next[i]*skip[i]) % m
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % m
			}
			table[c] = i
			next[i]++
			if filled++; filled == m {
				return table
			}
		}
	}
}

func TestMaglevTableMatchesReference(t *testing.T) {
	for _, m := range []uint32{7, 1021, 16381} {
		g, err := NewMaglev(m)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 2, 3, 10, 100} {
			var names []string
			for i := range n {
				names = append(names, fmt.Sprintf("10.%d.%d.%d:8080", n, i/256, i%256))
			}
			if diff := cmp.Diff(referenceTable(uint64(m), names), g.Table(names)); diff != "" {
				t.Errorf("m=%d n=%d: table differs from the reference (-want +got):\n%s", m, n, diff)
			}
		}
	}
}
