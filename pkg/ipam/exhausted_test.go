// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbd-project/lbd/pkg/model"
)

// TestExhaustedPools: an exhaustion error names the full pools, whether the
// Service asked for a pool or was auto-assigned, and other errors name none.
func TestExhaustedPools(t *testing.T) {
	a, err := New([]model.Pool{
		{Name: "one", AutoAssign: true, Ranges: []model.AddrRange{rng("10.0.0.1", "10.0.0.1")}},
		{Name: "two", AutoAssign: true, Ranges: []model.AddrRange{rng("10.0.1.1", "10.0.1.1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := func(name, pool string) *model.Service {
		return &model.Service{Key: model.ServiceKey{Namespace: "default", Name: name}, RequestedPool: pool,
			Ports: []model.ServicePort{{Port: 80, Protocol: model.TCP}}}
	}
	for _, n := range []string{"a", "b"} {
		if _, err := a.Assign(svc(n, "")); err != nil {
			t.Fatalf("assign %s: %v", n, err)
		}
	}
	_, err = a.Assign(svc("c", ""))
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("third auto-assign: %v, want ErrPoolExhausted", err)
	}
	if diff := cmp.Diff([]string{"one", "two"}, ExhaustedPools(err)); diff != "" {
		t.Errorf("auto: ExhaustedPools (-want +got):\n%s", diff)
	}
	_, err = a.Assign(svc("d", "two"))
	if diff := cmp.Diff([]string{"two"}, ExhaustedPools(err)); diff != "" {
		t.Errorf("requested pool: ExhaustedPools (-want +got):\n%s", diff)
	}
	_, err = a.Assign(svc("e", "missing"))
	if !errors.Is(err, ErrNoPool) || ExhaustedPools(err) != nil {
		t.Errorf("missing pool: err %v, ExhaustedPools %q; want ErrNoPool and none", err, ExhaustedPools(err))
	}
}
