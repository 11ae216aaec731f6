// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/model"
)

// TestPrivilegedSyncRevisions: a service whose source Revision and VIPs
// are those of the last Sync is skipped without being looked at; a new
// VIP list, a new Revision or another node name is computed again; and a
// service that failed to program is programmed by the next Sync although
// its Revision did not change.
func TestPrivilegedSyncRevisions(t *testing.T) {
	testutil.Privileged(t)
	const n = 20
	d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, MaxServices: n + 1})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d.Close()
	st := syncServices(n)
	if s, err := d.Sync(st, "node1"); err != nil || s.FrontendsAdded != n {
		t.Fatalf("first Sync: %+v, %v", s, err)
	}
	checkTables(t, d)

	// Same revisions, endpoint changed behind them: the datapath trusts
	// the source (this is what makes one change among 10 000 cheap), so
	// nothing is computed. No real source does this; it shows the
	// fingerprint was not consulted.
	lying := syncServices(n)
	lying.Services[3].Endpoints = lying.Services[3].Endpoints[:5]
	if s, err := d.Sync(lying, "node1"); err != nil || s != (SyncStats{ServicesSkipped: n}) {
		t.Errorf("same revisions: %+v, %v; want every service skipped", s, err)
	}
	// The honest source gives the change a new Revision.
	lying.Services[3].Revision = 1000
	if s, err := d.Sync(lying, "node1"); err != nil || s != (SyncStats{ServicesSkipped: n - 1, FrontendsUpdated: 1, TablesWritten: 1, BackendsRemoved: 5}) {
		t.Errorf("one new revision: %+v, %v; want its table rewritten and 5 backends freed", s, err)
	}
	checkTables(t, d)

	// VIPs are filled in after the source (static IPAM): a new VIP with
	// the same Revision is a change.
	moved := syncServices(n)
	moved.Services[5].VIPs = []netip.Addr{netip.MustParseAddr("10.31.0.5")}
	s, err := d.Sync(moved, "node1")
	if err != nil || s.FrontendsAdded != 1 || s.FrontendsRemoved != 1 || s.ServicesSkipped != n-2 {
		t.Errorf("VIP moved under the same revision: %+v, %v; want one frontend replaced (service 3 back to 10 backends, 5 moved)", s, err)
	}
	if _, ok := d.frontends[frontendKey{VIP: netip.MustParseAddr("10.31.0.5"), Port: 80, Proto: model.TCP}]; !ok {
		t.Error("frontend of the moved VIP missing")
	}
	checkTables(t, d)

	// Another node name: which endpoints are local changes, the
	// revisions do not say so.
	if s, err := d.Sync(moved, "node2"); err != nil || s.TablesWritten != n || s.ServicesSkipped != 0 {
		t.Errorf("Sync as node2: %+v, %v; want every table rewritten (every backend is local now)", s, err)
	}
	checkTables(t, d)
	for _, fe := range d.frontends {
		if !fe.backends[0].Local {
			t.Fatalf("frontend %v: backends not local on node2", fe.fk)
		}
	}

	// A Sync that fails midway: one service more than MaxServices. The
	// one left out keeps its Revision; once there is room, the next Sync
	// programs it.
	full := syncServices(n + 2)
	full.Services[5].VIPs = moved.Services[5].VIPs
	if _, err := d.Sync(full, "node2"); err == nil {
		t.Fatal("Sync of more frontends than MaxServices: no error")
	}
	if len(d.frontends) != n+1 {
		t.Fatalf("%d frontends after the failed Sync, want %d", len(d.frontends), n+1)
	}
	missing := slices.IndexFunc(full.Services, func(s model.Service) bool {
		_, ok := d.frontends[frontendKey{VIP: s.VIPs[0], Port: 80, Proto: model.TCP}]
		return !ok
	})
	if missing < 0 {
		t.Fatal("no service left out")
	}
	// Frontends are added before the ones no longer wanted are removed
	// (their ids freed), so the id freed by removing another service is
	// there for the Sync after.
	other := (missing + 1) % len(full.Services)
	room := &model.State{Services: slices.Delete(slices.Clone(full.Services), other, other+1)}
	d.Sync(room, "node2")
	if _, err := d.Sync(room, "node2"); err != nil {
		t.Fatalf("Sync with room again: %v", err)
	}
	if _, ok := d.frontends[frontendKey{VIP: full.Services[missing].VIPs[0], Port: 80, Proto: model.TCP}]; !ok {
		t.Errorf("service %s, left out by the failed Sync, still not programmed", full.Services[missing].Key)
	}
	if len(d.frontends) != n+1 {
		t.Errorf("%d frontends, want %d", len(d.frontends), n+1)
	}
	checkTables(t, d)
}
