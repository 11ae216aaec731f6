// SPDX-License-Identifier: Apache-2.0

package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
)

// DefaultCoalesce is how long the source waits after a change for more
// before it publishes: short against the 100 ms change-to-datapath budget,
// long enough to fold a burst of informer events into one State.
const DefaultCoalesce = 20 * time.Millisecond

// Options configure a Source.
type Options struct {
	// Config tunes the conversion (the LoadBalancerClass).
	Config config.Options
	// Coalesce is the window after a change in which further changes
	// join the same State; default DefaultCoalesce.
	Coalesce time.Duration
	// Log receives conversion problems and sync progress; nil discards.
	Log *slog.Logger
}

// Source publishes the cluster's State as it changes. It implements
// agent.Source.
type Source struct {
	clients Clients
	opts    Options
	log     *slog.Logger
}

// New returns a Source reading through c.
func New(c Clients, opts Options) *Source {
	if opts.Coalesce <= 0 {
		opts.Coalesce = DefaultCoalesce
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Source{clients: c, opts: opts, log: opts.Log.With("source", "kubernetes")}
}

// Name implements agent.Source.
func (s *Source) Name() string { return "kubernetes" }

// Run starts the informers, publishes the first State once every cache has
// synced, then one State per coalesced burst of changes, until ctx ends.
// publish is called from Run's goroutine; the State must not be modified.
func (s *Source) Run(ctx context.Context, publish func(*model.State)) error {
	inf, err := NewInformers(s.clients, AllKinds)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		inf.Shutdown()
	}()
	inf.Start(ctx)
	start := time.Now()
	// Without lbd's CRDs installed, or without RBAC to read them, this
	// waits forever; say what it waits for.
	s.log.Info("waiting for informer caches", "op", "sync")
	if err := inf.WaitForCacheSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.log.Info("informer caches synced", "op", "sync", "took", time.Since(start).Round(time.Millisecond))

	var lastErr string
	// Converts only what changed since the last State.
	conv := config.NewConverter(s.opts.Config)
	build := func(reason string) {
		st, errMsg := s.build(inf, conv)
		if errMsg != lastErr {
			// Log each distinct set of problems once, not on every
			// change while they persist.
			if errMsg != "" {
				s.log.Warn("objects left out of the state", "op", "convert", "reason", reason, "err", errMsg)
			} else if lastErr != "" {
				s.log.Info("every object converts again", "op", "convert")
			}
			lastErr = errMsg
		}
		publish(st)
	}
	build("synced")

	timer := time.NewTimer(0)
	if !timer.Stop() {
		<-timer.C
	}
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-inf.Changed():
			// The window starts at the first change and is not
			// extended by later ones, which bounds the delay.
			if !pending {
				pending = true
				timer.Reset(s.opts.Coalesce)
			}
		case <-timer.C:
			pending = false
			build("changed")
		}
	}
}

// build converts the caches into a State; the message sums up what was
// left out, "" when nothing was.
func (s *Source) build(inf *Informers, conv *config.Converter) (*model.State, string) {
	res, decodeErr := inf.Resources()
	st, convErr := conv.For(res)
	var msg string
	if decodeErr != nil {
		msg = fmt.Sprintf("decode: %v", decodeErr)
	}
	if convErr != nil {
		if msg != "" {
			msg += "; "
		}
		msg += convErr.Error()
	}
	return st, msg
}
