// SPDX-License-Identifier: Apache-2.0

package static

import (
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/model"
)

// stampArrival records in each Service of st which came first, for
// static-mode allocation from scratch (ipam.Allocate serves the Services
// first come, first served): its creationTimestamp and its place among the
// Services of the manifest. Every node reads the same file, so every node
// gets the same order, and a Service appended to the file comes after the
// ones already there. config.For leaves both unset: its State does not
// depend on the order of its input.
func stampArrival(res config.Resources, st *model.State) {
	first := make(map[model.ServiceKey]int, len(res.Services))
	for i := range res.Services {
		s := &res.Services[i]
		k := model.ServiceKey{Namespace: s.Namespace, Name: s.Name}
		if _, dup := first[k]; !dup { // config.For refuses duplicates anyway
			first[k] = i
		}
	}
	for i := range st.Services {
		svc := &st.Services[i]
		j, ok := first[svc.Key]
		if !ok {
			continue
		}
		// 1-based, so that 0 keeps meaning "no manifest order".
		svc.Order = j + 1
		if ts := res.Services[j].CreationTimestamp; !ts.IsZero() {
			svc.CreatedAt = ts.Time
		}
	}
}
