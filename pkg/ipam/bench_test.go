// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/lbd-project/lbd/pkg/model"
)

// BenchmarkAllocate10000 is a static-mode run over 10 000 services: a
// quarter restored from status, some requesting addresses, some sharing,
// the rest auto-assigned from a /18 and a dual-stack pool.
func BenchmarkAllocate10000(b *testing.B) {
	pools := []model.Pool{
		{Name: "internal", Ranges: []model.AddrRange{cidr("10.64.0.0/18")}, AutoAssign: true, AvoidBuggyIPs: true},
		{Name: "external", Ranges: []model.AddrRange{cidr("10.128.0.0/18")}, AutoAssign: true, Priority: 1,
			ServiceSelector: labelSel{"lb-type=external"}},
		{Name: "dual", Ranges: []model.AddrRange{cidr("10.200.0.0/16"), cidr("fd00::/64")}, AutoAssign: true, Priority: -1},
	}
	svcs := make([]model.Service, 10000)
	for i := range svcs {
		s := svc(fmt.Sprintf("svc-%05d", i))
		switch i % 8 {
		case 0, 1:
			// Restored, spread over the pool so the cursor has to skip them.
			s.VIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 64, byte(i >> 8 & 0x3f), byte(1 + i%254)})}
		case 2:
			external(&s)
		case 3:
			s.RequestedIPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 64, byte(32 + i>>8&0x1f), byte(1 + i%254)})}
		case 4:
			s.SharingKey = fmt.Sprint("k", i%50)
			s.Ports = []model.ServicePort{tcp(uint16(i))}
		case 5:
			s.Families = []model.Family{model.IPv4, model.IPv6}
			s.RequestedPool = "dual"
		}
		svcs[i] = s
	}
	res, err := Allocate(pools, svcs)
	if err != nil {
		b.Fatal(err)
	}
	var failed int
	for _, r := range res {
		if r.Err != nil {
			failed++
		}
	}
	if failed > len(svcs)/20 {
		b.Fatalf("%d of %d services failed; the benchmark input is wrong", failed, len(svcs))
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Allocate(pools, svcs); err != nil {
			b.Fatal(err)
		}
	}
}
