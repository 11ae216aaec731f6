// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// A dual-stack Service's VIPs each list the backends of their own family
// only, as the datapath uses them: an IPv6 VIP whose Service has only
// IPv4 endpoints has no backend (and status.Check warns about it).
func TestSnapshotBackendsOfVIPFamily(t *testing.T) {
	a := netip.MustParseAddr
	port := []model.EndpointPort{{Name: "http", Port: 8080, Protocol: model.TCP}}
	in := &model.State{
		Pools: []model.Pool{{Name: "dual", AutoAssign: true, Ranges: []model.AddrRange{
			{First: a("10.20.2.1"), Last: a("10.20.2.10")},
			{First: a("fd00:20::1:1"), Last: a("fd00:20::1:10")},
		}}},
		Nodes: []model.Node{{Name: "node1", Addrs: []netip.Addr{a("10.20.0.51")}}},
		Services: []model.Service{
			{
				Key: model.ServiceKey{Namespace: "default", Name: "dual"}, Families: []model.Family{model.IPv4, model.IPv6},
				Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
				Endpoints: []model.Endpoint{
					{Addr: a("10.241.1.11"), NodeName: "node1", Ready: true, Ports: port},
					{Addr: a("fd00:241:1::11"), NodeName: "node1", Ready: true, Ports: port},
				},
			},
			{
				Key: model.ServiceKey{Namespace: "default", Name: "v4only"}, Families: []model.Family{model.IPv4, model.IPv6},
				Ports:     []model.ServicePort{{Name: "http", Port: 80, Protocol: model.TCP}},
				Endpoints: []model.Endpoint{{Addr: a("10.241.1.12"), NodeName: "node1", Ready: true, Ports: port}},
			},
		},
	}
	s := reconciledSnapshot(t, in, nil)
	got := map[string][]string{}
	for _, v := range s.VIPs {
		got[v.Service+" "+v.VIP] = []string{}
		for _, b := range v.Ports[0].Backends {
			got[v.Service+" "+v.VIP] = append(got[v.Service+" "+v.VIP], b.Addr)
		}
	}
	want := map[string][]string{
		"default/dual 10.20.2.1":      {"10.241.1.11:8080"},
		"default/dual fd00:20::1:1":   {"[fd00:241:1::11]:8080"},
		"default/v4only 10.20.2.2":    {"10.241.1.12:8080"},
		"default/v4only fd00:20::1:2": {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backends by VIP (-want +got):\n%s", diff)
	}
}
