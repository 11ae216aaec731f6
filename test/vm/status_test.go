// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []VIPStatus
	}{{
		name: "contract",
		in: `{"pools":[{"name":"internal"}],"vips":[
			{"vip":"10.20.1.1","service":"default/web-internal","pool":"internal","owner":"node2",
			 "ports":[{"port":80,"protocol":"TCP","name":"http"},{"port":53,"protocol":"UDP","name":"dns"}],
			 "backends":[{"addr":"10.241.1.11"}],"counters":{"packets":3}}]}`,
		want: []VIPStatus{{
			VIP: mustAddr(t, "10.20.1.1"), Service: "default/web-internal", Pool: "internal", Owner: "node2",
			Ports: []PortStatus{{Port: 80, Protocol: "TCP", Name: "http"}, {Port: 53, Protocol: "UDP", Name: "dns"}},
		}},
	}, {
		name: "other spellings",
		in: `{"vips":[
			{"address":"10.20.1.128","service":{"namespace":"default","name":"web-external"},"pool":"external","node":"node1","ports":["80/tcp",53]},
			{"ip":"10.20.1.2","service":"default/x","ports":[{"port":80,"proto":6}]}]}`,
		want: []VIPStatus{{
			VIP: mustAddr(t, "10.20.1.128"), Service: "default/web-external", Pool: "external", Owner: "node1",
			Ports: []PortStatus{{Port: 80, Protocol: "TCP"}, {Port: 53}},
		}, {
			VIP: mustAddr(t, "10.20.1.2"), Service: "default/x",
			Ports: []PortStatus{{Port: 80, Protocol: "TCP"}},
		}},
	}, {
		name: "no vips",
		in:   `{"pools":[]}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.VIPs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("ParseStatus (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`not json`, `{"vips":[{"vip":"nope"}]}`, `{"vips":[{"vip":"10.20.1.1","ports":["x/TCP"]}]}`} {
		if _, err := ParseStatus([]byte(bad)); err == nil {
			t.Errorf("ParseStatus(%s) succeeded, want error", bad)
		}
	}
}

func TestParseUDPAnswer(t *testing.T) {
	got, err := ParseUDPAnswer("node2-pod1 10.20.0.200:40000\n")
	if err != nil {
		t.Fatal(err)
	}
	want := UDPAnswer{Pod: "node2-pod1", Client: netip.MustParseAddrPort("10.20.0.200:40000")}
	if got != want {
		t.Errorf("ParseUDPAnswer = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "node1-pod1", "node1-pod1 nonsense"} {
		if _, err := ParseUDPAnswer(bad); err == nil {
			t.Errorf("ParseUDPAnswer(%q) succeeded, want error", bad)
		}
	}
}
