// SPDX-License-Identifier: Apache-2.0

package config

import (
	"hash/maphash"

	"k8s.io/apimachinery/pkg/types"
)

// revSeed keys revisions: they are compared only within one process.
var revSeed = maphash.MakeSeed()

// revision accumulates the versions of the objects a model.Service is
// built from (the Service, its namespace, its EndpointSlices), for
// model.Service.Revision: the same objects at the same resourceVersions
// convert to the same Service, so the Converter hands out the same
// Revision, and any new version gives another. Slices are summed, not
// hashed in sequence: the informer lists them in no fixed order.
type revision struct {
	svc     uint64
	slices  uint64
	n       uint64
	unknown bool // an input without UID or resourceVersion: Revision 0
}

func version(uid types.UID, rv string) (uint64, bool) {
	if uid == "" || rv == "" {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(revSeed)
	h.WriteString(string(uid))
	h.WriteByte(0)
	h.WriteString(rv)
	return h.Sum64(), true
}

// newRevision starts the revision of svc, in a namespace of version ns
// ("" without a Namespace object; known false when it has no version).
func newRevision(uid types.UID, rv, ns string, nsKnown bool) *revision {
	v, ok := version(uid, rv)
	r := &revision{unknown: !ok || !nsKnown}
	var h maphash.Hash
	h.SetSeed(revSeed)
	h.WriteString(ns)
	r.svc = v ^ h.Sum64()*0x9e3779b97f4a7c15
	return r
}

// addSlice adds an EndpointSlice of the Service.
func (r *revision) addSlice(uid types.UID, rv string) {
	if r == nil {
		return
	}
	v, ok := version(uid, rv)
	if !ok {
		r.unknown = true
	}
	r.slices += v
	r.n++
}

// value is the Revision: never 0 unless unknown.
func (r *revision) value() uint64 {
	if r == nil || r.unknown {
		return 0
	}
	var h maphash.Hash
	h.SetSeed(revSeed)
	for _, w := range [...]uint64{r.svc, r.slices, r.n} {
		var b [8]byte
		for i := range b {
			b[i] = byte(w >> (8 * i))
		}
		h.Write(b[:])
	}
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}
