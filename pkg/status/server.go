// SPDX-License-Identifier: Apache-2.0

package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Option configures Serve.
type Option func(*serveConfig)

type serveConfig struct {
	gid      int // -1: root only
	handlers map[string]http.Handler
}

// WithGroup makes the socket mode 0660 and owned by group gid, so members
// of that group can read the status (and stream flows) without root.
// Without it the socket is mode 0600, root only.
func WithGroup(gid int) Option {
	return func(c *serveConfig) { c.gid = gid }
}

// WithHandler serves h at pattern (an http.ServeMux pattern such as
// "GET /v1/flows") beside /v1/status, under the same access control.
func WithHandler(pattern string, h http.Handler) Option {
	return func(c *serveConfig) { c.handlers[pattern] = h }
}

// Serve serves snapshot() at /v1/status on a unix socket at path until ctx
// ends. A stale socket file from a dead daemon is replaced. The socket is
// mode 0600 (root only) unless WithGroup grants a group read access (0660):
// status shows topology, and flows show clients' addresses.
func Serve(ctx context.Context, path string, snapshot func() Status, opts ...Option) error {
	cfg := serveConfig{gid: -1, handlers: map[string]http.Handler{}}
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create socket dir: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("status socket %s: another lbd is serving it", path)
	}
	os.Remove(path)
	l, err := listen(path, cfg.gid)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Compact: the CLI formats it. Indenting doubled the transient
		// memory (a second buffer as large as the encoding, 23 MB at
		// 10 000 services) and the bytes on the socket.
		json.NewEncoder(w).Encode(snapshot())
	})
	for p, h := range cfg.handlers {
		mux.Handle(p, h)
	}
	// No WriteTimeout: /v1/flows streams for as long as the client reads.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	err = srv.Serve(l)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// listen creates the socket with its final mode and group before anyone
// can connect: it is bound in a fresh 0700 directory, given its mode and
// group there, and only then renamed into place (a rename keeps the bound
// socket). No window exists in which a looser mode is visible.
func listen(path string, gid int) (net.Listener, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".lbd-sock-")
	if err != nil {
		return nil, fmt.Errorf("create socket staging dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	staged := filepath.Join(tmp, "s")
	l, err := net.Listen("unix", staged)
	if err != nil {
		return nil, fmt.Errorf("listen on status socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false) // Serve removes path itself
	mode := os.FileMode(0o600)
	if gid >= 0 {
		if err := os.Chown(staged, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("give status socket to group %d: %w", gid, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(staged, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod status socket: %w", err)
	}
	if err := os.Rename(staged, path); err != nil {
		l.Close()
		return nil, fmt.Errorf("move status socket into place: %w", err)
	}
	return l, nil
}

// ErrNotRunning is returned by Fetch and Get when no daemon listens on the
// socket.
var ErrNotRunning = errors.New("lbd is not running (no daemon on the status socket)")

// ErrPermission is returned by Fetch and Get when the socket exists but this
// user may not connect to it (root, or the --socket-group of lbd run).
var ErrPermission = errors.New("permission denied on the status socket (run as root or as a member of lbd run's --socket-group)")

// Get sends a GET for urlPath (e.g. "/v1/status") to the daemon at socket
// path and returns the response, whose body the caller closes. Errors wrap
// ErrNotRunning or ErrPermission when those are the cause.
func Get(ctx context.Context, path, urlPath string) (*http.Response, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNotRunning, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: %s: %v", ErrPermission, path, err)
		}
		return nil, fmt.Errorf("status socket: %w", err)
	}
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lbd"+urlPath, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("%w: %s", ErrPermission, path)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var msg [512]byte
		n, _ := resp.Body.Read(msg[:])
		return nil, fmt.Errorf("daemon answered %s: %s", resp.Status, msg[:n])
	}
	return resp, nil
}

// Fetch reads the status from the daemon at socket path.
func Fetch(ctx context.Context, path string) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := Get(ctx, path, "/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return &st, nil
}
