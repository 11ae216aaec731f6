// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil"
)

// socketGroup is the gid given to --socket-group; no name is needed.
const socketGroup = 4242

// runAs runs lbd args as uid/gid 65534 (nobody) with the supplementary
// groups given and returns its exit code and output.
func runAs(t *testing.T, bin string, groups []uint32, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("run %v as nobody: %v", args, err)
	}
	return 0, string(out)
}

// TestPrivilegedSocketAccess: the status socket of a real daemon is 0600
// and root's by default, 0660 and the group's with --socket-group. A user
// outside the group is refused by `lbd status` and `lbd flows` (exit 5,
// a message naming the cause), a member of it is served.
func TestPrivilegedSocketAccess(t *testing.T) {
	testutil.Privileged(t)
	for _, tc := range []struct {
		name     string
		flags    []string
		wantMode os.FileMode
		wantGID  uint32
	}{
		{"root only", nil, 0o600, 0},
		{"group", []string{"--socket-group=4242"}, 0o660, socketGroup},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			n := startNode(t, tc.flags...)
			n.waitVIP(t)
			fi, err := os.Stat(n.socket)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != tc.wantMode || st.Uid != 0 || st.Gid != tc.wantGID {
				t.Errorf("socket mode %v owner %d:%d, want %v 0:%d", fi.Mode().Perm(), st.Uid, st.Gid, tc.wantMode, tc.wantGID)
			}
			for _, sub := range []string{"status", "flows"} {
				code, out := runAs(t, n.bin, nil, sub, "--socket="+n.socket)
				if code != exitPermission || !strings.Contains(out, "permission denied") {
					t.Errorf("lbd %s as nobody: exit %d, output %q; want exit %d and permission denied", sub, code, out, exitPermission)
				}
			}
			if tc.wantGID == 0 {
				return
			}
			// A member of the group reads the status (exit 0 or 3: the
			// node may have warnings) and the flows.
			code, out := runAs(t, n.bin, []uint32{socketGroup}, "status", "--socket="+n.socket)
			if (code != 0 && code != exitWarnings) || !strings.Contains(out, "node node-1") {
				t.Errorf("lbd status as a member of %d: exit %d, output:\n%s", socketGroup, code, out)
			}
			code, out = runAs(t, n.bin, []uint32{socketGroup}, "flows", "--socket="+n.socket, "--for=1s")
			if code != 0 {
				t.Errorf("lbd flows --for=1s as a member of %d: exit %d, output %q", socketGroup, code, out)
			}
		})
	}
}
