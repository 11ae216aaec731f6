// SPDX-License-Identifier: Apache-2.0

package membership

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWireRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  message
	}{
		{"heartbeat", message{Kind: kindHeartbeat, Incarnation: 0xdeadbeef01, Seq: 7, Node: "node1", View: []string{"node2", "node3"}}},
		{"empty view", message{Kind: kindHeartbeat, Incarnation: 1, Seq: 1, Node: "n"}},
		{"leave", message{Kind: kindLeave, Incarnation: ^uint64(0), Seq: ^uint64(0), Node: strings.Repeat("a", 255)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.marshal()
			if err != nil {
				t.Fatal(err)
			}
			got, err := unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.msg, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// A view too long for one datagram is cut, never the datagram.
func TestWireViewTruncated(t *testing.T) {
	var view []string
	for i := range 100 {
		view = append(view, strings.Repeat(string(rune('a'+i%26)), 50))
	}
	m := message{Kind: kindHeartbeat, Incarnation: 1, Seq: 1, Node: "node1", View: view}
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxDatagram {
		t.Errorf("datagram of %d bytes, want at most %d", len(b), maxDatagram)
	}
	got, err := unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.View) == 0 || len(got.View) >= len(view) {
		t.Errorf("decoded view has %d entries, want some but fewer than %d", len(got.View), len(view))
	}
	if diff := cmp.Diff(view[:len(got.View)], got.View); diff != "" {
		t.Errorf("view prefix (-want +got):\n%s", diff)
	}
}

func TestWireRejects(t *testing.T) {
	good, err := (&message{Kind: kindHeartbeat, Incarnation: 1, Seq: 2, Node: "node1", View: []string{"node2"}}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short", good[:10]},
		{"bad magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"bad version", mutate(func(b []byte) []byte { b[4] = 2; return b })},
		{"bad kind", mutate(func(b []byte) []byte { b[5] = 9; return b })},
		{"truncated view", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"empty name", mutate(func(b []byte) []byte { b[headerLen] = 0; return b })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := unmarshal(tt.b); err == nil {
				t.Errorf("unmarshal = %+v, want an error", m)
			}
		})
	}
	if _, err := (&message{Kind: kindHeartbeat, Node: strings.Repeat("x", 256)}).marshal(); err == nil {
		t.Error("marshal of a 256-byte name succeeded")
	}
}

func FuzzUnmarshal(f *testing.F) {
	good, _ := (&message{Kind: kindHeartbeat, Incarnation: 1, Seq: 2, Node: "node1", View: []string{"node2", "node3"}}).marshal()
	f.Add(good)
	f.Add([]byte("LBDM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshal(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		out, err := m.marshal()
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		if diff := cmp.Diff(b, out); diff != "" {
			t.Errorf("re-encoded bytes differ (-in +out):\n%s", diff)
		}
	})
}
