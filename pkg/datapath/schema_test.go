// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// mapSchema is the Go key and value types lbd uses with each map. The C side
// is bpf/lib/maps.h; the Go structs are generated from it, and this table is
// what the rest of the package passes to Lookup/Put. A size mismatch means a
// silently misread map, so every map must be listed.
var mapSchema = map[string]struct {
	key, value any
	perCPU     bool
}{
	lbMapLbServices:  {key: lbLbSvcKey{}, value: lbLbSvc{}},
	lbMapLbMaglev:    {key: uint32(0), value: uint32(0)},
	lbMapLbBackends:  {key: uint32(0), value: lbLbBackend{}},
	lbMapLbConntrack: {key: lbLbFlowKey{}, value: lbLbCt{}},
	lbMapLbRevnat:    {key: lbLbFlowKey{}, value: lbLbRev{}},
	lbMapLbAffinity:  {key: lbLbAffinityKey{}, value: lbLbAffinityEntry{}},
	lbMapLbSrcRanges: {key: lbLbSrcKey{}, value: uint8(0)},
	lbMapLbStats:     {key: uint32(0), value: lbLbSvcStats{}, perCPU: true},
	lbMapLbReasons:   {key: uint32(0), value: uint64(0), perCPU: true},
	lbMapLbScratch:   {key: uint32(0), value: lbLbScratch{}, perCPU: true},
	// A ring buffer has no key or value; its records are lbLbFlowEvent,
	// generated from the same struct the programs write (flows.go).
	lbMapLbFlowEvents: {key: struct{}{}, value: struct{}{}},
	lbMapLbFlowStats:  {key: uint32(0), value: uint64(0), perCPU: true},
}

func TestSchemaMapSizes(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	for name, ms := range spec.Maps {
		// .rodata and friends hold the load-time constants, not map data.
		if strings.HasPrefix(name, ".") {
			continue
		}
		s, ok := mapSchema[name]
		if !ok {
			t.Errorf("map %s has no Go schema in mapSchema", name)
			continue
		}
		if got := binary.Size(s.key); got != int(ms.KeySize) {
			t.Errorf("%s: Go key %T is %d bytes, map key is %d", name, s.key, got, ms.KeySize)
		}
		if got := binary.Size(s.value); got != int(ms.ValueSize) {
			t.Errorf("%s: Go value %T is %d bytes, map value is %d", name, s.value, got, ms.ValueSize)
		}
		perCPU := ms.Type == ebpf.PerCPUArray || ms.Type == ebpf.PerCPUHash || ms.Type == ebpf.LRUCPUHash
		if perCPU != s.perCPU {
			t.Errorf("%s: per-CPU = %v, schema says %v", name, perCPU, s.perCPU)
		}
	}
	for name := range mapSchema {
		if _, ok := spec.Maps[name]; !ok {
			t.Errorf("schema lists %s, which the object does not define", name)
		}
	}
}

// TestSchemaKeyPadding: hash and LPM keys are compared as raw bytes, so a
// key struct with implicit padding (bytes C may leave uninitialised) would
// make lookups miss at random. Every key struct must spell its padding out
// as named fields: its members add up to its size.
func TestSchemaKeyPadding(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{lbMapLbServices, lbMapLbConntrack, lbMapLbRevnat, lbMapLbAffinity, lbMapLbSrcRanges} {
		st, ok := btf.UnderlyingType(spec.Maps[name].Key).(*btf.Struct)
		if !ok {
			t.Errorf("%s: key type %v is not a struct", name, spec.Maps[name].Key)
			continue
		}
		sum := 0
		for _, m := range st.Members {
			n, err := btf.Sizeof(m.Type)
			if err != nil {
				t.Fatalf("%s: size of %s.%s: %v", name, st.Name, m.Name, err)
			}
			sum += n
		}
		if sum != int(st.Size) {
			t.Errorf("%s: key %s members add up to %d bytes, the struct is %d: implicit padding", name, st.Name, sum, st.Size)
		}
	}
}

func TestSchemaMaxEntries(t *testing.T) {
	for name, o := range map[string]Options{
		"defaults": {},
		"custom":   {ConntrackSize: 1000, MaxServices: 64, MaglevSize: 251, MaxBackends: 300},
	} {
		t.Run(name, func(t *testing.T) {
			if err := o.defaults(); err != nil {
				t.Fatal(err)
			}
			spec, err := loadSpec(&o)
			if err != nil {
				t.Fatal(err)
			}
			got := func(name string) uint32 { return spec.Maps[name].MaxEntries }
			// Every flow has one conntrack and one revnat entry; losing
			// the reverse one breaks a live flow where losing the
			// conntrack one mostly does not, so lb_revnat is the larger
			// LRU (twice: revnatSize).
			if got(lbMapLbRevnat) != 2*got(lbMapLbConntrack) {
				t.Errorf("lb_conntrack holds %d, lb_revnat %d: want twice as many", got(lbMapLbConntrack), got(lbMapLbRevnat))
			}
			if got(lbMapLbConntrack) != o.ConntrackSize {
				t.Errorf("lb_conntrack holds %d, want ConntrackSize %d", got(lbMapLbConntrack), o.ConntrackSize)
			}
			for name, want := range map[string]uint32{
				lbMapLbServices: 2 * o.MaxServices, // frontends + VIP markers
				lbMapLbStats:    o.MaxServices,     // indexed by service id
				lbMapLbMaglev:   o.MaxServices * o.MaglevSize,
				lbMapLbBackends: o.MaxBackends,
				lbMapLbReasons:  64, // LB_R_SLOTS: room for new reasons without a layout change
			} {
				if got(name) != want {
					t.Errorf("%s holds %d, want %d", name, got(name), want)
				}
			}
		})
	}
}

// TestSchemaReasonNames: every reason has a metric name from the C enum.
func TestSchemaReasonNames(t *testing.T) {
	var names []string
	for r := uint32(0); r < uint32(lbLbReasonLB_R_MAX); r++ {
		n := ReasonName(r)
		if strings.HasPrefix(n, "reason_") || n == "" {
			t.Errorf("reason %d has no name (%q)", r, n)
		}
		names = append(names, n)
	}
	for _, want := range []string{"pass", "fwd", "fwd_stack", "revnat", "drop_no_backend", "drop_no_port",
		"drop_fragment", "drop_src_range", "drop_malformed", "drop_ttl", "pass_malformed"} {
		if !slices.Contains(names, want) {
			t.Errorf("reason %q missing from %v", want, names)
		}
	}
	if got := ReasonName(uint32(lbLbReasonLB_R_MAX)); got != fmt.Sprintf("reason_%d", lbLbReasonLB_R_MAX) {
		t.Errorf("ReasonName(MAX) = %q", got)
	}
}
