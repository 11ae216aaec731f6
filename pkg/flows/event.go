// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"net/netip"
	"time"
)

// Verdict says what happened to a flow.
type Verdict string

// Verdicts of events.
const (
	// VerdictNew: a new flow got a backend (from the Maglev table).
	VerdictNew Verdict = "new"
	// VerdictAffinity: a new flow got its backend from the client's
	// sessionAffinity entry.
	VerdictAffinity Verdict = "affinity"
	// VerdictEstablished: a sampled packet of an established flow.
	VerdictEstablished Verdict = "established"
	// VerdictDrop: a VIP packet was dropped, or answered with a TCP reset
	// (Reason says which and why).
	VerdictDrop Verdict = "drop"
	// VerdictLost: not a flow. Lost events this subscriber did not get
	// (ring buffer full, or it read too slowly); Lost is the running total.
	VerdictLost Verdict = "lost"
)

// Verdicts lists the verdicts a Filter accepts.
var Verdicts = []Verdict{VerdictNew, VerdictAffinity, VerdictEstablished, VerdictDrop}

// Event is one flow event as `lbd flows` shows it. Addresses are the ones
// on the wire: Client is the client's address and port, VIP the frontend,
// Backend the pod the flow was sent to (zero for drops).
type Event struct {
	Time     time.Time      `json:"time"`
	Verdict  Verdict        `json:"verdict"`
	Reason   string         `json:"reason,omitempty"` // datapath reason: fwd, drop_src_range, reset_no_backend, ...
	Protocol string         `json:"protocol,omitempty"`
	Client   netip.AddrPort `json:"client,omitzero"`
	VIP      netip.AddrPort `json:"vip,omitzero"`
	Service  string         `json:"service,omitempty"` // namespace/name; empty when no frontend matched
	Backend  netip.AddrPort `json:"backend,omitzero"`
	Node     string         `json:"node,omitempty"`     // the backend's node
	SNATPort uint16         `json:"snatPort,omitempty"` // node source port of a SNATed flow
	Lost     uint64         `json:"lost,omitempty"`     // VerdictLost only
}
