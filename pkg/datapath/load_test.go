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
