// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// Go's default GC lets the heap grow to twice the live data before it
// collects, and the resident set follows: 188 MiB for 57 MiB of live heap
// with 10 000 services (docs/performance.md). A soft memory limit makes
// the GC collect before that, so lbd sets one itself unless told.
const (
	// defaultMemoryLimit is the soft limit of --memory-limit auto. At
	// 10 000 services (static mode, 45 MiB live heap) lbd's resident set
	// is then 119 MiB with a peak of 134 MiB while the manifest loads
	// (128 MiB: peak 149; no limit: 151 MiB resident, peak 177). It
	// leaves the heap room to twice the live data up to 56 MiB of it, so
	// the GC runs no more often than Go's default below that; above, less
	// room, down to a third of the live heap (see autoLimit).
	defaultMemoryLimit = 112 << 20
	// cgroupShare is the part of the container's memory limit auto
	// allows the Go heap: the rest is for what the limit does not count
	// (mappings of the Maglev tables while written, thread stacks of cgo,
	// the kernel's page cache of the binary).
	cgroupShare = 0.75
	// memoryCheckInterval is how often auto compares the live heap with
	// the limit.
	memoryCheckInterval = 15 * time.Second
)

// memoryPolicy is what --memory-limit resolved to.
type memoryPolicy struct {
	limit int64 // bytes; 0: no limit set by lbd
	// auto: the limit follows the live heap (see autoLimit).
	auto bool
	// ceiling bounds auto (3/4 of the cgroup's limit), 0 without one.
	ceiling int64
	source  string // for the log: "flag", "GOMEMLIMIT", "auto"
}

// resolveMemoryLimit decides lbd's soft memory limit. An explicit
// --memory-limit wins; else GOMEMLIMIT, which the runtime applied already,
// is left alone; else auto. cgroupLimit is the container's limit (0:
// none).
func resolveMemoryLimit(flagVal string, flagSet bool, env string, cgroupLimit int64) (memoryPolicy, error) {
	if !flagSet && env != "" {
		return memoryPolicy{source: "GOMEMLIMIT"}, nil
	}
	switch strings.ToLower(strings.TrimSpace(flagVal)) {
	case "off", "0":
		return memoryPolicy{source: "flag"}, nil
	case "auto", "":
		p := memoryPolicy{auto: true, limit: defaultMemoryLimit, source: "auto"}
		if cgroupLimit > 0 {
			p.ceiling = int64(float64(cgroupLimit) * cgroupShare)
			p.limit = min(p.limit, p.ceiling)
		}
		return p, nil
	}
	n, err := parseBytes(flagVal)
	if err != nil {
		return memoryPolicy{}, fmt.Errorf("--memory-limit %q: %w", flagVal, err)
	}
	return memoryPolicy{limit: n, source: "flag"}, nil
}

// autoLimit is the limit for a live heap of live bytes: the default, or
// 4/3 of the live heap once it outgrows 3/4 of the default (a fixed limit
// at or below the live heap would make the GC run continuously: the
// runtime then caps it at half the CPU, and lbd would spend that on a
// large cluster), never above the ceiling. Not 2×: a passing burst (the
// 23 MB encoding of `lbd status -o json` at 10 000 services stays live
// until two GCs) must not raise the limit for good.
func (p memoryPolicy) autoLimit(live int64) int64 {
	l := max(int64(defaultMemoryLimit), live*4/3)
	if p.ceiling > 0 {
		l = min(l, p.ceiling)
	}
	return l
}

// applyMemoryLimit sets the policy's limit and, for auto, keeps it
// following the live heap until ctx ends.
func applyMemoryLimit(ctx context.Context, p memoryPolicy, log *slog.Logger) {
	if p.limit > 0 {
		debug.SetMemoryLimit(p.limit)
	}
	cur := debug.SetMemoryLimit(-1)
	lim := "none"
	if cur != math.MaxInt64 {
		lim = strconv.FormatInt(cur>>20, 10) + "MiB"
	}
	log.Info("memory limit", "limit", lim, "source", p.source)
	if !p.auto {
		return
	}
	go func() {
		t := time.NewTicker(memoryCheckInterval)
		defer t.Stop()
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return
			}
			want := p.autoLimit(int64(sample[0].Value.Uint64()))
			if prev := debug.SetMemoryLimit(-1); want != prev {
				debug.SetMemoryLimit(want)
				log.Info("memory limit follows the live heap", "limit", strconv.FormatInt(want>>20, 10)+"MiB", "liveHeap", strconv.FormatUint(sample[0].Value.Uint64()>>20, 10)+"MiB")
			}
		}
	}()
}

// parseBytes reads a size the way GOMEMLIMIT does (B, KiB, MiB, GiB, TiB)
// or Kubernetes quantities are written (Ki, Mi, Gi, Ti; k, M, G, T).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], s[i:]
	mult := map[string]int64{
		"": 1, "B": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
		"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (want B, KiB, MiB, GiB, Mi, Gi, ...)", unit)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("not a positive size in bytes")
	}
	return n * mult, nil
}

// cgroupMemoryLimit returns the memory limit of lbd's cgroup (v2, then
// v1), 0 when there is none or it cannot be read. In a container the
// cgroup namespace makes /sys/fs/cgroup the container's own.
func cgroupMemoryLimit() int64 {
	for _, f := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		// cgroup v1 says "no limit" with a number near 2^63.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}
