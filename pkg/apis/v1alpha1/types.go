// SPDX-License-Identifier: Apache-2.0

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPool is a cluster-scoped pool of addresses for LoadBalancer Services.
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolSpec is the desired shape of an IPPool.
type IPPoolSpec struct {
	// Addresses are the pool's addresses, each a CIDR ("10.20.1.0/25",
	// "fd00::/120") or an inclusive range of one family
	// ("10.20.1.1-10.20.1.127"). Ranges must not overlap, within this pool
	// or with any other pool.
	Addresses []string `json:"addresses"`
	// AutoAssign lets Services that did not name this pool or one of its
	// addresses get an address from it. Defaults to true.
	AutoAssign *bool `json:"autoAssign,omitempty"`
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255, which some
	// old client stacks treat as broadcast.
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`
	// ServiceSelector restricts the pool to Services whose labels match.
	// Unset matches every Service.
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	// NamespaceSelector restricts the pool to Services in namespaces whose
	// labels match. Unset matches every namespace.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Priority orders pools that select the same Service: higher first.
	Priority int `json:"priority,omitempty"`
}

// IPPoolStatus is the observed state of an IPPool, written by the elected
// lbd instance.
type IPPoolStatus struct {
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// AddressesTotal and AddressesUsed are decimal numbers. They are strings
	// because an IPv6 pool can hold more than 2^63 addresses.
	AddressesTotal string `json:"addressesTotal,omitempty"`
	AddressesUsed  string `json:"addressesUsed,omitempty"`
}

// IPPoolList is a list of IPPools.
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}

// L2Announcement is a cluster-scoped rule saying which pools are announced
// on which interfaces of which nodes. With no L2Announcement at all, every
// pool is announced by every node on the daemon's default interfaces.
type L2Announcement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec L2AnnouncementSpec `json:"spec"`
}

// L2AnnouncementSpec is the desired shape of an L2Announcement.
type L2AnnouncementSpec struct {
	// IPPools names the pools announced; empty means all pools. Names of
	// pools that do not exist match nothing.
	IPPools []string `json:"ipPools,omitempty"`
	// Interfaces names the node interfaces to announce on; empty means the
	// daemon's default interfaces.
	Interfaces []string `json:"interfaces,omitempty"`
	// NodeSelector chooses the nodes that announce; unset means all.
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// L2AnnouncementList is a list of L2Announcements.
type L2AnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Announcement `json:"items"`
}
