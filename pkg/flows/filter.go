// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// Filter selects events. The zero Filter selects all; each set field must
// match. Lost reports always pass.
type Filter struct {
	// VIP keeps events to this VIP (any port).
	VIP netip.Addr
	// Service keeps events of this Service: "namespace/name", or "name"
	// in any namespace.
	Service string
	// Client keeps events whose client address is in this prefix.
	Client netip.Prefix
	// Verdicts keeps events with one of these verdicts.
	Verdicts []Verdict
}

// Match reports whether e passes f.
func (f Filter) Match(e Event) bool {
	if e.Verdict == VerdictLost {
		return true
	}
	if f.VIP.IsValid() && e.VIP.Addr() != f.VIP {
		return false
	}
	if f.Service != "" && !serviceMatch(f.Service, e.Service) {
		return false
	}
	if f.Client.IsValid() && !f.Client.Contains(e.Client.Addr()) {
		return false
	}
	if len(f.Verdicts) > 0 && !slices.Contains(f.Verdicts, e.Verdict) {
		return false
	}
	return true
}

func serviceMatch(want, got string) bool {
	if strings.Contains(want, "/") {
		return want == got
	}
	_, name, _ := strings.Cut(got, "/")
	return name == want
}

// Values encodes f as query parameters (see ParseFilter).
func (f Filter) Values() url.Values {
	v := url.Values{}
	if f.VIP.IsValid() {
		v.Set("vip", f.VIP.String())
	}
	if f.Service != "" {
		v.Set("service", f.Service)
	}
	if f.Client.IsValid() {
		v.Set("client", f.Client.String())
	}
	for _, vd := range f.Verdicts {
		v.Add("verdict", string(vd))
	}
	return v
}

// ParseFilter decodes query parameters vip, service, client (a prefix or
// one address) and verdict (repeated or comma-separated).
func ParseFilter(v url.Values) (Filter, error) {
	var f Filter
	var err error
	if s := v.Get("vip"); s != "" {
		if f.VIP, err = netip.ParseAddr(s); err != nil {
			return Filter{}, fmt.Errorf("vip: %w", err)
		}
		f.VIP = f.VIP.Unmap()
	}
	f.Service = v.Get("service")
	if s := v.Get("client"); s != "" {
		if f.Client, err = ParseClient(s); err != nil {
			return Filter{}, err
		}
	}
	for _, s := range v["verdict"] {
		if err := f.AddVerdicts(s); err != nil {
			return Filter{}, err
		}
	}
	return f, nil
}

// ParseClient parses a client prefix; a bare address is its /32 or /128.
func ParseClient(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("client %q: want an address or a prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AddVerdicts adds a comma-separated list of verdicts to f.
func (f *Filter) AddVerdicts(list string) error {
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(Verdicts, Verdict(s)) {
			return fmt.Errorf("verdict %q: want one of %v", s, Verdicts)
		}
		f.Verdicts = append(f.Verdicts, Verdict(s))
	}
	return nil
}
