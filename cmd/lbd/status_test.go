// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/status"
)

// serveStatus serves snap, annotated like the daemon does, on a socket for
// the test's duration.
func serveStatus(t *testing.T, snap func() status.Status) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lbd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- status.Serve(ctx, sock, status.NewChecker(snap).Snapshot) }()
	t.Cleanup(func() { cancel(); <-done })
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("status socket never appeared")
	return ""
}

func exitCode(err error) int {
	var e exitError
	if errors.As(err, &e) {
		return e.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestStatusExitCodes: lbd status's exit code for each outcome, with a VIP
// argument judged only by what concerns that VIP.
func TestStatusExitCodes(t *testing.T) {
	vip := func(addr, pool string, ready bool) status.VIP {
		return status.VIP{VIP: addr, Pool: pool, Owner: "node1", Ports: []status.Port{{Port: 80, Protocol: "TCP", Service: "default/x",
			Backends: []status.Backend{{Addr: "10.241.1.2:80", Ready: ready}}}}}
	}
	ok := status.Status{Node: "node1", VIPs: []status.VIP{vip("10.20.1.1", "internal", true)},
		Pools: []status.Pool{{Name: "internal", Total: 10, Used: 1}}, Datapath: status.Datapath{Attached: map[string]string{"eth0": "tcx"}}}
	warn := ok
	warn.VIPs = append([]status.VIP{}, ok.VIPs...)
	warn.VIPs = append(warn.VIPs, vip("10.20.1.2", "internal", false))
	errs := ok
	errs.Errors = []string{"pool internal: bad range"}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	stdout := os.Stdout
	os.Stdout = null // the tables are tested in pkg/status
	defer func() { os.Stdout = stdout }()
	for _, tc := range []struct {
		name string
		st   status.Status
		args []string
		want int
	}{
		{"all good", ok, nil, 0},
		{"warnings", warn, nil, exitWarnings},
		{"errors", errs, nil, exitErrors},
		{"json keeps the code", warn, []string{"-o", "json"}, exitWarnings},
		{"VIP without warnings", warn, []string{"10.20.1.1"}, 0},
		{"VIP with a warning", warn, []string{"10.20.1.2"}, exitWarnings},
		{"unknown VIP", ok, []string{"10.20.1.99"}, exitUsage},
		{"not an address", ok, []string{"web"}, exitUsage},
		{"bad output", ok, []string{"-o", "xml"}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st
			sock := serveStatus(t, func() status.Status { return st })
			// Flags before the VIP, as flag parsing requires.
			args := append([]string{"--socket", sock}, tc.args...)
			if got := exitCode(statusCmd(args)); got != tc.want {
				t.Errorf("lbd status %v: exit %d, want %d", tc.args, got, tc.want)
			}
		})
	}
	t.Run("no daemon", func(t *testing.T) {
		err := statusCmd([]string{"--socket", filepath.Join(t.TempDir(), "none.sock")})
		if got := exitCode(err); got != exitNoDaemon || !errors.Is(err, status.ErrNotRunning) {
			t.Errorf("exit %d (%v), want %d", got, err, exitNoDaemon)
		}
	})
}
