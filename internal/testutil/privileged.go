// SPDX-License-Identifier: Apache-2.0

package testutil

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Privileged gates a test that needs root (CAP_BPF, CAP_NET_ADMIN,
// CAP_SYS_ADMIN for namespaces). The test's name must start with
// "TestPrivileged" (or "BenchmarkPrivileged") so privileged tests are easy to
// find and select. Without the privileges it skips, except when CI=true or
// LBD_PRIVILEGED_TESTS=1, where it fails: CI runs as root and must never skip
// these tests silently.
func Privileged(tb testing.TB) {
	tb.Helper()
	name := tb.Name()
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	if !strings.HasPrefix(name, "TestPrivileged") && !strings.HasPrefix(name, "BenchmarkPrivileged") &&
		!strings.HasPrefix(name, "FuzzPrivileged") {
		tb.Fatalf("privileged test %s must be named TestPrivileged*", name)
	}
	if os.Geteuid() == 0 && hasCaps() {
		return
	}
	if os.Getenv("CI") == "true" || os.Getenv("LBD_PRIVILEGED_TESTS") == "1" {
		tb.Fatalf("%s needs root with CAP_BPF and CAP_NET_ADMIN (CI=true or LBD_PRIVILEGED_TESTS=1 forbids skipping)", name)
	}
	tb.Skipf("%s needs root with CAP_BPF and CAP_NET_ADMIN", name)
}

func hasCaps() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_NET_ADMIN) && has(unix.CAP_SYS_ADMIN)
}
