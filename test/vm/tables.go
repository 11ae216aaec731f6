// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// Flow is one connection-table entry: the client side 5-tuple as the
// datapath keyed it.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

// ConntrackFlows reads node n's pinned connection table (lb_conntrack under
// its pin dir) directly, the way an operator would with bpftool. It works
// whether or not lbd runs: the map outlives the process.
func (n *Node) ConntrackFlows() ([]Flow, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(n.PinDir, "lb_conntrack"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open connection table of %s: %w", n.Name, err)
	}
	defer m.Close()
	if ks := m.KeySize(); ks < 37 {
		return nil, fmt.Errorf("connection table of %s: key of %d bytes, want the 40-byte lb_flow_key", n.Name, ks)
	}
	var (
		out []Flow
		key = make([]byte, m.KeySize())
		val = make([]byte, m.ValueSize())
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		src := netip.AddrFrom16([16]byte(key[0:16])).Unmap()
		dst := netip.AddrFrom16([16]byte(key[16:32])).Unmap()
		// Ports are in network order in the key.
		sport := binary.BigEndian.Uint16(key[32:34])
		dport := binary.BigEndian.Uint16(key[34:36])
		out = append(out, Flow{Src: netip.AddrPortFrom(src, sport), Dst: netip.AddrPortFrom(dst, dport), Proto: key[36]})
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("walk connection table of %s: %w", n.Name, err)
	}
	return out, nil
}

// RevnatClients returns, for every entry of node n's pinned reverse table
// (lb_revnat), the client address and port it translates replies back to.
func (n *Node) RevnatClients() ([]netip.AddrPort, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(n.PinDir, "lb_revnat"), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open reverse table of %s: %w", n.Name, err)
	}
	defer m.Close()
	if vs := m.ValueSize(); vs < 36 {
		return nil, fmt.Errorf("reverse table of %s: value of %d bytes, want the lb_rev layout", n.Name, vs)
	}
	var (
		out []netip.AddrPort
		key = make([]byte, m.KeySize())
		val = make([]byte, m.ValueSize())
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		// struct lb_rev: vip[16], client[16], vport, cport (network order).
		client := netip.AddrFrom16([16]byte(val[16:32])).Unmap()
		out = append(out, netip.AddrPortFrom(client, binary.BigEndian.Uint16(val[34:36])))
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("walk reverse table of %s: %w", n.Name, err)
	}
	return out, nil
}
