// SPDX-License-Identifier: Apache-2.0

package model

import (
	"fmt"
	"net/netip"
	"time"
)

// State is one snapshot of the desired state. Slices are sorted by name (pools,
// nodes) or by key (services) by the source that builds the State, so that
// every node computes the same answers from the same inputs.
type State struct {
	Pools         []Pool
	Services      []Service
	Nodes         []Node
	Announcements []Announcement
}

// Pool is an address pool that VIPs are allocated from.
type Pool struct {
	Name string
	// Ranges are inclusive address ranges; a CIDR is stored as its first and
	// last address. Ranges of one pool never overlap (validated by the source).
	Ranges []AddrRange
	// AutoAssign allows allocation to services that did not ask for this
	// pool or one of its addresses.
	AutoAssign bool
	// AvoidBuggyIPs skips .0 and .255 addresses of IPv4 /24 boundaries.
	AvoidBuggyIPs bool
	// ServiceSelector chooses the services that may get an address from
	// this pool. A nil selector matches every service.
	ServiceSelector Selector
	// NamespaceSelector chooses services by the labels of their namespace.
	// A nil selector matches every namespace.
	NamespaceSelector Selector
	// Priority orders pools that select the same service: higher first.
	Priority int
}

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct {
	First, Last netip.Addr
}

// Contains reports whether a is inside r.
func (r AddrRange) Contains(a netip.Addr) bool {
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// String renders r as "first-last".
func (r AddrRange) String() string { return r.First.String() + "-" + r.Last.String() }

// Selector matches a set of labels. Implementations must be safe for
// concurrent use.
type Selector interface {
	Matches(labels map[string]string) bool
	String() string
}

// ServiceKey names a Service.
type ServiceKey struct {
	Namespace, Name string
}

// String renders k as "namespace/name".
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// Protocol is an L4 protocol of a service port; values are IANA numbers.
type Protocol uint8

// Protocols lbd load-balances.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// String renders p the way Kubernetes spells it.
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// TrafficPolicy is a Service's externalTrafficPolicy.
type TrafficPolicy uint8

// Traffic policies.
const (
	// PolicyCluster sends traffic to every ready endpoint; remote endpoints
	// are reached with the node's address as source (SNAT).
	PolicyCluster TrafficPolicy = iota
	// PolicyLocal sends traffic only to endpoints on the receiving node and
	// preserves the client address.
	PolicyLocal
)

func (p TrafficPolicy) String() string {
	if p == PolicyLocal {
		return "Local"
	}
	return "Cluster"
}

// Service is a Service of type LoadBalancer handled by lbd.
type Service struct {
	Key    ServiceKey
	Labels map[string]string
	// NamespaceLabels are the labels of the Service's namespace, for pool
	// namespace selectors.
	NamespaceLabels map[string]string
	// RequestedIPs are addresses the Service asked for (spec.loadBalancerIP
	// or lbd's / MetalLB's annotations).
	RequestedIPs []netip.Addr
	// RequestedPool is a pool named by annotation, or "".
	RequestedPool string
	// SharingKey lets Services with the same key share a VIP when their
	// ports do not collide.
	SharingKey string
	// Families lists the address families the Service wants, in order of
	// preference (from spec.ipFamilies and ipFamilyPolicy).
	Families []Family
	// VIPs are the addresses allocated to the Service (from its status, or
	// assigned by ipam in static mode).
	VIPs  []netip.Addr
	Ports []ServicePort
	// TrafficPolicy is externalTrafficPolicy.
	TrafficPolicy TrafficPolicy
	// AffinityTimeout > 0 enables sessionAffinity: ClientIP.
	AffinityTimeout time.Duration
	// SourceRanges are loadBalancerSourceRanges; empty allows everyone.
	SourceRanges []netip.Prefix
	Endpoints    []Endpoint
	// Revision identifies the content of every field above but VIPs, as
	// the source built it: a source gives an unchanged Service the same
	// non-zero Revision and a changed one another, so consumers can skip
	// unchanged Services without comparing them (the datapath does, among
	// 10 000). 0 means unknown: consumers compare. Whoever changes a field
	// other than VIPs must reset it to 0 (the agent fills in VIPs only).
	Revision uint64
	// CreatedAt (metadata.creationTimestamp, zero when unset) and Order
	// (the Service's position among the Services of a static manifest,
	// 0 elsewhere) say which Service came first: static-mode allocation
	// from scratch serves Services in that order (ipam.Allocate), so that
	// appending a Service never moves an earlier one. They are not part
	// of Revision: they change no datapath content.
	CreatedAt time.Time
	Order     int
}

// Family is an IP address family.
type Family uint8

// Families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string
	Port     uint16
	Protocol Protocol
}

// Endpoint is one backend address of a Service, merged from its
// EndpointSlices.
type Endpoint struct {
	Addr     netip.Addr
	NodeName string
	// Ready endpoints receive new flows. Serving but not ready endpoints
	// that are Terminating keep their established flows only.
	Ready       bool
	Serving     bool
	Terminating bool
	Ports       []EndpointPort
}

// EndpointPort is a port an endpoint listens on; Name matches a
// ServicePort's Name.
type EndpointPort struct {
	Name     string
	Port     uint16
	Protocol Protocol
}

// PortFor returns the endpoint's port for service port sp.
func (e Endpoint) PortFor(sp ServicePort) (uint16, bool) {
	for _, p := range e.Ports {
		if p.Name == sp.Name && p.Protocol == sp.Protocol {
			return p.Port, true
		}
	}
	return 0, false
}

// Node is a cluster node that may run lbd.
type Node struct {
	Name   string
	Addrs  []netip.Addr
	Labels map[string]string
	// Excluded nodes (node.kubernetes.io/exclude-from-external-load-balancers)
	// never announce.
	Excluded bool
}

// Zone returns the node's topology.kubernetes.io/zone label, or "".
func (n Node) Zone() string { return n.Labels["topology.kubernetes.io/zone"] }

// Announcement says which pools are announced on which interfaces of which
// nodes. With no Announcement, every pool is announced on the daemon's
// default interfaces by every node.
type Announcement struct {
	Name string
	// Pools names the pools announced; empty means all.
	Pools []string
	// Interfaces names the node interfaces to announce on; empty means the
	// daemon's default.
	Interfaces []string
	// NodeSelector chooses the nodes; nil means all.
	NodeSelector Selector
}

// Service returns the service with key k.
func (s *State) Service(k ServiceKey) (*Service, bool) {
	for i := range s.Services {
		if s.Services[i].Key == k {
			return &s.Services[i], true
		}
	}
	return nil, false
}

// Node returns the node named name.
func (s *State) Node(name string) (*Node, bool) {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i], true
		}
	}
	return nil, false
}
