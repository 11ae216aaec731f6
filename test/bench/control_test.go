// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// TestPrivilegedControlPlane programs a small count with every mode, each in
// its throwaway namespace, which checks that the generated iptables and
// nftables rules are accepted by the real tools and that lbd adds exactly
// one frontend for one more service.
func TestPrivilegedControlPlane(t *testing.T) {
	testutil.Privileged(t)
	for _, tool := range []string{"iptables-restore", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install -y iptables nftables)", tool)
		}
	}
	var b [2]byte
	rand.Read(b[:])
	prefix := "lbd-" + hex.EncodeToString(b[:])
	r, err := ControlPlane(context.Background(), ControlOptions{
		Services: 300,
		Prefix:   prefix,
		Dir:      t.TempDir(),
		NodeIP:   netip.MustParseAddr("10.20.0.51"),
		Logf:     t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, note := range map[string]string{"lbd": r.LBDNote, "iptables": r.IptNote, "nftables": r.NftNote} {
		if note != "" {
			t.Errorf("%s: %s", name, note)
		}
	}
	for name, d := range map[string]time.Duration{
		"lbd sync": r.LBDSync, "lbd one": r.LBDOne, "iptables-restore": r.IptRestore,
		"iptables one": r.IptOne, "nft": r.NftLoad, "nft chunked": r.NftChunked, "nft one": r.NftOne,
	} {
		if d <= 0 {
			t.Errorf("%s: not measured", name)
		}
	}
	if r.NftServices != 300 {
		t.Errorf("nft loaded %d services, want 300", r.NftServices)
	}
}
