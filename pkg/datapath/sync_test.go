// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/model"
)

// checkTables reads every frontend's Maglev table back from lb_maglev (by
// syscall, not through the mapping Sync writes with) and compares it with
// the table its backends must get.
func checkTables(t *testing.T, d *Datapath) {
	t.Helper()
	m := d.maglev.Size()
	for fk, fe := range d.frontends {
		var names []string
		for _, b := range fe.backends {
			names = append(names, b.Addr.String())
		}
		want := d.maglev.Table(names)
		for slot := range m {
			var got uint32
			if err := d.objs.LbMaglev.Lookup(fe.id*m+slot, &got); err != nil {
				t.Fatalf("read maglev slot %d of %v: %v", slot, fk, err)
			}
			var exp uint32
			if want != nil {
				exp = d.backends[fe.backends[want[slot]]].id
			}
			if got != exp {
				t.Fatalf("frontend %v (id %d) slot %d holds backend id %d, want %d", fk, fe.id, slot, got, exp)
			}
		}
	}
}

func hasMarker(t *testing.T, d *Datapath, vip netip.Addr) bool {
	t.Helper()
	var v lbLbSvc
	err := d.objs.LbServices.Lookup(lbLbSvcKey{Addr: toKeyAddr(vip)}, &v)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPrivilegedSyncIncremental: a Sync writes only what changed, found by
// the services' fingerprints, and its tables are the ones Maglev computes.
func TestPrivilegedSyncIncremental(t *testing.T) {
	testutil.Privileged(t)
	d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d.Close()
	st := packetState()
	n := len(st.Services)
	first, err := d.Sync(st, "node1")
	if err != nil {
		t.Fatal(err)
	}
	checkTables(t, d)
	ids := make(map[frontendKey]uint32)
	for fk, fe := range d.frontends {
		ids[fk] = fe.id
	}

	// The same State again, as a fresh copy: nothing is computed or written.
	again, err := d.Sync(packetState(), "node1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SyncStats{ServicesSkipped: n}); again != want {
		t.Errorf("second Sync of the same State: %+v, want %+v", again, want)
	}

	// One endpoint of one service changes: that service's frontend only.
	st = packetState()
	i := slices.IndexFunc(st.Services, func(s model.Service) bool { return s.Key.Name == "many" })
	st.Services[i].Endpoints[3].Ready = false
	one, err := d.Sync(st, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SyncStats{ServicesSkipped: n - 1, TablesWritten: 1, FrontendsUpdated: 1}); one != want {
		t.Errorf("Sync after one endpoint change: %+v, want %+v", one, want)
	}
	checkTables(t, d)

	// A node name change matters only when it makes an endpoint local:
	// from one remote node to another, nothing to compute.
	st.Services[i].Endpoints[0].NodeName = "node3"
	if s, err := d.Sync(st, "node1"); err != nil || s != (SyncStats{ServicesSkipped: n}) {
		t.Errorf("remote endpoint moved to another remote node: %+v, %v; want every service skipped", s, err)
	}

	// Services removed: their frontends and VIP markers go, and their
	// backends once no other service uses them ("many" shares all of its
	// backends with "spread"); the others keep their ids.
	for _, c := range []struct {
		k    string
		want int
	}{{"many", 0}, {"spread", 10}} { // in this order: "spread" keeps "many"'s backends
		k, want := c.k, c.want
		j := slices.IndexFunc(st.Services, func(s model.Service) bool { return s.Key.Name == k })
		vip := st.Services[j].VIPs[0]
		st.Services = slices.Delete(st.Services, j, j+1)
		n--
		rm, err := d.Sync(st, "node1")
		if err != nil {
			t.Fatal(err)
		}
		if rm.FrontendsRemoved != 1 || rm.BackendsRemoved != want || rm.ServicesSkipped != n {
			t.Errorf("Sync after removing %s: %+v, want 1 frontend and %d backends removed, %d services skipped", k, rm, want, n)
		}
		if hasMarker(t, d, vip) {
			t.Errorf("VIP marker of the removed %s is still there", k)
		}
	}
	for fk, fe := range d.frontends {
		if ids[fk] != fe.id {
			t.Errorf("frontend %v changed id %d -> %d", fk, ids[fk], fe.id)
		}
	}
	checkTables(t, d)

	// Two services asking for one frontend: the second is refused, on
	// every Sync (its memo must not hide the conflict), and the first
	// keeps serving.
	dup := st.Services[0]
	dup.Key.Name = "copycat"
	st.Services = append(st.Services, dup)
	for range 2 {
		_, err := d.Sync(st, "node1")
		if err == nil || !strings.Contains(err.Error(), "copycat") {
			t.Errorf("Sync with a duplicate frontend: %v, want an error naming copycat", err)
		}
		if fe := d.frontends[frontendKey{VIP: vipWeb, Port: 80, Proto: model.TCP}]; fe == nil || fe.svc.Name != "web" {
			t.Errorf("frontend web:80 after the conflict: %+v", fe)
		}
	}
	if first.FrontendsAdded == 0 || first.ServicesSkipped != 0 {
		t.Errorf("first Sync: %+v", first)
	}
}

// TestPrivilegedSyncRestore: after a restart, New restores ids from the
// pins, removes a VIP marker left without frontends, and the first Sync
// rewrites every table once (the new process has no fingerprints), keeps
// every id and frees the backends nothing uses any more.
func TestPrivilegedSyncRestore(t *testing.T) {
	testutil.Privileged(t)
	dir := testPinDir(t)
	d, err := New(Options{PinDir: dir, NodeIP4: labNodeIP, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	if _, err := d.Sync(packetState(), "node1"); err != nil {
		t.Fatal(err)
	}
	ids := make(map[frontendKey]uint32)
	for fk, fe := range d.frontends {
		ids[fk] = fe.id
	}
	stale := netip.MustParseAddr("10.20.3.3")
	if err := d.objs.LbServices.Put(lbLbSvcKey{Addr: toKeyAddr(stale)}, lbLbSvc{Flags: uint32(lbLbSvcFlagsLB_SVC_VIP_MARKER)}); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d2, err := New(Options{PinDir: dir, NodeIP4: labNodeIP, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d2.Close()
	if hasMarker(t, d2, stale) {
		t.Error("a VIP marker without frontends survived the restore")
	}
	st := packetState()
	st.Services = slices.DeleteFunc(st.Services, func(s model.Service) bool { return s.Key.Name == "many" || s.Key.Name == "spread" })
	s, err := d2.Sync(st, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if s.FrontendsAdded != 0 || s.FrontendsRemoved != 2 || s.TablesWritten != len(ids)-2 || s.BackendsRemoved != 10 {
		t.Errorf("first Sync after restore: %+v, want no frontend added, 2 removed, %d tables written, 10 backends freed", s, len(ids)-2)
	}
	for fk, fe := range d2.frontends {
		if ids[fk] != fe.id {
			t.Errorf("frontend %v: id %d after restart, %d before", fk, fe.id, ids[fk])
		}
	}
	checkTables(t, d2)
}

// TestPrivilegedSyncManyTables: tables are written through windows of the
// map; ids on both sides of a window edge get the right table.
func TestPrivilegedSyncManyTables(t *testing.T) {
	testutil.Privileged(t)
	n := maglevWindow/(DefaultMaglevSize*8) + 50
	d, err := New(Options{PinDir: testPinDir(t), NodeIP4: labNodeIP, MaxServices: uint32(n + 10), MaxBackends: uint32(10*n + 10)})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer d.Close()
	if _, err := d.Sync(syncServices(n), "node1"); err != nil {
		t.Fatal(err)
	}
	checkTables(t, d)
}
