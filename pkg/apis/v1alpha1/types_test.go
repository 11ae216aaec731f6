// SPDX-License-Identifier: Apache-2.0

package v1alpha1

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func fullPool() *IPPool {
	yes := true
	return &IPPool{
		TypeMeta: metav1.TypeMeta{APIVersion: "lbd.dev/v1alpha1", Kind: KindIPPool},
		ObjectMeta: metav1.ObjectMeta{
			Name:        "external",
			Labels:      map[string]string{"a": "b"},
			Annotations: map[string]string{"c": "d"},
		},
		Spec: IPPoolSpec{
			Addresses:     []string{"10.20.1.128-10.20.1.254", "fd00::/120"},
			AutoAssign:    &yes,
			AvoidBuggyIPs: true,
			ServiceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"lb-type": "external"},
			},
			NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"x"}},
				},
			},
			Priority: 10,
		},
		Status: IPPoolStatus{
			Conditions:     []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Valid"}},
			AddressesTotal: "383",
			AddressesUsed:  "2",
		},
	}
}

func fullAnnouncement() *L2Announcement {
	return &L2Announcement{
		TypeMeta:   metav1.TypeMeta{APIVersion: "lbd.dev/v1alpha1", Kind: KindL2Announcement},
		ObjectMeta: metav1.ObjectMeta{Name: "vlan"},
		Spec: L2AnnouncementSpec{
			IPPools:      []string{"internal"},
			Interfaces:   []string{"eth1"},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "worker"}},
		},
	}
}

// TestDeepCopy checks that a copy equals its original and that mutating
// every reference field of the copy leaves the original untouched.
func TestDeepCopy(t *testing.T) {
	p := fullPool()
	pc := p.DeepCopyObject().(*IPPool)
	if diff := cmp.Diff(p, pc); diff != "" {
		t.Fatalf("IPPool copy differs (-orig +copy):\n%s", diff)
	}
	pc.Labels["a"] = "x"
	pc.Spec.Addresses[0] = "x"
	*pc.Spec.AutoAssign = false
	pc.Spec.ServiceSelector.MatchLabels["lb-type"] = "x"
	pc.Spec.NamespaceSelector.MatchExpressions[0].Values[0] = "y"
	pc.Status.Conditions[0].Reason = "x"
	if diff := cmp.Diff(fullPool(), p); diff != "" {
		t.Errorf("mutating the IPPool copy changed the original (-want +got):\n%s", diff)
	}

	a := fullAnnouncement()
	ac := a.DeepCopyObject().(*L2Announcement)
	if diff := cmp.Diff(a, ac); diff != "" {
		t.Fatalf("L2Announcement copy differs (-orig +copy):\n%s", diff)
	}
	ac.Spec.IPPools[0] = "x"
	ac.Spec.Interfaces[0] = "x"
	ac.Spec.NodeSelector.MatchLabels["role"] = "x"
	if diff := cmp.Diff(fullAnnouncement(), a); diff != "" {
		t.Errorf("mutating the L2Announcement copy changed the original (-want +got):\n%s", diff)
	}

	pl := &IPPoolList{Items: []IPPool{*fullPool()}}
	plc := pl.DeepCopyObject().(*IPPoolList)
	plc.Items[0].Spec.Addresses[1] = "x"
	if got := pl.Items[0].Spec.Addresses[1]; got != "fd00::/120" {
		t.Errorf("mutating the IPPoolList copy changed the original: %q", got)
	}
	al := &L2AnnouncementList{Items: []L2Announcement{*fullAnnouncement()}}
	alc := al.DeepCopyObject().(*L2AnnouncementList)
	alc.Items[0].Spec.Interfaces[0] = "x"
	if got := al.Items[0].Spec.Interfaces[0]; got != "eth1" {
		t.Errorf("mutating the L2AnnouncementList copy changed the original: %q", got)
	}

	var nilPool *IPPool
	if nilPool.DeepCopy() != nil {
		t.Error("DeepCopy of a nil IPPool is not nil")
	}
}

func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatalf("add to scheme: %v", err)
	}
	for _, tt := range []struct {
		obj  runtime.Object
		kind string
	}{
		{&IPPool{}, "IPPool"},
		{&IPPoolList{}, "IPPoolList"},
		{&L2Announcement{}, "L2Announcement"},
		{&L2AnnouncementList{}, "L2AnnouncementList"},
	} {
		gvks, _, err := s.ObjectKinds(tt.obj)
		if err != nil {
			t.Fatalf("object kinds of %T: %v", tt.obj, err)
		}
		want := GroupVersion.WithKind(tt.kind)
		if len(gvks) != 1 || gvks[0] != want {
			t.Errorf("kinds of %T = %v, want [%v]", tt.obj, gvks, want)
		}
	}
}

// TestJSONNames pins the wire names the CRD schema is written against.
func TestJSONNames(t *testing.T) {
	b, err := json.Marshal(fullPool().Spec)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"addresses", "autoAssign", "avoidBuggyIPs", "serviceSelector", "namespaceSelector", "priority"} {
		if _, ok := got[k]; !ok {
			t.Errorf("IPPool spec JSON lacks %q: %s", k, b)
		}
	}
	b, err = json.Marshal(fullAnnouncement().Spec)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ipPools", "interfaces", "nodeSelector"} {
		if _, ok := got[k]; !ok {
			t.Errorf("L2Announcement spec JSON lacks %q: %s", k, b)
		}
	}
}
