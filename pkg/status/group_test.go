// SPDX-License-Identifier: Apache-2.0

package status

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestServeGroupAndHandler: WithGroup gives the socket to the group at
// mode 0660 (any user may chown to a group it is in: its own here; the
// refusal of other users is TestPrivilegedSocketAccess in cmd/lbd), and
// WithHandler serves beside /v1/status.
func TestServeGroupAndHandler(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "lbd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	gid := os.Getgid()
	go func() {
		done <- Serve(ctx, sock, func() Status { return Status{Node: "n"} }, WithGroup(gid),
			WithHandler("GET /v1/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") })))
	}()
	var resp *http.Response
	var err error
	for range 100 {
		if resp, err = Get(context.Background(), sock, "/v1/hello"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Errorf("/v1/hello = %q", b)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
		t.Errorf("socket mode %v gid %d, want 0660 and %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	// Nothing is left of the staging directory.
	ents, _ := os.ReadDir(filepath.Dir(sock))
	if len(ents) != 1 {
		t.Errorf("socket dir holds %d entries, want only the socket", len(ents))
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
}
