// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// takeoverLimit is what a failover may take in the lab before the test
// fails: the default gossip timeout (400 ms) plus the sweep, the
// reconcile and the first gratuitous ARP, with room for a loaded machine.
const takeoverLimit = 3 * time.Second

// TestPrivilegedLabFailover runs real lbd daemons and, with client
// traffic flowing to the internal VIP, makes its owner go away by each
// event in turn: traffic must resume through another node, which alone
// answers ARP for the VIP; then the old owner comes back (lbd restarted,
// link restored) and every VIP converges to exactly one owner again.
func TestPrivilegedLabFailover(t *testing.T) {
	testutil.Privileged(t)
	if m, _ := filepath.Glob("../../cmd/lbd/*.go"); len(m) == 0 {
		t.Skip("cmd/lbd has no sources yet")
	}
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{PodServer: bins[0], LBD: bins[1]})
	ctx := t.Context()
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	all := []netip.Addr{vips[0].VIP, vips[1].VIP}
	vip := vips[0].VIP

	for _, ev := range FailoverEvents {
		t.Run(string(ev), func(t *testing.T) {
			res, old, err := l.Failover(ctx, vip, ev, takeoverLimit)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s; first errors: %q", res, res.FirstErrors)
			if res.NewOwner == res.OldOwner {
				t.Errorf("owner stayed %s", res.OldOwner)
			}
			if res.Takeover > takeoverLimit {
				t.Errorf("takeover took %s, want under %s", res.Takeover, takeoverLimit)
			}
			// The new owner alone answers ARP, while the old owner is
			// dead or cut off.
			if n, err := l.WaitOwner(ctx, vip, old, 5*time.Second); err != nil {
				t.Error(err)
			} else if n.Name != res.NewOwner {
				t.Errorf("owner after %s is %s, want %s", ev, n.Name, res.NewOwner)
			}
			if ev == EventLinkLoss {
				// Cut off, the old owner hears no peer: it must have
				// fenced itself, so its status names no owner it could
				// be. (Its ARP answers cannot be seen from outside while
				// isolated; after the link is back, WaitOwner in Restore
				// checks that only one node answers.)
				st, err := l.StatusAnyHealth(ctx, old)
				if err != nil {
					t.Fatal(err)
				}
				if v, ok := st.VIPFor(ServiceInternal); !ok || v.Owner == old.Name {
					t.Errorf("isolated %s's status gives owner %q for %s, want not itself (fenced)", old.Name, v.Owner, vip)
				}
				if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.HasPrefix(w, "fenced:") }) {
					t.Errorf("isolated %s's status warnings %q, want a fenced: warning", old.Name, st.Warnings)
				}
			}
			// Rejoin: the old owner comes back, every VIP ends with
			// exactly one owner, and the rendezvous hash gives the
			// internal VIP back to its old owner.
			took, err := l.Restore(ctx, old, ev, all)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: restored %s, converged in %s", ev, old.Name, took.Round(time.Millisecond))
			if n, err := l.WaitOwner(ctx, vip, nil, 5*time.Second); err != nil {
				t.Error(err)
			} else if n != old {
				t.Errorf("owner of %s after %s rejoined is %s, want %s again", vip, old.Name, n.Name, old.Name)
			}
			if tally := l.Client().HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 20); tally.OK != 20 {
				t.Errorf("HTTP after rejoin: %s", tally)
			}
			if err := l.CheckLBD(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPrivilegedLabFailoverRouter puts a client behind a router: a
// namespace routing between the VLAN and another subnet, which holds the
// VIP in its neighbour table (arp_accept 0, the default). When the owner
// is killed, the new owner's gratuitous ARP must update the router's
// existing entry, and the remote client's traffic must resume through the
// new owner as it does for a client on the VLAN (both are measured here
// and in the failover bench; the test asserts outcomes only).
func TestPrivilegedLabFailoverRouter(t *testing.T) {
	testutil.Privileged(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{PodServer: bins[0], LBD: bins[1]})
	ctx := t.Context()
	r, err := l.AddRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vips, err := l.WaitVIPs(ctx, l.Nodes[0], ServiceInternal, ServiceExternal)
	if err != nil {
		t.Fatal(err)
	}
	vip := vips[0].VIP
	// The remote client is served, and its pods see it through SNAT.
	if tally := r.Client.HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 20); tally.OK != 20 {
		t.Fatalf("HTTP from behind the router: %s", tally)
	}

	for _, tc := range []struct {
		name          string
		client, neigh *Host
	}{
		{"behind router", r.Client, &r.Host},
		{"on the VLAN", l.Client(), l.Client()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, old, err := l.FailoverVia(ctx, vip, EventSigkill, takeoverLimit, tc.client, tc.neigh)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s; first errors: %q", tc.name, res, res.FirstErrors)
			if res.NewOwner == res.OldOwner {
				t.Errorf("owner stayed %s", res.OldOwner)
			}
			// FailoverVia saw the router's entry name the new owner
			// around a successful request; it must still do so.
			n, ok, err := tc.neigh.Neighbor(vip)
			if err != nil || !ok || n.MAC.String() != l.Node(res.NewOwner).MAC.String() {
				t.Errorf("%s's neighbour entry for %s: %+v, %v, %v; want %s's %s", tc.neigh.Name, vip, n, ok, err, res.NewOwner, l.Node(res.NewOwner).MAC)
			}
			if _, err := l.Restore(ctx, old, EventSigkill, []netip.Addr{vip}); err != nil {
				t.Fatal(err)
			}
			// After the old owner is back and owns the VIP again, the
			// router follows it back too.
			if tally := tc.client.HTTPLoad(ctx, netip.AddrPortFrom(vip, ServiceHTTPPort), 20); tally.OK != 20 {
				t.Errorf("HTTP after restore: %s", tally)
			}
		})
	}
	if err := l.CheckLBD(); err != nil {
		t.Error(err)
	}
}
