// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// RemoteNet is the subnet behind the lab's router: a client there reaches
// VIPs only through the router, which resolves them on the VLAN.
var RemoteNet = netip.MustParsePrefix("10.20.8.0/24")

// Router is a namespace routing between the VLAN and RemoteNet, with one
// client behind it.
type Router struct {
	// Host is the router: eth0 on the VLAN, eth1 toward the client. Its
	// neighbour table holds the VIPs the client talks to.
	Host
	// Client is the host behind the router, on RemoteNet.
	Client *Host
}

// Router sysctls. arp_accept stays 0 (the default) on purpose: Linux then
// creates no neighbour entry from an unsolicited ARP, but still updates an
// entry it already has when a gratuitous ARP (sender IP = target IP)
// arrives, overriding the lock time (net/ipv4/arp.c, arp_process: is_garp
// sets override). The router holds the VIP's entry from the client's
// traffic, so the new owner's gratuitous ARP is what moves it.
var sysctlRouter = append([]string{
	"net.ipv4.ip_forward=1",
	"net.ipv4.conf.all.rp_filter=0",
	"net.ipv4.conf.default.rp_filter=0",
	"net.ipv4.conf.all.arp_accept=0",
	"net.ipv4.conf.default.arp_accept=0",
}, sysctlNoDAD...)

// AddRouter builds the router and its client, and gives every node a route
// to RemoteNet through the router (replies to the remote client leave
// the owner node toward it). Close removes them with the lab.
func (l *Lab) AddRouter(ctx context.Context) (*Router, error) {
	rip := netip.MustParseAddr("10.20.0.250")
	r := &Router{Host: Host{Name: "router", NetNS: l.Prefix + "-rt", IP: rip, MAC: mac(roleHost, rip)}}
	cip := RemoteNet.Addr().Next().Next() // .2; the router is .1
	r.Client = &Host{Name: "remote-client", NetNS: l.Prefix + "-rc", IP: cip, MAC: mac(roleHost, cip)}
	gw := RemoteNet.Addr().Next()

	for _, ns := range []string{r.NetNS, r.Client.NetNS} {
		if err := l.addNS(ctx, ns); err != nil {
			return nil, fmt.Errorf("add router: %w", err)
		}
	}
	if err := sysctlIn(ctx, r.NetNS, sysctlRouter...); err != nil {
		return nil, err
	}
	if err := sysctlIn(ctx, r.Client.NetNS, sysctlNoDAD...); err != nil {
		return nil, err
	}
	if err := l.plugIntoSwitch(ctx, &r.Host, "rt"); err != nil {
		return nil, err
	}
	steps := [][]string{
		{r.NetNS, "link", "add", "eth1", "address", mac(roleNodeVeth, gw).String(), "type", "veth",
			"peer", "name", "eth0", "address", r.Client.MAC.String(), "netns", r.Client.NetNS},
		{r.NetNS, "addr", "add", netip.PrefixFrom(gw, RemoteNet.Bits()).String(), "dev", "eth1"},
		{r.NetNS, "link", "set", "eth1", "up"},
		{r.Client.NetNS, "addr", "add", netip.PrefixFrom(cip, RemoteNet.Bits()).String(), "dev", "eth0"},
		{r.Client.NetNS, "link", "set", "eth0", "up"},
		{r.Client.NetNS, "route", "add", "default", "via", gw.String(), "dev", "eth0"},
	}
	for _, n := range l.Nodes {
		steps = append(steps, []string{n.NetNS, "route", "add", RemoteNet.String(), "via", rip.String(), "dev", "eth0"})
	}
	for _, s := range steps {
		if err := ipIn(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("add router: %w", err)
		}
	}
	l.opts.Logf("lab %s: router %s between the VLAN and %s, client %s", l.Prefix, rip, RemoteNet, cip)
	return r, nil
}
