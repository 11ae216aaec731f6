// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"encoding/json"
	"net/http"
	"time"
)

// lostEvery is how often a stream reports newly lost events.
const lostEvery = time.Second

// Handler serves h at GET /v1/flows: newline-delimited JSON Events that
// match the filter in the query (see ParseFilter), until the client goes
// away. A "lost" event reports, at most once a second, the running total
// of events this client missed.
func Handler(h *Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sub, err := h.Subscribe(f)
		if err != nil {
			http.Error(w, "turn flow events on: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer sub.Close()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		flush := func() {
			if fl != nil {
				fl.Flush()
			}
		}
		flush() // the client knows it is subscribed
		enc := json.NewEncoder(w)
		tick := time.NewTicker(lostEvery)
		defer tick.Stop()
		var reported uint64
		for {
			select {
			case <-r.Context().Done():
				return
			case e := <-sub.Events():
				if err := enc.Encode(e); err != nil {
					return
				}
				// Write what is queued before flushing: one flush per
				// burst, not per event.
				for n := len(sub.Events()); n > 0; n-- {
					if err := enc.Encode(<-sub.Events()); err != nil {
						return
					}
				}
				flush()
			case <-tick.C:
				if lost := sub.Lost(); lost > reported {
					reported = lost
					if err := enc.Encode(Event{Time: time.Now(), Verdict: VerdictLost, Lost: lost}); err != nil {
						return
					}
					flush()
				}
			}
		}
	})
}
