// SPDX-License-Identifier: Apache-2.0

package static

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
)

// logRecords is a slog.Handler that hands every record to the test.
type logRecords chan slog.Record

func (c logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (c logRecords) Handle(_ context.Context, r slog.Record) error {
	select {
	case c <- r.Clone():
	default:
	}
	return nil
}
func (c logRecords) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c logRecords) WithGroup(string) slog.Handler      { return c }

func poolFile(names ...string) string {
	var b strings.Builder
	for i, n := range names {
		fmt.Fprintf(&b, "---\napiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: %s\nspec:\n  addresses: [10.20.%d.0/24]\n", n, i)
	}
	return b.String()
}

func poolNames(st *model.State) string {
	var n []string
	for _, p := range st.Pools {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

// write replaces the file the way editors and config management do: a new
// file renamed over the old one.
func write(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type harness struct {
	t         *testing.T
	published chan *model.State
	logs      logRecords
	done      chan error
}

func start(t *testing.T, path string) (*Source, *harness) {
	h := &harness{t: t, published: make(chan *model.State, 10), logs: make(logRecords, 100), done: make(chan error, 1)}
	s := New(path, config.Options{}, slog.New(h.logs))
	s.interval = 20 * time.Millisecond // the production second, shortened
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- s.Run(ctx, func(st *model.State) { h.published <- st }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return s, h
}

func (h *harness) wantPublish(pools string) {
	h.t.Helper()
	select {
	case st := <-h.published:
		if got := poolNames(st); got != pools {
			h.t.Fatalf("published pools %q, want %q", got, pools)
		}
	case err := <-h.done:
		h.t.Fatalf("Run returned early: %v", err)
	case <-time.After(5 * time.Second):
		h.t.Fatalf("nothing published, want pools %q", pools)
	}
}

func (h *harness) wantNoPublish() {
	h.t.Helper()
	select {
	case st := <-h.published:
		h.t.Fatalf("published pools %q, want nothing", poolNames(st))
	default:
	}
}

// wantLog waits for a record with msg and returns its "err" attribute.
func (h *harness) wantLog(level slog.Level, msg string) string {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case r := <-h.logs:
			if r.Level != level || r.Message != msg {
				continue
			}
			var errText string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "err" {
					errText = a.Value.String()
				}
				return true
			})
			return errText
		case <-timeout:
			h.t.Fatalf("no %s log %q", level, msg)
		}
	}
}

func TestSourceReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lbd.yaml")
	write(t, path, poolFile("a"))
	s, h := start(t, path)
	h.wantPublish("a")

	// An edit is noticed by the ticker and published.
	write(t, path, poolFile("a", "b"))
	h.wantPublish("a,b")

	// A broken edit is logged in full and not published: the last good
	// state keeps serving.
	write(t, path, poolFile("a", "b")+"---\napiVersion: lbd.dev/v1alpha1\nkind: IPPool\nmetadata:\n  name: c\nspec:\n  addresses: [10.20.1.300-10.20.1.254]\n")
	errText := h.wantLog(slog.LevelError, "rejected static manifest; serving the last good state")
	want := `IPPool "c": spec.addresses[0]: "10.20.1.300-10.20.1.254": invalid IP address`
	if !strings.Contains(errText, want) || !strings.Contains(errText, path) {
		t.Errorf("logged error %q lacks the file and %q", errText, want)
	}
	h.wantNoPublish()

	// A decode error is rejected too, naming the document (the file
	// starts with "---", so the first document is the empty one before it).
	write(t, path, poolFile("a")+"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  typo: 1\n")
	errText = h.wantLog(slog.LevelError, "rejected static manifest; serving the last good state")
	if !strings.Contains(errText, `document 3 (line 8): Service "x": decode: unknown field "spec.typo"`) {
		t.Errorf("logged error %q does not name the document and field", errText)
	}
	h.wantNoPublish()

	// Fixed: published again.
	write(t, path, poolFile("a", "d"))
	h.wantPublish("a,d")

	// Touching the file without changing it publishes nothing.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	<-time.After(5 * s.interval)
	h.wantNoPublish()

	// SIGHUP and Reload reload unconditionally.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	h.wantPublish("a,d")
	s.Reload()
	h.wantPublish("a,d")

	// The file vanishing is logged once; the last good state is kept.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	h.wantLog(slog.LevelWarn, "cannot check static manifest; serving the last good state")
	h.wantNoPublish()
	write(t, path, poolFile("e"))
	h.wantPublish("e")
}

func TestSourceBadFileAtStart(t *testing.T) {
	for _, tt := range []struct {
		name, data, want string
	}{
		{"decode", "kind: Nope\n", "apiVersion and kind must be set"},
		{"validate", poolFile("a") + poolFile("b"), `IPPool "b": spec.addresses[0]: "10.20.0.0/24": overlaps IPPool "a"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lbd.yaml")
			write(t, path, tt.data)
			published := false
			err := New(path, config.Options{}, nil).Run(context.Background(), func(*model.State) { published = true })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
			if published {
				t.Error("a bad file was published")
			}
		})
	}
	err := New(filepath.Join(t.TempDir(), "missing.yaml"), config.Options{}, nil).Run(context.Background(), func(*model.State) {})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Run on a missing file = %v", err)
	}
}
