// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
	lab "github.com/lbd-project/lbd/test/vm"
)

// TestMain lets the test binary serve as the load generator the runner
// starts in the client namespace ("<binary> loadgen ...").
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		if err := LoadgenMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestPrivilegedDatapathSmoke runs every mode and test once, briefly, with
// 1 and 50 services on a real lab with the real lbd, and checks that each
// sample counted answers.
func TestPrivilegedDatapathSmoke(t *testing.T) {
	testutil.Privileged(t)
	for _, tool := range []string{"iptables-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build := func(out, pkg string) string {
		p := filepath.Join(bin, out)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p, pkg)
		cmd.Dir = "../.."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, b)
		}
		return p
	}
	lbd, pod := build("lbd", "./cmd/lbd"), build("podserver", "./test/vm/podserver")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(ctx, lab.Options{Nodes: LabNodes, PodServer: pod, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	modes := []string{ModeLBD, ModeIptables, ModeNftables}
	tests := []string{TestCPS, TestRPS, TestUDP}
	res, err := Datapath(ctx, DatapathOptions{
		Lab: l, LBD: lbd, Self: self,
		Counts: []int{1, 50}, Modes: modes, Tests: tests,
		Reps: 1, Duration: time.Second, Conc: 4,
		Deadline: time.Now().Add(3 * time.Minute), Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Notes {
		t.Errorf("note: %s", n)
	}
	rows := Rows(res.Samples, modes, []int{1, 50}, tests)
	if len(rows) != len(modes)*2*len(tests) {
		t.Errorf("%d rows, want %d", len(rows), len(modes)*2*len(tests))
	}
	for _, r := range rows {
		if r.Rate.Median <= 0 {
			t.Errorf("%s %d services %s: no answers (%d errors: %s)", r.Mode, r.Services, r.Test, r.Errors, r.FirstErr)
		}
	}
	if res.LBDRSS[50] == 0 {
		t.Error("lbd's RSS with 50 services was not read")
	}
}
