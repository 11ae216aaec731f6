// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// gratuitousGaps are the delays before each gratuitous packet sent for a
// VIP newly owned: one at once, then 100 ms and 500 ms later. Repeating
// covers a lost first packet; spreading them out covers a switch that
// is still learning the port after a link flap.
var gratuitousGaps = []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond}

// burst sends the gratuitous packets of newly owned VIPs on a schedule,
// from one goroutine driven by one timer, so that neither Set nor the
// read path ever sleeps.
type burst struct {
	gaps []time.Duration
	send func(netip.Addr)

	mu      sync.Mutex
	pending map[netip.Addr]burstState

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

type burstState struct {
	next time.Time
	sent int
}

func newBurst(gaps []time.Duration, send func(netip.Addr)) *burst {
	return &burst{
		gaps:    gaps,
		send:    send,
		pending: make(map[netip.Addr]burstState),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start schedules a burst for vip, restarting one in progress.
func (b *burst) start(vip netip.Addr) {
	b.mu.Lock()
	b.pending[vip] = burstState{next: time.Now()}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default: // a kick is already queued; it covers this VIP too.
	}
}

// cancel drops the rest of vip's burst.
func (b *burst) cancel(vip netip.Addr) {
	b.mu.Lock()
	delete(b.pending, vip)
	b.mu.Unlock()
}

// run sends due packets until close. It is the burst's only goroutine.
func (b *burst) run() {
	defer close(b.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		if next := b.fire(time.Now()); !next.IsZero() {
			t.Reset(time.Until(next))
		} else {
			t.Stop()
		}
		select {
		case <-b.stop:
			return
		case <-b.kick:
		case <-t.C:
		}
	}
}

// fire sends every packet due at now and returns when the next one is
// due, or the zero time when none is pending.
func (b *burst) fire(now time.Time) time.Time {
	var (
		due  []netip.Addr
		next time.Time
	)
	b.mu.Lock()
	for vip, st := range b.pending {
		if st.next.After(now) {
			if next.IsZero() || st.next.Before(next) {
				next = st.next
			}
			continue
		}
		due = append(due, vip)
		st.sent++
		if st.sent >= len(b.gaps) {
			delete(b.pending, vip)
			continue
		}
		st.next = now.Add(b.gaps[st.sent])
		b.pending[vip] = st
		if next.IsZero() || st.next.Before(next) {
			next = st.next
		}
	}
	b.mu.Unlock()
	slices.SortFunc(due, netip.Addr.Compare)
	for _, vip := range due {
		b.send(vip)
	}
	return next
}

// close stops run and waits for it to return.
func (b *burst) close() {
	close(b.stop)
	<-b.done
}
