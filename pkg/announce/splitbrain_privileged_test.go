// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/testutil"
)

// syncBuffer is a log sink safe for the responders' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPrivilegedL2SplitBrain runs two real Announcers, one at each end
// of a veth, both owning the same VIP, as two nodes that disagree on the
// owner would: each must see the other's gratuitous ARP, count a
// conflict and log it with the other MAC, while neither fights back
// (answering stays with the election). A VIP only one side owns raises
// nothing.
func TestPrivilegedL2SplitBrain(t *testing.T) {
	testutil.Privileged(t)
	p := newL2Pair(t, "sbA", "sbB",
		netip.MustParsePrefix("10.20.0.51/22"), netip.MustParsePrefix("10.20.0.52/22"))
	var (
		vip      = netip.MustParseAddr("10.20.1.1")
		only     = netip.MustParseAddr("10.20.1.2")
		logA     = &syncBuffer{}
		logB     = &syncBuffer{}
		annA     = New(slog.New(slog.NewTextHandler(logA, nil)))
		annB     = New(slog.New(slog.NewTextHandler(logB, nil)))
		stopA    = runAnnouncer(t, annA)
		stopB    = runAnnouncer(t, annB)
		deadline = time.Now().Add(5 * time.Second)
	)
	defer stopA()
	defer stopB()

	// A owns vip and "only"; B claims vip too, a moment later.
	if err := p.a.Do(func() error { return annA.Set(p.ifA, []netip.Addr{vip, only}) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.b.Do(func() error { return annB.Set(p.ifB, []netip.Addr{vip}) }); err != nil {
		t.Fatal(err)
	}
	for annA.Stats()[p.ifA].Conflicts == 0 || annB.Stats()[p.ifB].Conflicts == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("conflicts A %d, B %d within 5s; want both > 0", annA.Stats()[p.ifA].Conflicts, annB.Stats()[p.ifB].Conflicts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Both sides logged the other's MAC for vip, and nothing for "only".
	for _, side := range []struct {
		name  string
		log   *syncBuffer
		other string
	}{{"A", logA, p.macB.String()}, {"B", logB, p.macA.String()}} {
		var hits []string
		for _, line := range strings.Split(side.log.String(), "\n") {
			if strings.Contains(line, "VIP claimed by another MAC") {
				hits = append(hits, line)
			}
		}
		if len(hits) == 0 {
			t.Errorf("%s logged no conflict:\n%s", side.name, side.log)
			continue
		}
		for _, h := range hits {
			if !strings.Contains(h, "vip="+vip.String()) || !strings.Contains(h, "mac="+side.other) {
				t.Errorf("%s conflict log %q, want vip=%s mac=%s", side.name, h, vip, side.other)
			}
		}
	}

	// B stands down: the conflicts stop growing once B's last gratuitous
	// ARP is out (its burst spans 600 ms).
	if err := p.b.Do(func() error { return annB.Set(p.ifB, nil) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	before := annA.Stats()[p.ifA].Conflicts
	time.Sleep(700 * time.Millisecond)
	if after := annA.Stats()[p.ifA].Conflicts; after != before {
		t.Errorf("A counted %d more conflicts after B released the VIP", after-before)
	}
	t.Logf("conflicts counted: A %d, B %d", before, annB.Stats()[p.ifB].Conflicts)
}
