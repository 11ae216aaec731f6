// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger logs through t, so output shows with the failing test.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

// responderGoroutines returns the stacks of goroutines running responder
// code. After Run returns there must be none.
func responderGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "announce.(*arpResponder)") ||
			strings.Contains(g, "announce.(*ndpResponder)") ||
			strings.Contains(g, "announce.(*burst)") {
			out = append(out, g)
		}
	}
	return out
}

// assertNoResponderGoroutines fails if responder goroutines outlive the
// responders; it gives exiting goroutines a moment to be reaped.
func assertNoResponderGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := responderGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d responder goroutines leaked:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runAnnouncer runs a in the background and returns a stop function that
// cancels it and waits for Run to return, failing t if it does not
// within 2 s. The stop also runs at cleanup if the test did not call it.
func runAnnouncer(t *testing.T, a *Announcer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(2 * time.Second):
				t.Errorf("Run did not return within 2s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
