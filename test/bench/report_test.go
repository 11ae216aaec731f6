// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteXDPTable(t *testing.T) {
	var b strings.Builder
	WriteXDPTable(&b, XDPFigures{
		"services=50000/established": 41, "services=1/established": 38,
		"services=1/new_flow": 900, "services=1/non_vip": 100, "services=50000/non_vip": 104,
	})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		"services  established     new_flow      non_vip",
		"       1           38          900          100",
		"   50000           41            -          104",
		"bench: xdp ns/packet non_vip 1 services: 100 50000 services: 104",
	}
	if diff := cmp.Diff(want, lines[1:]); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	b.Reset()
	WriteXDPTable(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no figures printed %q", b.String())
	}
}
