// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil"
)

// testPinDir returns a fresh pin directory on bpffs, removed after the test.
func testPinDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("lbd-test-%d-%s", os.Getpid(), sanitize(tb.Name())))
	if err := ensureBPFFS(dir); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

func TestPrivilegedLoad(t *testing.T) {
	testutil.Privileged(t)
	d, err := New(Options{PinDir: testPinDir(t), MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d.Close()
	if d.objs.LbXdp == nil || d.objs.LbTcIngress == nil || d.objs.LbTcEgress == nil {
		t.Fatal("programs missing")
	}
}

// A restart with a different Maglev size recreates only lb_maglev: the
// connection table (and so established flows) survives.
func TestPrivilegedReloadKeepsCompatibleMaps(t *testing.T) {
	testutil.Privileged(t)
	dir := testPinDir(t)
	d, err := New(Options{PinDir: dir, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	key := lbLbFlowKey{Sport: 1234, Dport: 80, Proto: 6}
	if err := d.objs.LbConntrack.Put(key, lbLbCt{SvcId: 7}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d2, err := New(Options{PinDir: dir, MaxServices: 64, MaglevSize: 2039})
	if err != nil {
		t.Fatalf("reload with another maglev size: %+v", err)
	}
	defer d2.Close()
	var ct lbLbCt
	if err := d2.objs.LbConntrack.Lookup(key, &ct); err != nil || ct.SvcId != 7 {
		t.Fatalf("connection table entry after reload: %+v, %v", ct, err)
	}
	info, err := d2.objs.LbMaglev.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxEntries != 64*2039 {
		t.Fatalf("lb_maglev holds %d, want %d", info.MaxEntries, 64*2039)
	}
}
