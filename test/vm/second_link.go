// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
)

// SecondNet is the subnet of a node's second link (AddSecondLink): a
// segment of its own, apart from the VLAN, with VIPs on-link in it.
var SecondNet = netip.MustParsePrefix("10.20.16.0/24")

// SecondLinkIface is the node's name for its second link.
const SecondLinkIface = "eth1"

func init() { labPrefixes = append(labPrefixes, SecondNet) }

// AddSecondLink gives node n a second interface, eth1 (SecondNet .1), with
// one client host at its other end (SecondNet .2, on-link for the whole
// subnet). The client reaches SecondNet VIPs only if n answers ARP and
// load-balances on eth1. Close removes it with the lab.
func (l *Lab) AddSecondLink(ctx context.Context, n *Node) (*Host, error) {
	nodeIP := SecondNet.Addr().Next()
	cip := nodeIP.Next()
	c := &Host{Name: n.Name + "-second-client", NetNS: fmt.Sprintf("%s-x%d", l.Prefix, n.Index), IP: cip, MAC: mac(roleHost, cip)}
	if err := l.addNS(ctx, c.NetNS); err != nil {
		return nil, fmt.Errorf("add second link: %w", err)
	}
	if err := sysctlIn(ctx, c.NetNS, sysctlNoDAD...); err != nil {
		return nil, err
	}
	steps := [][]string{
		{n.NetNS, "link", "add", SecondLinkIface, "address", mac(roleNodeVeth, nodeIP).String(), "type", "veth",
			"peer", "name", "eth0", "address", c.MAC.String(), "netns", c.NetNS},
		{n.NetNS, "addr", "add", netip.PrefixFrom(nodeIP, SecondNet.Bits()).String(), "dev", SecondLinkIface},
		{n.NetNS, "link", "set", SecondLinkIface, "up"},
		{c.NetNS, "addr", "add", netip.PrefixFrom(cip, SecondNet.Bits()).String(), "dev", "eth0"},
		{c.NetNS, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipIn(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("add second link: %w", err)
		}
	}
	l.opts.Logf("lab %s: %s has %s on %s, client %s", l.Prefix, n.Name, SecondLinkIface, SecondNet, cip)
	return c, nil
}

// LinkPin is the path of the bpf link lbd pins for hook ("tcx-ingress",
// "tcx-egress", "xdp") of iface on node n (pkg/datapath's layout).
func (n *Node) LinkPin(iface, hook string) string {
	return filepath.Join(n.PinDir, "links", iface+"_"+hook)
}

// SecondRange is the pool range of SecondNet VIPs.
var SecondRange = [2]netip.Addr{netip.MustParseAddr("10.20.16.100"), netip.MustParseAddr("10.20.16.120")}
