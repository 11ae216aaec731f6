// SPDX-License-Identifier: Apache-2.0

package lab

// IPv6 in the lab (Options.IPv6): every host keeps its IPv4 address and
// gains an IPv6 one derived from it, so a node, pod or client is the same
// host in both families and its MAC still names it.

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/config"
)

// IPv6 address plan.
var (
	// VLAN6 is the VLAN's IPv6 prefix: 10.20.A.B is fd00:20::A:B, the
	// IPv4 octets written as hex digits (node1 10.20.0.51 is
	// fd00:20::51).
	VLAN6 = netip.MustParsePrefix("fd00:20::/64")
	// PodNet6 holds every pod's IPv6 address; node N's pods are in
	// fd00:241:N::/64 and 10.241.N.X is fd00:241:N::X.
	PodNet6 = netip.MustParsePrefix("fd00:241::/32")
)

func init() { labPrefixes = append(labPrefixes, VLAN6, PodNet6) }

// IP6 returns h's IPv6 address in a lab built with Options.IPv6, or the
// zero Addr for a host outside the VLAN and the pod network.
func (h *Host) IP6() netip.Addr {
	b := h.IP.As4()
	switch {
	case VLAN.Contains(h.IP):
		return netip.MustParseAddr(fmt.Sprintf("fd00:20::%d:%d", b[2], b[3]))
	case PodNet.Contains(h.IP):
		return netip.MustParseAddr(fmt.Sprintf("fd00:241:%d::%d", b[2], b[3]))
	}
	return netip.Addr{}
}

// NodeGateway6 returns node n's IPv6 pod gateway, fd00:241:N::1.
func (n *Node) NodeGateway6() netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:241:%d::1", n.Index))
}

// PodCIDR6 returns node n's IPv6 pod range, fd00:241:N::/64.
func (n *Node) PodCIDR6() netip.Prefix {
	return netip.MustParsePrefix(fmt.Sprintf("fd00:241:%d::/64", n.Index))
}

// sysctlNode6 lets nodes route IPv6 between the VLAN and their pods
// (bpf_fib_lookup also answers "forwarding disabled" without it). Set in
// the node namespaces only; DAD is already off there (sysctlNoDAD), and
// every address is added "nodad" too, so it is usable at once.
var sysctlNode6 = []string{"net.ipv6.conf.all.forwarding=1", "net.ipv6.conf.default.forwarding=1"}

// addIPv6 gives the built lab its IPv6 addresses and routes, mirroring the
// IPv4 ones: a /64 on the VLAN, a /128 per pod behind a per-veth gateway,
// node-to-node routes to the pod ranges.
func (l *Lab) addIPv6(ctx context.Context) error {
	var steps [][]string
	for _, n := range l.Nodes {
		if err := sysctlIn(ctx, n.NetNS, sysctlNode6...); err != nil {
			return err
		}
		steps = append(steps, []string{n.NetNS, "addr", "add", netip.PrefixFrom(n.IP6(), VLAN6.Bits()).String(), "dev", "eth0", "nodad"})
		gw := n.NodeGateway6()
		for _, p := range n.Pods {
			steps = append(steps,
				[]string{n.NetNS, "addr", "add", netip.PrefixFrom(gw, 128).String(), "dev", p.HostVeth, "nodad"},
				[]string{n.NetNS, "-6", "route", "add", netip.PrefixFrom(p.IP6(), 128).String(), "dev", p.HostVeth},
				[]string{p.NetNS, "addr", "add", netip.PrefixFrom(p.IP6(), 128).String(), "dev", "eth0", "nodad"},
				[]string{p.NetNS, "-6", "route", "add", "default", "via", gw.String(), "dev", "eth0", "onlink"},
			)
		}
		for _, m := range l.Nodes {
			if m != n {
				steps = append(steps, []string{n.NetNS, "-6", "route", "add", m.PodCIDR6().String(), "via", m.IP6().String(), "dev", "eth0"})
			}
		}
	}
	for _, c := range l.Clients {
		steps = append(steps, []string{c.NetNS, "addr", "add", netip.PrefixFrom(c.IP6(), VLAN6.Bits()).String(), "dev", "eth0", "nodad"})
		if l.opts.ClientPodRoutes {
			for _, n := range l.Nodes {
				steps = append(steps, []string{c.NetNS, "-6", "route", "add", n.PodCIDR6().String(), "via", n.IP6().String(), "dev", "eth0"})
			}
		}
	}
	for _, s := range steps {
		if err := ipIn(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("add ipv6: %w", err)
		}
	}
	l.opts.Logf("lab %s: IPv6 on %s, pods in %s", l.Prefix, VLAN6, PodNet6)
	return nil
}

// The dual-stack part of the manifest of a lab with Options.IPv6.
const (
	// PoolDual has an IPv4 and an IPv6 range: lbd gives a dual-stack
	// Service both VIPs from one pool.
	PoolDual = "dual"
	// ServiceDual is RequireDualStack with externalTrafficPolicy Cluster,
	// ServiceDualLocal the same with Local.
	ServiceDual      = "default/web-dual"
	ServiceDualLocal = "default/web-dual-local"
)

// Dual-stack pool ranges: IPv4 inside VLAN, IPv6 inside VLAN6, so both
// VIPs are on-link for the client (ARP and NDP).
var (
	DualRange4 = [2]netip.Addr{netip.MustParseAddr("10.20.2.1"), netip.MustParseAddr("10.20.2.127")}
	DualRange6 = [2]netip.Addr{netip.MustParseAddr("fd00:20::1:1"), netip.MustParseAddr("fd00:20::1:ff")}
)

// dualStackDocs returns the dual-stack pool, the two dual-stack Services
// and their IPv4 and IPv6 EndpointSlices (every pod ready), or nothing
// without Options.IPv6.
func (l *Lab) dualStackDocs() []any {
	if !l.opts.IPv6 {
		return nil
	}
	p := pool(PoolDual, DualRange4, &metav1.LabelSelector{MatchLabels: map[string]string{LBTypeLabel: PoolDual}}, 20)
	p.Spec.Addresses = append(p.Spec.Addresses, DualRange6[0].String()+"-"+DualRange6[1].String())
	docs := []any{p}
	for _, key := range []string{ServiceDual, ServiceDualLocal} {
		name := key[len("default/"):]
		svc := service(name, map[string]string{LBTypeLabel: PoolDual})
		svc.Annotations = map[string]string{config.AnnotationAddressPool: PoolDual}
		svc.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		if key == ServiceDualLocal {
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
		v4 := l.endpointSlice(name)
		v6 := l.endpointSlice(name)
		v6.Name += "-v6"
		v6.AddressType = discoveryv1.AddressTypeIPv6
		for i, p := range l.Pods() {
			v6.Endpoints[i].Addresses = []string{p.IP6().String()}
		}
		docs = append(docs, svc, v4, v6)
	}
	return docs
}

// Neighbor6 returns h's IPv6 neighbour entry for ip on eth0, and whether
// it has one with a MAC (incomplete and failed entries do not count).
func (h *Host) Neighbor6(ip netip.Addr) (Neighbor, bool, error) {
	ns, err := netns.GetFromName(h.NetNS)
	if err != nil {
		return Neighbor{}, false, fmt.Errorf("open netns %s: %w", h.NetNS, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return Neighbor{}, false, fmt.Errorf("netlink in %s: %w", h.NetNS, err)
	}
	defer nh.Close()
	eth0, err := nh.LinkByName("eth0")
	if err != nil {
		return Neighbor{}, false, fmt.Errorf("find eth0 of %s: %w", h.Name, err)
	}
	neighs, err := nh.NeighList(eth0.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return Neighbor{}, false, fmt.Errorf("list IPv6 neighbours of %s: %w", h.Name, err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a != ip || len(n.HardwareAddr) != 6 {
			continue
		}
		return Neighbor{IP: a, MAC: net.HardwareAddr(n.HardwareAddr), State: neighState(n.State)}, true, nil
	}
	return Neighbor{}, false, nil
}
