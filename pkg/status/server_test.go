// SPDX-License-Identifier: Apache-2.0

package status

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestServeFetch(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, sock, func() Status {
			return Status{Node: "node1", VIPs: []VIP{{VIP: "10.20.1.1", Owner: "node1", Owned: true}}}
		})
	}()
	var st *Status
	var err error
	for i := 0; i < 100; i++ {
		if st, err = Fetch(context.Background(), sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "node1" || len(st.VIPs) != 1 || !st.VIPs[0].Owned {
		t.Errorf("fetched %+v", st)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600 (status is for root)", fi.Mode().Perm())
	}
	// A second daemon must not steal a live socket.
	if err := Serve(context.Background(), sock, func() Status { return Status{} }); err == nil {
		t.Error("second Serve on a live socket succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := Fetch(context.Background(), sock); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Fetch after stop = %v, want ErrNotRunning", err)
	}
}
