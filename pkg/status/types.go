// SPDX-License-Identifier: Apache-2.0

package status

import "time"

// Status is the daemon's view of itself, served at GET /v1/status.
type Status struct {
	Node     string   `json:"node"`
	Version  string   `json:"version"`
	Source   string   `json:"source"`
	Pools    []Pool   `json:"pools"`
	VIPs     []VIP    `json:"vips"`
	Datapath Datapath `json:"datapath"`
	Errors   []string `json:"errors,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Findings are the warnings derived by Check, with what each is
	// about (kind, VIP, pool, node); their messages are in Warnings too.
	Findings []Finding    `json:"findings,omitempty"`
	Members  []Member     `json:"members,omitempty"`
	Announce AnnounceInfo `json:"announce"`
	// Reconcile counts the daemon's reconcile passes.
	Reconcile ReconcileInfo `json:"reconcile"`
	// Rates says what interval the ports' Rates cover.
	Rates RateInfo `json:"rates"`
}

// Pool is an address pool with its use.
type Pool struct {
	Name   string   `json:"name"`
	Ranges []string `json:"ranges"`
	Total  uint64   `json:"total"`
	Used   uint64   `json:"used"`
}

// VIP is one allocated address.
type VIP struct {
	VIP      string   `json:"vip"`
	Service  string   `json:"service"`
	Services []string `json:"services"`
	Pool     string   `json:"pool"`
	Owner    string   `json:"owner"`
	// Owned is true when this node answers ARP/NDP for the VIP.
	Owned bool   `json:"owned"`
	Ports []Port `json:"ports"`
}

// Port is one {port, protocol} of a VIP with its backends and counters.
type Port struct {
	Port     uint16    `json:"port"`
	Protocol string    `json:"protocol"`
	Service  string    `json:"service"`
	Policy   string    `json:"policy"`
	Backends []Backend `json:"backends"`
	Counters Counters  `json:"counters"`
	// Rates are the counters' rates over Status.Rates's interval; nil
	// until the daemon has two snapshots far enough apart.
	Rates *Rates `json:"rates,omitempty"`
}

// Backend is one endpoint behind a port.
type Backend struct {
	Addr        string `json:"addr"`
	Node        string `json:"node"`
	Ready       bool   `json:"ready"`
	Terminating bool   `json:"terminating,omitempty"`
	Local       bool   `json:"local"`
}

// Counters are datapath counters of one frontend on this node.
type Counters struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"newFlows"`
	Drops    uint64 `json:"drops"`
}

// Datapath is this node's datapath state.
type Datapath struct {
	Attached  map[string]string `json:"attached"`
	Reasons   map[string]uint64 `json:"reasons"`
	Conntrack int               `json:"conntrack"`
	PinDir    string            `json:"pinDir"`
}

// Member is a peer lbd instance.
type Member struct {
	Node    string `json:"node"`
	Addr    string `json:"addr"`
	Healthy bool   `json:"healthy"`
}

// AnnounceInfo summarises the ARP/NDP responders.
type AnnounceInfo struct {
	Interfaces []string `json:"interfaces"`
	Answered   uint64   `json:"answered"`
	Gratuitous uint64   `json:"gratuitous"`
	Conflicts  uint64   `json:"conflicts"`
	// OwnerChanges counts VIPs whose elected owner changed, as this node
	// saw it (not while fenced, not the first election after start).
	OwnerChanges uint64 `json:"ownerChanges"`
	// LastConflict is when the daemon last noticed Conflicts grow (nil:
	// never since it started).
	LastConflict *time.Time `json:"lastConflict,omitempty"`
}

// ReconcileInfo counts reconcile passes since the daemon started.
type ReconcileInfo struct {
	Runs uint64 `json:"runs"`
	// SyncErrors counts passes in which applying the State failed: the
	// datapath sync (BPF map writes) or the ARP/NDP announcement.
	SyncErrors uint64 `json:"syncErrors"`
}
