// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// OwnerTrace is what a client saw of one VIP's owner over time.
type OwnerTrace struct {
	owners     []string // owner per answered probe, consecutive repeats collapsed
	Probes     int
	Unanswered int
	// Conflicts counts probes answered by more than one MAC.
	Conflicts int
}

// Sequence returns the owners in the order seen, repeats collapsed.
func (o OwnerTrace) Sequence() []string { return append([]string(nil), o.owners...) }

// Changes is the number of owner changes seen: gaps without an answer do
// not count, a different node answering does.
func (o OwnerTrace) Changes() int { return max(len(o.owners)-1, 0) }

// ARPWatch probes VIPs' owners from a client in the background.
type ARPWatch struct {
	mu     sync.Mutex
	traces map[netip.Addr]*OwnerTrace
	stop   context.CancelFunc
	done   chan struct{}
}

// WatchARP sends an ARP request for each of vips from h every interval
// (each waiting up to interval/2 for answers) until Stop, and records
// which node answered.
func (l *Lab) WatchARP(ctx context.Context, h *Host, vips []netip.Addr, interval time.Duration) *ARPWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &ARPWatch{traces: map[netip.Addr]*OwnerTrace{}, stop: cancel, done: make(chan struct{})}
	for _, v := range vips {
		w.traces[v] = &OwnerTrace{}
	}
	// Node MACs are fixed at plan time: resolve them without touching
	// l.Nodes, which RemoveNode may change meanwhile.
	names := map[string]string{}
	for _, n := range l.Nodes {
		names[n.MAC.String()] = n.Name
	}
	nameOf := func(m net.HardwareAddr) string {
		if n, ok := names[m.String()]; ok {
			return n
		}
		return fmt.Sprintf("unknown(%s)", m)
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for ctx.Err() == nil {
			for _, v := range vips {
				macs, err := h.ARPResponders(ctx, v, interval/2)
				if ctx.Err() != nil {
					return
				}
				w.mu.Lock()
				tr := w.traces[v]
				tr.Probes++
				switch {
				case err != nil || len(macs) == 0:
					tr.Unanswered++
				case len(macs) > 1:
					tr.Conflicts++
				default:
					if n := nameOf(macs[0]); len(tr.owners) == 0 || tr.owners[len(tr.owners)-1] != n {
						tr.owners = append(tr.owners, n)
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the watch and returns the trace of each VIP.
func (w *ARPWatch) Stop() map[netip.Addr]OwnerTrace {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[netip.Addr]OwnerTrace{}
	for v, tr := range w.traces {
		out[v] = *tr
	}
	return out
}
