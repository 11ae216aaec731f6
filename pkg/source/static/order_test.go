// SPDX-License-Identifier: Apache-2.0

package static

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestSourceStampsArrival: the published Services carry their place among
// the manifest's Services (1-based, other kinds not counted) and their
// creationTimestamp, which static allocation from scratch follows.
func TestSourceStampsArrival(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	svc := func(name, meta string) string {
		return "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n" + meta +
			"spec:\n  type: LoadBalancer\n  ports:\n    - name: http\n      port: 80\n      protocol: TCP\n"
	}
	write(t, path, poolFile("internal")+
		svc("zeta", "")+
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n"+
		svc("alpha", "  namespace: apps\n  creationTimestamp: \"2026-01-02T03:04:05Z\"\n")+
		svc("mid", ""))
	_, h := start(t, path)
	select {
	case st := <-h.published:
		type arrival struct {
			Order     int
			CreatedAt time.Time
		}
		got := map[string]arrival{}
		for _, s := range st.Services {
			got[s.Key.String()] = arrival{s.Order, s.CreatedAt}
		}
		want := map[string]arrival{
			"default/zeta": {1, time.Time{}},
			"apps/alpha":   {2, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			"default/mid":  {3, time.Time{}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("arrival (-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing published")
	}
}
