// SPDX-License-Identifier: Apache-2.0

package config

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		wantErr     string
	}{
		{in: "10.20.1.0/25", first: "10.20.1.0", last: "10.20.1.127"},
		{in: "10.20.1.7/32", first: "10.20.1.7", last: "10.20.1.7"},
		{in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255"},
		{in: "10.20.1.1-10.20.1.127", first: "10.20.1.1", last: "10.20.1.127"},
		{in: " 10.20.1.1 - 10.20.1.1 ", first: "10.20.1.1", last: "10.20.1.1"},
		{in: "fd00::/120", first: "fd00::", last: "fd00::ff"},
		{in: "fd00::/61", first: "fd00::", last: "fd00:0:0:7:ffff:ffff:ffff:ffff"},
		{in: "fd00::1-fd00::ffff", first: "fd00::1", last: "fd00::ffff"},
		{in: "10.20.1.300-10.20.1.254", wantErr: "invalid IP address"},
		{in: "10.20.1.254-10.20.1.1", wantErr: "range is reversed: 10.20.1.254 is after 10.20.1.1"},
		{in: "10.20.1.1-fd00::1", wantErr: "range mixes IPv4 and IPv6"},
		{in: "10.20.1.5/24", wantErr: "CIDR has host bits set, did you mean 10.20.1.0/24?"},
		{in: "10.20.1.0/33", wantErr: "invalid CIDR"},
		{in: "10.20.1.5", wantErr: "want a CIDR (10.20.1.0/25) or a range (10.20.1.1-10.20.1.127)"},
		{in: "", wantErr: "want a CIDR (10.20.1.0/25) or a range (10.20.1.1-10.20.1.127)"},
		{in: "::ffff:10.0.0.0/104", wantErr: "IPv4-mapped IPv6 address; write it as IPv4"},
		{in: "fe80::1%eth0-fe80::2%eth0", wantErr: "IP address must not have a zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseRange(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("parseRange(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRange(%q): %v", tt.in, err)
			}
			want := model.AddrRange{First: netip.MustParseAddr(tt.first), Last: netip.MustParseAddr(tt.last)}
			if got != want {
				t.Errorf("parseRange(%q) = %v, want %v", tt.in, got, want)
			}
		})
	}
}

func TestPools(t *testing.T) {
	withSpec := func(p v1alpha1.IPPool, f func(*v1alpha1.IPPoolSpec)) v1alpha1.IPPool {
		f(&p.Spec)
		return p
	}
	runConv(t, []convTest{
		{
			name: "fields and defaults",
			res: Resources{Pools: []v1alpha1.IPPool{
				withSpec(pool("b", "10.20.2.0/24", "fd00::/120"), func(s *v1alpha1.IPPoolSpec) {
					s.AutoAssign = ptr(false)
					s.AvoidBuggyIPs = true
					s.Priority = 5
				}),
				withSpec(pool("a", "10.20.1.1-10.20.1.127"), func(s *v1alpha1.IPPoolSpec) {
					s.AutoAssign = ptr(true)
				}),
				pool("c", "10.20.3.0/24"),
			}},
			want: &model.State{Pools: []model.Pool{
				mpool("a", "10.20.1.1-10.20.1.127"),
				func() model.Pool {
					p := mpool("b", "10.20.2.0/24", "fd00::/120")
					p.AutoAssign, p.AvoidBuggyIPs, p.Priority = false, true, 5
					return p
				}(),
				mpool("c", "10.20.3.0/24"),
			}},
		},
		{
			name: "address errors",
			res: Resources{Pools: []v1alpha1.IPPool{
				pool("external", "10.20.1.128-10.20.1.254", "10.20.1.300-10.20.1.254"),
				pool("reversed", "10.20.2.9-10.20.2.1"),
				pool("mixed", "10.20.3.1-fd00::1"),
				pool("hostbits", "10.20.4.1/24"),
				pool("empty"),
				pool("self-overlap", "10.20.5.0/24", "10.20.5.128-10.20.5.130"),
				pool("good", "10.20.6.0/24"),
			}},
			want: &model.State{Pools: []model.Pool{mpool("good", "10.20.6.0/24")}},
			wantErr: []string{
				`IPPool "empty": spec.addresses: must not be empty`,
				`IPPool "external": spec.addresses[1]: "10.20.1.300-10.20.1.254": invalid IP address`,
				`IPPool "hostbits": spec.addresses[0]: "10.20.4.1/24": CIDR has host bits set, did you mean 10.20.4.0/24?`,
				`IPPool "mixed": spec.addresses[0]: "10.20.3.1-fd00::1": range mixes IPv4 and IPv6`,
				`IPPool "reversed": spec.addresses[0]: "10.20.2.9-10.20.2.1": range is reversed: 10.20.2.9 is after 10.20.2.1`,
				`IPPool "self-overlap": spec.addresses[1]: "10.20.5.128-10.20.5.130": overlaps spec.addresses[0] "10.20.5.0/24"`,
			},
		},
		{
			// The pool whose name sorts first keeps its range, whatever
			// the input order; the other is left out.
			name: "overlap across pools",
			res: Resources{Pools: []v1alpha1.IPPool{
				pool("zeta", "10.20.1.0/24"),
				pool("alpha", "10.20.1.100-10.20.1.110"),
				pool("v6", "fd00::/64"),
				pool("v6-too", "fd00::1:0-fd00::1:ff"),
				pool("adjacent", "10.20.0.0/24"),
			}},
			want: &model.State{Pools: []model.Pool{
				mpool("adjacent", "10.20.0.0/24"),
				mpool("alpha", "10.20.1.100-10.20.1.110"),
				mpool("v6", "fd00::/64"),
			}},
			wantErr: []string{
				`IPPool "v6-too": spec.addresses[0]: "fd00::1:0-fd00::1:ff": overlaps IPPool "v6" spec.addresses[0] "fd00::/64"`,
				`IPPool "zeta": spec.addresses[0]: "10.20.1.0/24": overlaps IPPool "alpha" spec.addresses[0] "10.20.1.100-10.20.1.110"`,
			},
		},
		{
			name: "selectors",
			res: Resources{Pools: []v1alpha1.IPPool{
				withSpec(pool("sel", "10.20.1.0/24"), func(s *v1alpha1.IPPoolSpec) {
					s.ServiceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb-type": "external"}}
					s.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "team", Operator: metav1.LabelSelectorOpExists},
					}}
				}),
				withSpec(pool("bad-sel", "10.20.2.0/24"), func(s *v1alpha1.IPPoolSpec) {
					s.ServiceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "lb-type", Operator: "Maybe"},
					}}
				}),
				withSpec(pool("bad-ns-sel", "10.20.3.0/24"), func(s *v1alpha1.IPPoolSpec) {
					s.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"bad key!": "x"}}
				}),
			}},
			want: &model.State{Pools: []model.Pool{func() model.Pool {
				p := mpool("sel", "10.20.1.0/24")
				p.ServiceSelector, _ = LabelSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"lb-type": "external"}})
				p.NamespaceSelector, _ = LabelSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "team", Operator: metav1.LabelSelectorOpExists},
				}})
				return p
			}()}},
			wantErr: []string{
				`IPPool "bad-ns-sel": spec.namespaceSelector: key: Invalid value: "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
				`IPPool "bad-sel": spec.serviceSelector: "Maybe" is not a valid label selector operator`,
			},
		},
		{
			name: "identity",
			res: Resources{Pools: []v1alpha1.IPPool{
				pool("a", "10.20.1.0/24"),
				pool("a", "10.20.2.0/24"),
				pool("", "10.20.3.0/24"),
			}},
			want: &model.State{Pools: []model.Pool{mpool("a", "10.20.1.0/24")}},
			wantErr: []string{
				`IPPool "": metadata.name: must not be empty`,
				`IPPool "a": metadata.name: duplicate object`,
			},
		},
	})
}

func TestLabelSelector(t *testing.T) {
	tests := []struct {
		name string
		sel  *metav1.LabelSelector
		in   map[string]string
		want bool
	}{
		{"nil is nil", nil, nil, true},
		{"empty matches all", &metav1.LabelSelector{}, map[string]string{"x": "y"}, true},
		{"match labels", &metav1.LabelSelector{MatchLabels: map[string]string{"lb-type": "external"}}, map[string]string{"lb-type": "external"}, true},
		{"match labels miss", &metav1.LabelSelector{MatchLabels: map[string]string{"lb-type": "external"}}, nil, false},
		{"NotIn matches absent", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "lb-type", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"external"}}}}, nil, true},
		{"NotIn excludes", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "lb-type", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"external"}}}}, map[string]string{"lb-type": "external"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LabelSelector(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if tt.sel == nil {
				if s != nil {
					t.Fatalf("LabelSelector(nil) = %v, want nil", s)
				}
				return
			}
			if got := s.Matches(tt.in); got != tt.want {
				t.Errorf("%s matches %v = %v, want %v", s, tt.in, got, tt.want)
			}
		})
	}
}

func TestAnnouncements(t *testing.T) {
	ann := func(name string, pools, ifaces []string, sel *metav1.LabelSelector) v1alpha1.L2Announcement {
		return v1alpha1.L2Announcement{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v1alpha1.L2AnnouncementSpec{IPPools: pools, Interfaces: ifaces, NodeSelector: sel},
		}
	}
	workers := &metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}}
	workerSel, _ := LabelSelector(workers)
	runConv(t, []convTest{
		{
			name: "converted and sorted",
			res: Resources{Announcements: []v1alpha1.L2Announcement{
				ann("vlan", []string{"internal", "external"}, []string{"eth1", "bond0.20"}, workers),
				ann("all", nil, nil, nil),
			}},
			want: &model.State{Announcements: []model.Announcement{
				{Name: "all"},
				{Name: "vlan", Pools: []string{"internal", "external"}, Interfaces: []string{"eth1", "bond0.20"}, NodeSelector: workerSel},
			}},
		},
		{
			name: "errors",
			res: Resources{Announcements: []v1alpha1.L2Announcement{
				ann("ifaces", nil, []string{"", "a-very-long-interface", "eth/1", "eth0:1"}, nil),
				ann("pools", []string{""}, nil, nil),
				ann("sel", nil, nil, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}),
				ann("sel", nil, nil, nil),
			}},
			// A name used twice is an error on its second use even if
			// the first use is invalid too.
			wantErr: []string{
				`L2Announcement "ifaces": spec.interfaces[0]: must not be empty`,
				`L2Announcement "ifaces": spec.interfaces[1]: "a-very-long-interface": interface name longer than 15 bytes`,
				`L2Announcement "ifaces": spec.interfaces[2]: "eth/1": interface name must not contain '/', ':' or whitespace`,
				`L2Announcement "ifaces": spec.interfaces[3]: "eth0:1": interface name must not contain '/', ':' or whitespace`,
				`L2Announcement "pools": spec.ipPools[0]: must not be empty`,
				`L2Announcement "sel": spec.nodeSelector: "Near" is not a valid label selector operator`,
				`L2Announcement "sel": metadata.name: duplicate object`,
			},
		},
	})
}

func TestNodes(t *testing.T) {
	addr := func(typ corev1.NodeAddressType, a string) corev1.NodeAddress {
		return corev1.NodeAddress{Type: typ, Address: a}
	}
	runConv(t, []convTest{
		{
			name: "addresses, labels, exclusion, sorted",
			res: Resources{Nodes: []corev1.Node{
				node("worker-2", map[string]string{LabelExcludeFromLB: ""},
					addr(corev1.NodeInternalIP, "10.20.0.52")),
				node("worker-1", map[string]string{"topology.kubernetes.io/zone": "a"},
					addr(corev1.NodeHostName, "worker-1"),
					addr(corev1.NodeExternalIP, "192.0.2.51"),
					addr(corev1.NodeInternalIP, "10.20.0.51"),
					addr(corev1.NodeInternalIP, "fd00:20::51"),
					addr(corev1.NodeInternalIP, "10.20.0.51"),
					addr(corev1.NodeInternalDNS, "worker-1.cluster.local")),
				node("bad", nil, addr(corev1.NodeInternalIP, "10.20.0.999")),
			}},
			want: &model.State{Nodes: []model.Node{
				{
					Name:   "worker-1",
					Addrs:  []netip.Addr{ip("10.20.0.51"), ip("fd00:20::51"), ip("192.0.2.51")},
					Labels: map[string]string{"topology.kubernetes.io/zone": "a"},
				},
				{
					Name:     "worker-2",
					Addrs:    []netip.Addr{ip("10.20.0.52")},
					Labels:   map[string]string{LabelExcludeFromLB: ""},
					Excluded: true,
				},
			}},
			wantErr: []string{`Node "bad": status.addresses[0].address: "10.20.0.999": invalid IP address`},
		},
	})
}
