// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/lbd-project/lbd/pkg/model"
)

// portHash is kube-proxy's chain-name hash (servicePortChainName): the
// first 16 base32 characters of sha256 of the service port name and
// protocol, so chain names have kube-proxy's length and spread.
func portHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "")))
	return base32.StdEncoding.EncodeToString(sum[:])[:16]
}

func (s Service) spn() string { return s.Namespace + "/" + s.Name + ":" + s.PortName }

func protoName(p model.Protocol) string {
	if p == model.UDP {
		return "udp"
	}
	return "tcp"
}

// iptablesHeader declares the built-in and fixed kube-proxy chains of the
// nat table and the rules that hook them, as kube-proxy's iptables mode
// has them (externalTrafficPolicy: Cluster: everything external is marked
// for masquerade).
const iptablesHeader = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
`

// iptablesChains writes the chain declarations of s.
func iptablesChains(b *strings.Builder, s Service) {
	h := portHash(s.spn(), protoName(s.Proto))
	fmt.Fprintf(b, ":KUBE-EXT-%s - [0:0]\n:KUBE-SVC-%s - [0:0]\n", h, h)
	for _, be := range s.Backends {
		fmt.Fprintf(b, ":KUBE-SEP-%s - [0:0]\n", portHash(s.spn(), protoName(s.Proto), be.String()))
	}
}

// iptablesRules writes the rules of s: its KUBE-SERVICES match, the
// KUBE-EXT chain (mark for masquerade, jump to KUBE-SVC), the KUBE-SVC
// chain choosing an endpoint with "statistic --mode random" and one KUBE-SEP
// chain per endpoint (hairpin masquerade, DNAT).
func iptablesRules(b *strings.Builder, s Service) {
	p := protoName(s.Proto)
	h := portHash(s.spn(), p)
	fmt.Fprintf(b, "-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"%s loadbalancer IP\" -m %s --dport %d -j KUBE-EXT-%s\n",
		s.VIP, p, s.spn(), p, s.Port, h)
	fmt.Fprintf(b, "-A KUBE-EXT-%s -m comment --comment \"masquerade traffic for %s external destinations\" -j KUBE-MARK-MASQ\n", h, s.spn())
	fmt.Fprintf(b, "-A KUBE-EXT-%s -j KUBE-SVC-%s\n", h, h)
	n := len(s.Backends)
	for i, be := range s.Backends {
		sep := portHash(s.spn(), p, be.String())
		if i < n-1 {
			fmt.Fprintf(b, "-A KUBE-SVC-%s -m comment --comment \"%s -> %s\" -m statistic --mode random --probability %0.10f -j KUBE-SEP-%s\n",
				h, s.spn(), be, 1/float64(n-i), sep)
		} else {
			fmt.Fprintf(b, "-A KUBE-SVC-%s -m comment --comment \"%s -> %s\" -j KUBE-SEP-%s\n", h, s.spn(), be, sep)
		}
	}
	for _, be := range s.Backends {
		sep := portHash(s.spn(), p, be.String())
		fmt.Fprintf(b, "-A KUBE-SEP-%s -s %s/32 -m comment --comment %s -j KUBE-MARK-MASQ\n", sep, be.Addr(), s.spn())
		fmt.Fprintf(b, "-A KUBE-SEP-%s -p %s -m comment --comment %s -m %s -j DNAT --to-destination %s\n", sep, p, s.spn(), p, be)
	}
}

// IptablesRestore returns an iptables-restore input replacing the nat table
// with kube-proxy's rules for svcs, KUBE-SERVICES in the order of svcs.
func IptablesRestore(svcs []Service) string {
	var b strings.Builder
	b.WriteString(iptablesHeader)
	for _, s := range svcs {
		iptablesChains(&b, s)
	}
	for _, s := range svcs {
		iptablesRules(&b, s)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// IptablesAdd returns an "iptables-restore --noflush" input adding one
// service to a table IptablesRestore wrote: its new chains and rules, its
// KUBE-SERVICES rule appended. kube-proxy's partial sync also rewrites all
// of KUBE-SERVICES; this is the smallest change iptables can make.
func IptablesAdd(s Service) string {
	var b strings.Builder
	b.WriteString("*nat\n")
	iptablesChains(&b, s)
	iptablesRules(&b, s)
	b.WriteString("COMMIT\n")
	return b.String()
}

// nftHeader is kube-proxy's nftables-mode skeleton (table ip kube-proxy):
// the masquerade mark, the NAT hooks, and the service-ips verdict map that
// the services chain looks up once per packet.
const nftHeader = `add table ip kube-proxy
add chain ip kube-proxy mark-for-masquerade
add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000
add chain ip kube-proxy masquerading
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add chain ip kube-proxy services
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }
add rule ip kube-proxy nat-prerouting jump services
add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }
add rule ip kube-proxy nat-output jump services
add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }
add rule ip kube-proxy nat-postrouting jump masquerading
`

// nftService writes s the way kube-proxy's nftables mode does: one
// endpoint chain per backend (hairpin mark, DNAT), a service chain picking
// one with "numgen random mod N vmap", an external chain marking for
// masquerade, and one service-ips element.
func nftService(b *strings.Builder, s Service) {
	p := protoName(s.Proto)
	h := portHash(s.spn(), p)
	var vmap []string
	for i, be := range s.Backends {
		ep := "endpoint-" + portHash(s.spn(), p, be.String())
		fmt.Fprintf(b, "add chain ip kube-proxy %s\n", ep)
		fmt.Fprintf(b, "add rule ip kube-proxy %s ip saddr %s jump mark-for-masquerade\n", ep, be.Addr())
		fmt.Fprintf(b, "add rule ip kube-proxy %s meta l4proto %s dnat to %s\n", ep, p, be)
		vmap = append(vmap, fmt.Sprintf("%d : goto %s", i, ep))
	}
	fmt.Fprintf(b, "add chain ip kube-proxy service-%s\n", h)
	if len(vmap) > 0 {
		fmt.Fprintf(b, "add rule ip kube-proxy service-%s numgen random mod %d vmap { %s }\n", h, len(vmap), strings.Join(vmap, " , "))
	}
	fmt.Fprintf(b, "add chain ip kube-proxy external-%s\n", h)
	fmt.Fprintf(b, "add rule ip kube-proxy external-%s jump mark-for-masquerade\n", h)
	fmt.Fprintf(b, "add rule ip kube-proxy external-%s goto service-%s\n", h, h)
	fmt.Fprintf(b, "add element ip kube-proxy service-ips { %s . %s . %d : goto external-%s }\n", s.VIP, p, s.Port, h)
}

// Nft returns an "nft -f" input creating kube-proxy's nftables-mode table
// for svcs in one transaction.
func Nft(svcs []Service) string {
	var b strings.Builder
	b.WriteString(nftHeader)
	for _, s := range svcs {
		nftService(&b, s)
	}
	return b.String()
}

// NftChunks returns "nft -f" inputs creating the same table as Nft in
// several transactions: the skeleton, then per services chunks of at most
// chunk services. This kernel's nf_tables commit work grows with the
// square of a transaction's size (a 10 000-service transaction stalls it
// for tens of seconds, "soft lockup"), so a large table is loaded in
// slices; each slice only refers to chains that exist or that it creates.
func NftChunks(svcs []Service, chunk int) []string {
	out := []string{nftHeader}
	for len(svcs) > 0 {
		n := min(chunk, len(svcs))
		var b strings.Builder
		for _, s := range svcs[:n] {
			nftService(&b, s)
		}
		out = append(out, b.String())
		svcs = svcs[n:]
	}
	return out
}

// NftAdd returns an "nft -f" input adding one service to a table Nft wrote.
func NftAdd(s Service) string {
	var b strings.Builder
	nftService(&b, s)
	return b.String()
}
