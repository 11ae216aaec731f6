// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lbd-project/lbd/pkg/model"
)

// parseAddr parses one IP address. Zones and IPv4-mapped IPv6 addresses are
// refused: neither can be a VIP or a backend, and accepting "::ffff:a.b.c.d"
// would give one address two spellings that compare unequal.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, errInvalidIP
	}
	if a.Zone() != "" {
		return netip.Addr{}, errZone
	}
	if a.Is4In6() {
		return netip.Addr{}, errMapped
	}
	return a, nil
}

func family(a netip.Addr) model.Family {
	if a.Is4() {
		return model.IPv4
	}
	return model.IPv6
}

// parseRange parses a pool address: a CIDR or an inclusive range
// "first-last" of one family.
func parseRange(s string) (model.AddrRange, error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		f, err := parseAddr(strings.TrimSpace(first))
		if err != nil {
			return model.AddrRange{}, err
		}
		l, err := parseAddr(strings.TrimSpace(last))
		if err != nil {
			return model.AddrRange{}, err
		}
		if f.BitLen() != l.BitLen() {
			return model.AddrRange{}, fmt.Errorf("range mixes IPv4 and IPv6")
		}
		if l.Less(f) {
			return model.AddrRange{}, fmt.Errorf("range is reversed: %s is after %s", f, l)
		}
		return model.AddrRange{First: f, Last: l}, nil
	}
	if !strings.Contains(s, "/") {
		return model.AddrRange{}, fmt.Errorf("want a CIDR (10.20.1.0/25) or a range (10.20.1.1-10.20.1.127)")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return model.AddrRange{}, fmt.Errorf("invalid CIDR")
	}
	if p.Addr().Is4In6() {
		return model.AddrRange{}, errMapped
	}
	// A CIDR with host bits set ("10.20.1.5/24") is most likely a typo for
	// something else; in a pool that is a security boundary we refuse to
	// guess.
	if m := p.Masked(); m != p {
		return model.AddrRange{}, fmt.Errorf("CIDR has host bits set, did you mean %s?", m)
	}
	return model.AddrRange{First: p.Addr(), Last: lastAddr(p)}, nil
}

// lastAddr returns the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 96 // As16 puts an IPv4 address in the last 4 bytes.
	}
	for i := off + p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

func overlaps(a, b model.AddrRange) bool {
	return a.First.BitLen() == b.First.BitLen() &&
		a.First.Compare(b.Last) <= 0 && b.First.Compare(a.Last) <= 0
}

// parseAddrList parses a comma-separated list of addresses (an annotation
// value). It reports the first problem.
func parseAddrList(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		a, err := parseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		out = append(out, a)
	}
	return out, nil
}
