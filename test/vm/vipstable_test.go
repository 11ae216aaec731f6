// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPrivilegedLabStaticVIPsStable checks that in static mode adding a
// Service never moves another one's VIP, even when its name sorts first,
// and that every lbd restarted at once comes back with the same
// addresses.
func TestPrivilegedLabStaticVIPsStable(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	before, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	first := ExtraService{Name: "aaa-first"} // sorts before every lab service
	if err := l.ApplyServices(first); err != nil {
		t.Fatal(err)
	}
	added, _, err := l.WaitService(ctx, first.Key(), l.Pods(), serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	addrs := func() map[string]string {
		t.Helper()
		vs, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal, first.Key())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, v := range vs {
			m[v.Service] = v.VIP.String()
		}
		return m
	}
	want := map[string]string{
		ServiceInternal: before[0].VIP.String(),
		ServiceExternal: before[1].VIP.String(),
		first.Key():     added.VIP.String(),
	}
	if diff := cmp.Diff(want, addrs()); diff != "" {
		t.Errorf("VIPs after adding %s (-want +got):\n%s", first.Key(), diff)
	}
	if err := l.KillAllLBD(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := l.StartLBD(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, addrs()); diff != "" {
		t.Errorf("VIPs after every lbd restarted (-want +got):\n%s", diff)
	}
}
