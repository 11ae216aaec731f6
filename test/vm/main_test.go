// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// builds caches the binaries goBuild makes, one per package for the whole
// test process: the sources do not change during a run, and linking lbd
// costs seconds of CPU per test on a shared 2-core machine.
var builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// TestMain removes the build cache after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	builds.mu.Lock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
	builds.mu.Unlock()
	os.Exit(code)
}

// cachedBuild returns the binary of main package pkg (a path relative to
// this package), building it on first use.
func cachedBuild(pkg string) (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		return bin, nil
	}
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "lbd-lab-bins-")
		if err != nil {
			return "", fmt.Errorf("create build dir: %w", err)
		}
		builds.dir, builds.bins = dir, map[string]string{}
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	bin := filepath.Join(builds.dir, fmt.Sprintf("%d-%s", len(builds.bins), filepath.Base(pkg)))
	if b, err := exec.Command(goBin, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	builds.bins[pkg] = bin
	return bin, nil
}
