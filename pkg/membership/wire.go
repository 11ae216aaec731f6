// SPDX-License-Identifier: Apache-2.0

package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format of one datagram, all integers big-endian:
//
//	magic "LBDM" | version 1 | kind (1 heartbeat, 2 leave)
//	incarnation u64 | sequence u64
//	name: length u8, bytes
//	view: count u16, then per entry length u8, bytes
//
// Node names are DNS subdomains (at most 253 bytes), so one length byte is
// enough. The view is informational (status, debugging): an encoder that
// would exceed maxDatagram leaves the remaining entries out.
const (
	magic        = "LBDM"
	wireVersion  = 1
	headerLen    = len(magic) + 1 + 1 + 8 + 8
	maxDatagram  = 1400 // fits any VLAN MTU with IPv6 and UDP headers
	maxNameBytes = 255
)

type kind uint8

const (
	kindHeartbeat kind = 1
	kindLeave     kind = 2
)

// message is one decoded datagram.
type message struct {
	Kind        kind
	Incarnation uint64
	Seq         uint64
	Node        string
	View        []string
}

var errMalformed = errors.New("malformed message")

// marshal encodes m. It fails only for a name longer than 255 bytes.
func (m *message) marshal() ([]byte, error) {
	if len(m.Node) == 0 || len(m.Node) > maxNameBytes {
		return nil, fmt.Errorf("encode message: node name of %d bytes", len(m.Node))
	}
	b := make([]byte, 0, 128)
	b = append(b, magic...)
	b = append(b, wireVersion, byte(m.Kind))
	b = binary.BigEndian.AppendUint64(b, m.Incarnation)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = append(b, byte(len(m.Node)))
	b = append(b, m.Node...)
	countAt := len(b)
	b = append(b, 0, 0)
	var n uint16
	for _, v := range m.View {
		if len(v) == 0 || len(v) > maxNameBytes || len(b)+1+len(v) > maxDatagram || n == 0xffff {
			continue
		}
		b = append(b, byte(len(v)))
		b = append(b, v...)
		n++
	}
	binary.BigEndian.PutUint16(b[countAt:], n)
	return b, nil
}

// unmarshal decodes b. Trailing bytes are an error, so that a datagram of
// a later, longer format is never half-understood: a new format gets a new
// version.
func unmarshal(b []byte) (message, error) {
	var m message
	if len(b) < headerLen || len(b) > maxDatagram || string(b[:4]) != magic {
		return m, errMalformed
	}
	if b[4] != wireVersion {
		return m, fmt.Errorf("%w: version %d", errMalformed, b[4])
	}
	m.Kind = kind(b[5])
	if m.Kind != kindHeartbeat && m.Kind != kindLeave {
		return m, fmt.Errorf("%w: kind %d", errMalformed, b[5])
	}
	m.Incarnation = binary.BigEndian.Uint64(b[6:])
	m.Seq = binary.BigEndian.Uint64(b[14:])
	rest := b[headerLen:]
	name, rest, ok := readString(rest)
	if !ok || name == "" {
		return m, errMalformed
	}
	m.Node = name
	if len(rest) < 2 {
		return m, errMalformed
	}
	n := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for range n {
		var v string
		v, rest, ok = readString(rest)
		if !ok || v == "" {
			return m, errMalformed
		}
		m.View = append(m.View, v)
	}
	if len(rest) != 0 {
		return m, errMalformed
	}
	return m, nil
}

func readString(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
