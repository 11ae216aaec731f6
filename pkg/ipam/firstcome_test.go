// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// TestAllocateFirstCome: Allocate serves services by creationTimestamp,
// then manifest order, then key, not by name alone.
func TestAllocateFirstCome(t *testing.T) {
	at := func(day int) func(*model.Service) {
		return func(s *model.Service) { s.CreatedAt = time.Date(2026, 1, day, 0, 0, 0, 0, time.UTC) }
	}
	order := func(n int) func(*model.Service) { return func(s *model.Service) { s.Order = n } }
	svcs := []model.Service{
		svc("aa-untimed-2", order(2)),
		svc("bb-untimed-1", order(1)),
		svc("cc-day2", at(2), order(9)),
		svc("dd-day1-late", at(1), order(8)),
		svc("ee-day1-early", at(1), order(7)),
		svc("ff-untimed-1", order(1)), // same order: key breaks the tie
	}
	res, err := Allocate(exclusivePools(), svcs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ee-day1-early": "10.20.1.1", "dd-day1-late": "10.20.1.2", "cc-day2": "10.20.1.3",
		"bb-untimed-1": "10.20.1.4", "ff-untimed-1": "10.20.1.5", "aa-untimed-2": "10.20.1.6",
	}
	got := map[string]string{}
	for k, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", k, r.Err)
		}
		got[k.Name] = r.VIPs[0].String()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}

	// Duplicates are still refused though they are no longer adjacent
	// once sorted.
	dup := append(slices.Clone(svcs), svc("aa-untimed-2", order(5)))
	if _, err := Allocate(exclusivePools(), dup); err == nil {
		t.Error("duplicate service accepted")
	}
}

// TestAllocateAppendNeverMoves: computed from scratch, appending
// auto-assigned services (random names, some external, some sharing) never
// moves one that came before, which name order did.
func TestAllocateAppendNeverMoves(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 9))
	var svcs []model.Service
	prev := map[model.ServiceKey]Result{}
	for i := range 200 {
		s := svc(fmt.Sprintf("svc-%08x", r.Uint32()), ports(tcp(uint16(80+r.IntN(3)))))
		s.Order = i + 1
		switch r.IntN(5) {
		case 0:
			external(&s)
		case 1:
			s.SharingKey = fmt.Sprintf("k%d", r.IntN(3))
		}
		svcs = append(svcs, s)
		res, err := Allocate(exclusivePools(), svcs)
		if err != nil {
			t.Fatal(err)
		}
		for k, was := range prev {
			if now := res[k]; !slices.Equal(was.VIPs, now.VIPs) || (was.Err == nil) != (now.Err == nil) {
				t.Fatalf("appending %s (#%d) moved %s from %v (err %v) to %v (err %v)", s.Key, i+1, k, was.VIPs, was.Err, now.VIPs, now.Err)
			}
		}
		prev = res
	}
}
