// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// VIPProbes is a background client sending one HTTP request and one UDP
// query to a VIP every 20 ms, each on a fresh flow, until stopped.
type VIPProbes struct {
	stop func()
	done chan struct{}

	mu        sync.Mutex
	http, udp Tally
}

// StartVIPProbes starts VIPProbes from h to vip's HTTP and UDP ports.
func (h *Host) StartVIPProbes(ctx context.Context, vip netip.Addr) *VIPProbes {
	ctx, cancel := context.WithCancel(ctx)
	t := &VIPProbes{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for sent := 0; sent < probeMax; sent++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, probeTimeout)
			pod, herr := h.HTTPGet(rctx, netip.AddrPortFrom(vip, ServiceHTTPPort), "/")
			ans, uerr := h.UDPQuery(rctx, netip.AddrPortFrom(vip, ServiceUDPPort))
			rcancel()
			if ctx.Err() != nil {
				return // cut short by Stop: neither a success nor a failure
			}
			t.mu.Lock()
			t.http.add(pod, herr)
			t.udp.add(ans.Pod, uerr)
			t.mu.Unlock()
		}
	}()
	return t
}

// Stop ends the traffic and returns its HTTP and UDP tallies.
func (t *VIPProbes) Stop() (http, udp Tally) {
	t.stop()
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.http, t.udp
}
