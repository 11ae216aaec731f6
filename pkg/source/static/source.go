// SPDX-License-Identifier: Apache-2.0

package static

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
)

// checkInterval is how often the file is checked for changes. A second is
// quick enough for a human editing the file and costs one stat.
const checkInterval = time.Second

// Source serves a manifest file as model.States.
type Source struct {
	path     string
	opts     config.Options
	log      *slog.Logger
	interval time.Duration
	reload   chan struct{}
}

// New returns a Source for the manifest at path. A nil log discards.
func New(path string, opts config.Options, log *slog.Logger) *Source {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{
		path:     path,
		opts:     opts,
		log:      log.With("path", path),
		interval: checkInterval,
		reload:   make(chan struct{}, 1),
	}
}

// Reload asks a running Source to reload the file now, as SIGHUP does.
// It does not block.
func (s *Source) Reload() {
	select {
	case s.reload <- struct{}{}:
	default: // a reload is already pending
	}
}

// fingerprint identifies a version of the file: the stat result to notice
// a change cheaply, the content hash to tell a real change from a touch.
type fingerprint struct {
	info os.FileInfo
	hash [sha256.Size]byte
}

// changed reports whether fi differs from the file last read.
func (f *fingerprint) changed(fi os.FileInfo) bool {
	return f.info == nil || !os.SameFile(f.info, fi) ||
		!f.info.ModTime().Equal(fi.ModTime()) || f.info.Size() != fi.Size()
}

// Run loads the file and publishes its State, then watches it until ctx is
// done. publish is called from Run's goroutine; the State must not be
// modified after. A bad file at start is returned as an error; a bad file
// later is logged, and the last good State keeps serving.
func (s *Source) Run(ctx context.Context, publish func(*model.State)) error {
	// Listen before the first publish, so that a SIGHUP sent as soon as
	// the first State is seen does not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var fp fingerprint
	st, err := s.load(&fp)
	if err != nil {
		return fmt.Errorf("load static manifest %s: %w", s.path, err)
	}
	publish(st)
	s.logLoaded(st, "start")

	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	var statErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			s.reloadAndPublish(&fp, publish, "sighup")
		case <-s.reload:
			s.reloadAndPublish(&fp, publish, "requested")
		case <-tick.C:
			fi, err := os.Stat(s.path)
			if err != nil {
				// Log once per distinct problem, not every second while
				// an editor replaces the file.
				if err.Error() != statErr {
					s.log.Warn("cannot check static manifest; serving the last good state", "op", "watch", "err", err)
					statErr = err.Error()
				}
				continue
			}
			statErr = ""
			if fp.changed(fi) {
				s.reloadAndPublish(&fp, publish, "file changed")
			}
		}
	}
}

// reloadAndPublish reloads the file and publishes its State, unless it is
// unchanged (for a change noticed by the ticker) or bad.
func (s *Source) reloadAndPublish(fp *fingerprint, publish func(*model.State), reason string) {
	prev := fp.hash
	st, err := s.load(fp)
	if err != nil {
		s.log.Error("rejected static manifest; serving the last good state", "op", "reload", "reason", reason, "err", err)
		return
	}
	if reason == "file changed" && fp.hash == prev {
		return // touched or rewritten with the same content
	}
	publish(st)
	s.logLoaded(st, reason)
}

// load reads, decodes and converts the file, recording what it read in fp
// even when it is bad, so that the same bad content is not reported again
// every second.
func (s *Source) load(fp *fingerprint) (*model.State, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	// Stat the open file so that the fingerprint belongs to the bytes read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat manifest: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	fp.info = fi
	fp.hash = sha256.Sum256(data)
	res, err := LoadBytes(s.path, data)
	if err != nil {
		return nil, err
	}
	st, err := config.For(res, s.opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	stampArrival(res, st)
	return st, nil
}

func (s *Source) logLoaded(st *model.State, reason string) {
	s.log.Info("loaded static manifest", "op", "load", "reason", reason,
		"pools", len(st.Pools), "services", len(st.Services), "nodes", len(st.Nodes))
}
