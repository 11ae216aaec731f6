// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
)

// metricsManifests is a one-node static cluster: the reference pools and
// one TCP Service with a backend on this node.
const metricsManifests = `apiVersion: v1
kind: Node
metadata:
  name: node-1
status:
  addresses:
    - type: InternalIP
      address: 10.20.0.51
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  ports:
    - name: http
      port: 80
      protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
  - name: http
    port: 8080
    protocol: TCP
endpoints:
  - addresses: ["10.241.1.10"]
    nodeName: node-1
    conditions:
      ready: true
---
`

// TestPrivilegedMetricsEndToEnd runs the real lbd binary in a node
// namespace, sends a client's TCP SYNs to the VIP from a second namespace
// over a veth (real ARP), and scrapes /metrics and /readyz over HTTP in the
// node namespace: the per-frontend counters come from the BPF maps.
func TestPrivilegedMetricsEndToEnd(t *testing.T) {
	testutil.Privileged(t)
	n := startNode(t, "--metrics-addr=127.0.0.1:9474")
	node, client := n.node, n.client

	// HTTP from inside the node namespace: the dialer opens its socket
	// there; the connection is then usable from any thread.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := node.Do(func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
	get := func(path string) (int, string, error) {
		resp, err := hc.Get("http://127.0.0.1:9474" + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := get("/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never 200: %d %q %v", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	_, body, err := get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := parseMetrics(t, body)
	vip := ""
	for k := range m {
		if s, ok := strings.CutPrefix(k, `lbd_vip_owner_info{owner="node-1",vip="`); ok {
			vip = strings.TrimSuffix(s, `"}`)
		}
	}
	if addr, err := netip.ParseAddr(vip); err != nil || !netip.MustParsePrefix("10.20.1.0/25").Contains(addr) {
		t.Fatalf("no VIP from the internal pool owned by node-1 in:\n%s", body)
	}
	for k, want := range map[string]float64{
		"lbd_vips_owned":                                                 1,
		`lbd_pool_addresses{pool="internal"}`:                            127,
		`lbd_pool_addresses_used{pool="internal"}`:                       1,
		`lbd_datapath_attached_info{interface="veth0",mode="tcx"}`:       1,
		`lbd_backends_ready{port="80",protocol="TCP",vip="` + vip + `"}`: 1,
		"lbd_errors":            0,
		"lbd_sync_errors_total": 0,
		// One frontend plus its VIP marker; capacities as configured.
		`lbd_datapath_map_entries{map="lb_services"}`:   2,
		`lbd_datapath_map_entries{map="lb_backends"}`:   1,
		`lbd_datapath_map_capacity{map="lb_conntrack"}`: 262144,
		`lbd_datapath_map_capacity{map="lb_services"}`:  8192,
		"lbd_flow_events_total":                         0, // nobody ran lbd flows
		"lbd_flow_events_lost_total":                    0,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if m["lbd_reconciles_total"] < 1 {
		t.Errorf("lbd_reconciles_total = %v, want >= 1", m["lbd_reconciles_total"])
	}
	key := `{port="80",protocol="TCP",vip="` + vip + `"}`
	before := m["lbd_datapath_packets_total"+key]

	// Three connection attempts from the client: ARP resolves the VIP to
	// the node, the SYNs go through the datapath (the backend itself does
	// not exist, so they time out after being counted).
	if err := client.Do(func() error {
		for range 3 {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "80"), 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, body, err = get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m = parseMetrics(t, body)
	if got := m["lbd_datapath_packets_total"+key] - before; got < 3 {
		t.Errorf("lbd_datapath_packets_total%s grew by %v after 3 SYNs, want >= 3", key, got)
	}
	if got := m["lbd_datapath_new_flows_total"+key]; got < 1 {
		t.Errorf("lbd_datapath_new_flows_total%s = %v, want >= 1", key, got)
	}
	if got := m["lbd_arp_ndp_answered_total"]; got < 1 {
		t.Errorf("lbd_arp_ndp_answered_total = %v, want >= 1 (the client resolved the VIP)", got)
	}
}

func linkUp(name, prefix string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(prefix)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add %s to %s: %w", prefix, name, err)
	}
	return netlink.LinkSetUp(l)
}

var sampleRE = regexp.MustCompile(`^(lbd_[a-z_]+(?:\{[^}]*\})?) (\S+)$`)

// parseMetrics maps "name{labels}" to the value of every lbd_ sample.
func parseMetrics(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if m := sampleRE.FindStringSubmatch(sc.Text()); m != nil {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatalf("sample %q: %v", sc.Text(), err)
			}
			out[m[1]] = v
		}
	}
	return out
}
