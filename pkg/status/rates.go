// SPDX-License-Identifier: Apache-2.0

package status

import "time"

// MinRateInterval is the shortest interval rates are computed over: two
// snapshots closer than that (a scrape and an lbd status a moment later)
// would give noisy rates, so the later one shows the rates of the last
// interval that was long enough.
const MinRateInterval = time.Second

// Rates are a frontend's per-second rates over RateInfo's interval.
type Rates struct {
	PacketsPerSecond  float64 `json:"packetsPerSecond"`
	BytesPerSecond    float64 `json:"bytesPerSecond"`
	NewFlowsPerSecond float64 `json:"newFlowsPerSecond"`
	DropsPerSecond    float64 `json:"dropsPerSecond"`
}

// RateInfo says what interval the rates in a Status cover: the one
// between the daemon's two last snapshots at least MinRateInterval apart
// (every lbd status and every metrics scrape takes one).
type RateInfo struct {
	// IntervalSeconds is the interval's length; 0 means no rates yet
	// (the daemon has taken only one snapshot).
	IntervalSeconds float64 `json:"intervalSeconds"`
	// End is when the interval ended (the later snapshot).
	End *time.Time `json:"end,omitempty"`
}

// rateKey is a frontend. Its strings are the snapshot's own, so keying a
// sample costs no allocation per frontend (10 000 Services, every scrape).
type rateKey struct {
	vip, proto string
	port       uint16
}

// rateSample is one snapshot's counters by frontend.
type rateSample struct {
	at       time.Time
	counters map[rateKey]Counters
}

// rateTracker keeps the previous sample and the rates of the last
// interval. Not safe for concurrent use (the Checker locks).
type rateTracker struct {
	base  *rateSample
	rates map[rateKey]Rates
	info  RateInfo
}

func frontendKey(vip string, p Port) rateKey {
	return rateKey{vip: vip, proto: p.Protocol, port: p.Port}
}

// observe takes st's counters at now and fills in st's rates: over the
// interval since the previous sample if it is at least MinRateInterval
// long (and that sample becomes the new base), else those of the last
// interval that was.
func (r *rateTracker) observe(st *Status, now time.Time) {
	cur := &rateSample{at: now, counters: make(map[rateKey]Counters, len(st.VIPs))}
	for _, v := range st.VIPs {
		for _, p := range v.Ports {
			cur.counters[frontendKey(v.VIP, p)] = p.Counters
		}
	}
	switch {
	case r.base == nil || now.Before(r.base.at):
		r.base = cur // the first sample, or a clock gone back: start over
	case now.Sub(r.base.at) >= MinRateInterval:
		secs := now.Sub(r.base.at).Seconds()
		r.rates = make(map[rateKey]Rates, len(cur.counters))
		for k, c := range cur.counters {
			prev, ok := r.base.counters[k]
			if !ok {
				// A frontend new in this interval started from zero.
				prev = Counters{}
			}
			r.rates[k] = Rates{
				PacketsPerSecond:  perSecond(prev.Packets, c.Packets, secs),
				BytesPerSecond:    perSecond(prev.Bytes, c.Bytes, secs),
				NewFlowsPerSecond: perSecond(prev.NewFlows, c.NewFlows, secs),
				DropsPerSecond:    perSecond(prev.Drops, c.Drops, secs),
			}
		}
		end := now
		r.info = RateInfo{IntervalSeconds: secs, End: &end}
		r.base = cur
	}
	if r.rates == nil {
		return
	}
	st.Rates = r.info
	for i := range st.VIPs {
		v := &st.VIPs[i]
		for j := range v.Ports {
			if rt, ok := r.rates[frontendKey(v.VIP, v.Ports[j])]; ok {
				v.Ports[j].Rates = &rt
			}
		}
	}
}

// perSecond is the rate of a counter that went from prev to cur; a lower
// value is a reset (the maps were recreated), counted from zero as
// Prometheus's rate() does.
func perSecond(prev, cur uint64, secs float64) float64 {
	if cur < prev {
		prev = 0
	}
	return float64(cur-prev) / secs
}
