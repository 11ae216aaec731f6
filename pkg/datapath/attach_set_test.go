// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
)

// attachNS is a namespace with veths whose first ends ("a0", "b0", ...)
// the datapath attaches to.
type attachNS struct {
	ns *testutil.NetNS
}

func (n attachNS) addVeth(t *testing.T, name string) int {
	t.Helper()
	var idx int
	err := n.ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}); err != nil {
			return fmt.Errorf("add veth %s: %w", name, err)
		}
		for _, x := range []string{name, name + "p"} {
			l, err := netlink.LinkByName(x)
			if err != nil {
				return fmt.Errorf("find %s: %w", x, err)
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("set %s up: %w", x, err)
			}
			if x == name {
				idx = l.Attrs().Index
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func (n attachNS) delLink(t *testing.T, name string) {
	t.Helper()
	err := n.ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		return netlink.LinkDel(l)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tcxIngress returns the ids of the programs on ifindex's tcx ingress, in
// chain order.
func (n attachNS) tcxIngress(t *testing.T, ifindex int) []ebpf.ProgramID {
	t.Helper()
	var r *link.QueryResult
	err := n.ns.Do(func() (err error) {
		r, err = link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		t.Fatalf("query tcx ingress of ifindex %d: %v", ifindex, err)
	}
	var ids []ebpf.ProgramID
	for _, p := range r.Programs {
		ids = append(ids, p.ID)
	}
	return ids
}

func progID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// SetAttached follows the wanted interface set: it attaches to new and
// late-appearing interfaces, re-attaches to a recreated one, detaches from
// dropped ones while leaving a program it did not attach in place, and
// after a restart reuses the pinned links of the interfaces still wanted
// and removes the pins of the others.
func TestPrivilegedSetAttached(t *testing.T) {
	testutil.Privileged(t)
	n := attachNS{ns: testutil.NewNetNS(t)}
	dir := testPinDir(t)
	a0 := n.addVeth(t, "a0")
	b0 := n.addVeth(t, "b0")

	// Someone else's tcx program on b0 (a CNI, say): TCX_NEXT, no-op.
	foreign, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.SchedCLS,
		License: "Apache-2.0",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, -1), // TCX_NEXT
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load foreign program: %v", err)
	}
	defer foreign.Close()
	var foreignLink link.Link
	if err := n.ns.Do(func() error {
		foreignLink, err = link.AttachTCX(link.TCXOptions{Interface: b0, Program: foreign, Attach: ebpf.AttachTCXIngress})
		return err
	}); err != nil {
		t.Fatalf("attach foreign program: %v", err)
	}
	defer foreignLink.Close()
	foreignID := progID(t, foreign)

	var d *Datapath
	set := func(want ...string) map[string]error {
		var failed map[string]error
		if err := n.ns.Do(func() error { failed = d.SetAttached(want, ModeAuto); return nil }); err != nil {
			t.Fatal(err)
		}
		return failed
	}
	d, err = New(Options{PinDir: dir, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer func() { d.Close() }()
	lbdIngress := progID(t, d.objs.LbTcIngress)

	if f := set("a0", "b0"); len(f) != 0 {
		t.Fatalf("SetAttached(a0, b0) failed: %v", f)
	}
	if diff := cmp.Diff(map[string]Mode{"a0": ModeTCX, "b0": ModeTCX}, d.Attached()); diff != "" {
		t.Errorf("attached (-want +got):\n%s", diff)
	}
	// lbd goes first in the chain, the foreign program stays behind it.
	if got, want := n.tcxIngress(t, b0), []ebpf.ProgramID{lbdIngress, foreignID}; !slices.Equal(got, want) {
		t.Errorf("b0 tcx ingress = %v, want %v", got, want)
	}
	// Attached interfaces are recognised as such: a repeated call (every
	// retry tick of the agent) attaches nothing again.
	for _, iface := range []string{"a0", "b0"} {
		var ok bool
		if err := n.ns.Do(func() (err error) { ok, err = d.attachedNow(iface); return err }); err != nil || !ok {
			t.Errorf("attachedNow(%s) = %v, %v after attaching; want true", iface, ok, err)
		}
	}
	t0 := time.Now()
	const rounds = 50
	for range rounds {
		if f := set("a0", "b0"); len(f) != 0 {
			t.Fatalf("SetAttached again failed: %v", f)
		}
	}
	t.Logf("SetAttached of 2 attached interfaces: %s per call (the agent's check every 2 s)", (time.Since(t0) / rounds).Round(time.Microsecond))
	if got := n.tcxIngress(t, b0); len(got) != 2 {
		t.Errorf("b0 tcx ingress after a repeated SetAttached = %v, want lbd's and the foreign program once each", got)
	}

	// b0 dropped, c0 wanted before it exists.
	f := set("a0", "c0")
	if err := f["c0"]; !errors.Is(err, ErrNoInterface) || len(f) != 1 {
		t.Errorf("SetAttached(a0, c0) failures = %v, want c0: ErrNoInterface only", f)
	}
	if got, want := n.tcxIngress(t, b0), []ebpf.ProgramID{foreignID}; !slices.Equal(got, want) {
		t.Errorf("b0 tcx ingress after detaching = %v, want only the foreign program %v", got, want)
	}
	for _, h := range []string{hookTCXIngress, hookTCXEgress, hookXDP} {
		if _, err := os.Stat(d.linkPin("b0", h)); err == nil {
			t.Errorf("pin %s of b0 survived detaching", h)
		}
	}

	// c0 appears: the next call attaches it.
	c0 := n.addVeth(t, "c0")
	if f := set("a0", "c0"); len(f) != 0 {
		t.Fatalf("SetAttached(a0, c0) after c0 appeared failed: %v", f)
	}
	if got := n.tcxIngress(t, c0); !slices.Equal(got, []ebpf.ProgramID{lbdIngress}) {
		t.Errorf("c0 tcx ingress = %v, want lbd's %v", got, lbdIngress)
	}

	// c0 recreated: the kernel dropped the old links with it.
	n.delLink(t, "c0")
	c0 = n.addVeth(t, "c0")
	if got := n.tcxIngress(t, c0); len(got) != 0 {
		t.Fatalf("new c0 has programs %v before SetAttached", got)
	}
	if f := set("a0", "c0"); len(f) != 0 {
		t.Fatalf("SetAttached after recreating c0 failed: %v", f)
	}
	if got := n.tcxIngress(t, c0); !slices.Equal(got, []ebpf.ProgramID{lbdIngress}) {
		t.Errorf("recreated c0 tcx ingress = %v, want lbd's %v", got, lbdIngress)
	}

	// Restart: a new Datapath on the same pins reuses a0's links and drops
	// the pins of c0, which is no longer wanted.
	a0Link := pinnedLinkID(t, d.linkPin("a0", hookTCXIngress))
	d.Close()
	d, err = New(Options{PinDir: dir, MaxServices: 64})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	if f := set("a0"); len(f) != 0 {
		t.Fatalf("SetAttached(a0) after restart failed: %v", f)
	}
	if got := pinnedLinkID(t, d.linkPin("a0", hookTCXIngress)); got != a0Link {
		t.Errorf("a0 ingress link after restart = %d, want the pinned %d reused", got, a0Link)
	}
	if got := n.tcxIngress(t, a0); len(got) != 1 {
		t.Errorf("a0 tcx ingress after restart = %v, want one program", got)
	}
	if got := n.tcxIngress(t, c0); len(got) != 0 {
		t.Errorf("c0 tcx ingress after restart without c0 = %v, want none", got)
	}
	if _, err := os.Stat(d.linkPin("c0", hookTCXIngress)); err == nil {
		t.Error("stale pin of c0 survived the restart's SetAttached")
	}
}

func pinnedLinkID(t *testing.T, pin string) link.ID {
	t.Helper()
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		t.Fatalf("load pinned link: %v", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}
