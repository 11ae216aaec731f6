// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolveMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name    string
		flag    string
		flagSet bool
		env     string
		cgroup  int64
		want    memoryPolicy
	}{
		{name: "auto without cgroup limit", flag: "auto", want: memoryPolicy{limit: 112 * mib, auto: true, source: "auto"}},
		{name: "auto under the DaemonSet's 256Mi", flag: "auto", cgroup: 256 * mib, want: memoryPolicy{limit: 112 * mib, auto: true, ceiling: 192 * mib, source: "auto"}},
		{name: "auto in a small container", flag: "auto", cgroup: 128 * mib, want: memoryPolicy{limit: 96 * mib, auto: true, ceiling: 96 * mib, source: "auto"}},
		{name: "GOMEMLIMIT wins over the default", flag: "auto", env: "300MiB", want: memoryPolicy{source: "GOMEMLIMIT"}},
		{name: "explicit flag wins over GOMEMLIMIT", flag: "192MiB", flagSet: true, env: "300MiB", want: memoryPolicy{limit: 192 * mib, source: "flag"}},
		{name: "Kubernetes spelling", flag: "160Mi", flagSet: true, want: memoryPolicy{limit: 160 * mib, source: "flag"}},
		{name: "off", flag: "off", flagSet: true, want: memoryPolicy{source: "flag"}},
	} {
		got, err := resolveMemoryLimit(c.flag, c.flagSet, c.env, c.cgroup)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(memoryPolicy{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	for _, bad := range []string{"12 parsecs", "-5MiB", "MiB", "1.5GiB"} {
		if _, err := resolveMemoryLimit(bad, true, "", 0); err == nil {
			t.Errorf("--memory-limit %q: no error", bad)
		}
	}
}

// TestAutoLimitFollowsLiveHeap: auto keeps the default while the live
// heap is small, gives 4/3 of the live heap once it is not (no GC running
// continuously on a large cluster), and never exceeds the ceiling.
func TestAutoLimitFollowsLiveHeap(t *testing.T) {
	const mib = 1 << 20
	p := memoryPolicy{auto: true, limit: 112 * mib, ceiling: 192 * mib}
	for live, want := range map[int64]int64{10 * mib: 112 * mib, 83 * mib: 112 * mib, 90 * mib: 120 * mib, 150 * mib: 192 * mib} {
		if got := p.autoLimit(live); got != want {
			t.Errorf("live %d MiB: limit %d MiB, want %d MiB", live/mib, got/mib, want/mib)
		}
	}
	if got := (memoryPolicy{auto: true}).autoLimit(300 * mib); got != 400*mib {
		t.Errorf("no ceiling, live 300 MiB: limit %d MiB, want 400", got/mib)
	}
}

// TestApplyMemoryLimit: the runtime's limit is the one resolved.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := resolveMemoryLimit("auto", false, "", 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	applyMemoryLimit(ctx, p, slog.New(slog.DiscardHandler))
	if got := debug.SetMemoryLimit(-1); got != 112<<20 {
		t.Errorf("runtime memory limit %d, want %d", got, 112<<20)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	applyMemoryLimit(ctx, memoryPolicy{source: "GOMEMLIMIT"}, slog.New(slog.DiscardHandler))
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("GOMEMLIMIT policy changed the limit to %d", got)
	}
}
