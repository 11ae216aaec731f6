// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Outcome is one request of a background load.
type Outcome struct {
	Start, End time.Time
	Pod        string
	Err        error
}

// Stream is one keep-alive connection of a Streams load and what it saw.
type Stream struct {
	Local    netip.AddrPort // client side of the connection
	FirstPod string         // pod that answered the first request
	Outcomes []Outcome
}

// Pods counts answers per pod.
func (s *Stream) Pods() map[string]int {
	m := map[string]int{}
	for _, o := range s.Outcomes {
		if o.Err == nil {
			m[o.Pod]++
		}
	}
	return m
}

// Failed returns the failed requests.
func (s *Stream) Failed() []Outcome {
	var out []Outcome
	for _, o := range s.Outcomes {
		if o.Err != nil {
			out = append(out, o)
		}
	}
	return out
}

// Streams is a background load of long-lived connections, each sending a
// request every interval. A connection whose request fails is not
// reopened: a reset must show as failures, not be papered over.
type Streams struct {
	mu      sync.Mutex
	streams []*Stream
	closing map[int]bool
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// maxStreams caps one Streams load.
const maxStreams = 200

// StartStreams opens n keep-alive connections from h to target (the first
// request on each is made before it returns) and keeps them busy until
// Stop.
func (h *Host) StartStreams(ctx context.Context, target netip.AddrPort, n int, interval time.Duration) (*Streams, error) {
	if n > maxStreams {
		return nil, fmt.Errorf("start streams: %d connections, at most %d", n, maxStreams)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Streams{stop: cancel, closing: map[int]bool{}}
	var conns []*KeepAlive
	for range n {
		k, err := h.OpenKeepAlive(ctx, target)
		if err == nil {
			var a Answer
			start := time.Now()
			a, err = k.Get(0)
			if err == nil {
				st := &Stream{Local: k.LocalAddr(), FirstPod: a.Pod, Outcomes: []Outcome{{start, time.Now(), a.Pod, nil}}}
				s.streams = append(s.streams, st)
				conns = append(conns, k)
				continue
			}
			k.Close()
		}
		for _, c := range conns {
			c.Close()
		}
		cancel()
		return nil, fmt.Errorf("open stream to %s: %w", target, err)
	}
	for i, k := range conns {
		s.wg.Go(func() {
			defer k.Close()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				s.mu.Lock()
				closing := s.closing[i]
				s.mu.Unlock()
				if closing {
					return
				}
				start := time.Now()
				a, err := k.Get(0)
				s.mu.Lock()
				s.streams[i].Outcomes = append(s.streams[i].Outcomes, Outcome{start, time.Now(), a.Pod, err})
				s.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	return s, nil
}

// Snapshot returns a copy of the streams so far.
func (s *Streams) Snapshot() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stream, len(s.streams))
	for i, st := range s.streams {
		out[i] = Stream{Local: st.Local, FirstPod: st.FirstPod, Outcomes: append([]Outcome(nil), st.Outcomes...)}
	}
	return out
}

// CloseWhere closes, cleanly, the connections whose first answer came
// from a pod for which drop returns true.
func (s *Streams) CloseWhere(drop func(pod string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i, st := range s.streams {
		if drop(st.FirstPod) && !s.closing[i] {
			s.closing[i] = true
			n++
		}
	}
	return n
}

// Stop ends the load, closes the connections and returns what each saw.
func (s *Streams) Stop() []Stream {
	s.stop()
	s.wg.Wait()
	return s.Snapshot()
}

// NewConns is a background load of new connections: one request per
// connection, one after the other.
type NewConns struct {
	mu       sync.Mutex
	outcomes []Outcome
	stop     context.CancelFunc
	done     chan struct{}
}

// StartNewConns sends GET / to target from h on a new connection every
// interval (or back to back when a request takes longer), each bounded by
// timeout, until Stop or ctx ends; at most MaxRequests.
func (h *Host) StartNewConns(ctx context.Context, target netip.AddrPort, interval, timeout time.Duration) *NewConns {
	ctx, cancel := context.WithCancel(ctx)
	nc := &NewConns{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(nc.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for range MaxRequests {
			start := time.Now()
			a, err := h.Who(ctx, target, timeout)
			if ctx.Err() != nil {
				return // cut short by Stop, not a failure
			}
			nc.mu.Lock()
			nc.outcomes = append(nc.outcomes, Outcome{start, time.Now(), a.Pod, err})
			nc.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return nc
}

// Outcomes returns the requests so far.
func (nc *NewConns) Outcomes() []Outcome {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	return append([]Outcome(nil), nc.outcomes...)
}

// Stop ends the load and returns every request's outcome.
func (nc *NewConns) Stop() []Outcome {
	nc.stop()
	<-nc.done
	return nc.Outcomes()
}

// Failures counts the failed outcomes and returns the first few errors.
func Failures(os []Outcome) (int, []string) {
	n := 0
	var first []string
	for _, o := range os {
		if o.Err != nil {
			n++
			if len(first) < 3 {
				first = append(first, o.Err.Error())
			}
		}
	}
	return n, first
}
