// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"net/netip"
	"testing"
	"time"

	"github.com/lbd-project/lbd/pkg/model"
)

// TestFingerprintFields: every field desiredFor reads moves the
// fingerprint (else Sync would skip a real change); fields it does not read
// leave it alone (else Sync would recompute for nothing).
func TestFingerprintFields(t *testing.T) {
	base := func() model.Service { return packetState().Services[0] }
	want := fingerprint(ptr(base()), "node1")
	if got := fingerprint(ptr(base()), "node1"); got != want {
		t.Fatalf("fingerprint of equal services differs: %x, %x", got, want)
	}
	changes := map[string]func(*model.Service){
		"name":               func(s *model.Service) { s.Key.Name += "x" },
		"namespace":          func(s *model.Service) { s.Key.Namespace += "x" },
		"vip":                func(s *model.Service) { s.VIPs[0] = netip.MustParseAddr("10.20.1.99") },
		"second vip":         func(s *model.Service) { s.VIPs = append(s.VIPs, netip.MustParseAddr("fd00::1")) },
		"port":               func(s *model.Service) { s.Ports[0].Port++ },
		"port protocol":      func(s *model.Service) { s.Ports[0].Protocol = model.UDP },
		"port name":          func(s *model.Service) { s.Ports[0].Name = "web" },
		"long port name":     func(s *model.Service) { s.Ports[0].Name = "a-very-long-port-name" },
		"traffic policy":     func(s *model.Service) { s.TrafficPolicy = model.PolicyLocal },
		"affinity":           func(s *model.Service) { s.AffinityTimeout = time.Hour },
		"source range":       func(s *model.Service) { s.SourceRanges = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
		"source range bits":  func(s *model.Service) { s.SourceRanges = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/9")} },
		"endpoint addr":      func(s *model.Service) { s.Endpoints[0].Addr = netip.MustParseAddr("10.241.2.11") },
		"endpoint ready":     func(s *model.Service) { s.Endpoints[0].Ready = false },
		"endpoint serving":   func(s *model.Service) { s.Endpoints[0].Serving = false },
		"endpoint terminate": func(s *model.Service) { s.Endpoints[0].Terminating = true },
		"endpoint local":     func(s *model.Service) { s.Endpoints[0].NodeName = "node1" },
		"endpoint port":      func(s *model.Service) { s.Endpoints[0].Ports[0].Port++ },
		"endpoint port name": func(s *model.Service) { s.Endpoints[0].Ports[0].Name = "other" },
		"endpoint added":     func(s *model.Service) { s.Endpoints = append(s.Endpoints, s.Endpoints[0]) },
		"endpoint removed":   func(s *model.Service) { s.Endpoints = nil },
	}
	for name, change := range changes {
		s := base()
		s.VIPs = append([]netip.Addr(nil), s.VIPs...)
		s.Ports = append([]model.ServicePort(nil), s.Ports...)
		s.Endpoints = append([]model.Endpoint(nil), s.Endpoints...)
		s.Endpoints[0].Ports = append([]model.EndpointPort(nil), s.Endpoints[0].Ports...)
		change(&s)
		if fingerprint(&s, "node1") == want {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	same := map[string]func(*model.Service){
		"labels":             func(s *model.Service) { s.Labels = map[string]string{"a": "b"} },
		"requested ip":       func(s *model.Service) { s.RequestedIPs = []netip.Addr{netip.MustParseAddr("10.0.0.1")} },
		"sharing key":        func(s *model.Service) { s.SharingKey = "k" },
		"remote node rename": func(s *model.Service) { s.Endpoints[0].NodeName = "node3" },
	}
	for name, change := range same {
		s := base()
		s.Endpoints = append([]model.Endpoint(nil), s.Endpoints...)
		change(&s)
		if fingerprint(&s, "node1") != want {
			t.Errorf("%s: fingerprint changed, but desiredFor does not read it", name)
		}
	}
}

func ptr[T any](v T) *T { return &v }
