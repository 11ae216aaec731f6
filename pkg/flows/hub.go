// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
)

// Reader reads datapath flow events; *datapath.FlowReader is one. Close
// turns events off and makes a blocked Read return an error wrapping
// os.ErrClosed.
type Reader interface {
	Read() (datapath.FlowEvent, error)
	Close() error
}

// DefaultBuffer is the per-subscriber queue length: about a second of a
// busy VIP's new flows, so a terminal that stalls briefly loses nothing.
const DefaultBuffer = 4096

// Config configures a Hub.
type Config struct {
	// Open turns flow events on and returns their reader. It is called
	// when the first subscriber arrives; the reader is closed when the
	// last one leaves.
	Open func() (Reader, error)
	// State returns the last reconciled State (nil before the first),
	// to name services and backend nodes.
	State func() *model.State
	// KernelLost returns how many events the datapath dropped because
	// the ring buffer was full, since load (nil: not reported).
	KernelLost func() (uint64, error)
	// Buffer is the per-subscriber queue length (default DefaultBuffer).
	Buffer int
	Log    *slog.Logger
}

// Hub fans datapath flow events out to subscribers. It is safe for
// concurrent use.
type Hub struct {
	cfg Config

	mu   sync.Mutex
	subs map[*Subscription]struct{}
	rd   Reader // non-nil while events are on
	ix   *index
	ixAt time.Time // when ix was last checked against State
}

// indexEvery bounds how often the pump asks for the State: per event, a
// busy VIP would contend with the reconcile loop for the agent's lock.
const indexEvery = 250 * time.Millisecond

// NewHub returns a Hub; nothing is enabled until the first Subscribe.
func NewHub(cfg Config) *Hub {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.State == nil {
		cfg.State = func() *model.State { return nil }
	}
	return &Hub{cfg: cfg, subs: make(map[*Subscription]struct{})}
}

// Subscription is one subscriber's stream of events.
type Subscription struct {
	h          *Hub
	filter     Filter
	ch         chan Event
	dropped    atomic.Uint64 // events not queued because the queue was full
	kernelBase uint64        // KernelLost when subscribed
}

// Subscribe starts a stream of the events f matches, turning flow events
// on if this is the first subscriber. Call Close when done.
func (h *Hub) Subscribe(f Filter) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rd == nil {
		rd, err := h.cfg.Open()
		if err != nil {
			return nil, err
		}
		h.rd = rd
		h.cfg.Log.Info("flow events on", "reason", "first subscriber")
		go h.pump(rd)
	}
	s := &Subscription{h: h, filter: f, ch: make(chan Event, h.cfg.Buffer)}
	s.kernelBase, _ = h.kernelLost()
	h.subs[s] = struct{}{}
	return s, nil
}

// Events is the subscriber's queue. It is never closed: stop reading after
// Close.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Lost returns how many matching or unfiltered events this subscriber
// missed so far: those its queue had no room for, plus those the kernel
// dropped for a full ring buffer since it subscribed (which may not all
// have matched its filter).
func (s *Subscription) Lost() uint64 {
	k, _ := s.h.kernelLost()
	if k < s.kernelBase {
		k = s.kernelBase // the datapath was reloaded
	}
	return s.dropped.Load() + k - s.kernelBase
}

// Close ends the subscription; the last one turns flow events off.
func (s *Subscription) Close() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if len(h.subs) == 0 && h.rd != nil {
		// Closing under the lock: a Subscribe right after must find
		// events off, or its Open would find the reader busy.
		if err := h.rd.Close(); err != nil {
			h.cfg.Log.Warn("turn flow events off", "err", err)
		}
		h.rd = nil
		h.cfg.Log.Info("flow events off", "reason", "no subscriber")
	}
}

// Subscribers returns the number of open subscriptions.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *Hub) kernelLost() (uint64, error) {
	if h.cfg.KernelLost == nil {
		return 0, nil
	}
	return h.cfg.KernelLost()
}

// pump reads rd until it is closed and hands every event to the matching
// subscribers without ever waiting for one.
func (h *Hub) pump(rd Reader) {
	for {
		fe, err := rd.Read()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			h.cfg.Log.Warn("read flow event", "err", err)
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		h.mu.Lock()
		if h.rd != rd {
			h.mu.Unlock() // a late event of a reader being closed
			return
		}
		if now := time.Now(); h.ix == nil || now.Sub(h.ixAt) > indexEvery {
			if st := h.cfg.State(); h.ix == nil || h.ix.state != st {
				h.ix = newIndex(st)
			}
			h.ixAt = now
		}
		e := h.ix.event(fe)
		for s := range h.subs {
			if !s.filter.Match(e) {
				continue
			}
			select {
			case s.ch <- e:
			default:
				s.dropped.Add(1)
			}
		}
		h.mu.Unlock()
	}
}
