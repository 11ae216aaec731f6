// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// The datapath's pinned tables, read the way an operator would with
// bpftool. The layouts are those of bpf/lib/types.h (lb_flow_key, lb_ct,
// lb_rev); addresses are 16 bytes (IPv4 v4-mapped), ports network order.

// Flow is one connection-table entry: the client side 5-tuple as the
// datapath keyed it, and where it sends the flow.
type Flow struct {
	Src, Dst netip.AddrPort
	Proto    uint8
	Backend  netip.AddrPort
	SNATPort uint16 // 0: not SNATed
}

// RevEntry is one reverse-table entry: the reply 5-tuple a backend sends
// (Src is the backend, Dst the node's SNAT port or the client) and the
// client it translates back to.
type RevEntry struct {
	Src, Dst netip.AddrPort
	Proto    uint8
	Client   netip.AddrPort
}

func openPinned(n *Node, name string, minKey, minValue uint32) (*ebpf.Map, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(n.PinDir, name), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open %s of %s: %w", name, n.Name, err)
	}
	if m.KeySize() < minKey || m.ValueSize() < minValue {
		m.Close()
		return nil, fmt.Errorf("%s of %s: key %d / value %d bytes, not the layout the lab reads", name, n.Name, m.KeySize(), m.ValueSize())
	}
	return m, nil
}

func keyAddr(b []byte) netip.Addr { return netip.AddrFrom16([16]byte(b[:16])).Unmap() }

// flowKey decodes an lb_flow_key.
func flowKey(k []byte) (src, dst netip.AddrPort, proto uint8) {
	src = netip.AddrPortFrom(keyAddr(k[0:16]), binary.BigEndian.Uint16(k[32:34]))
	dst = netip.AddrPortFrom(keyAddr(k[16:32]), binary.BigEndian.Uint16(k[34:36]))
	return src, dst, k[36]
}

// ConntrackFlows reads node n's pinned connection table (lb_conntrack). It
// works whether or not lbd runs: the map outlives the process.
func (n *Node) ConntrackFlows() ([]Flow, error) {
	m, err := openPinned(n, "lb_conntrack", 37, 20)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var (
		out []Flow
		key = make([]byte, m.KeySize())
		val = make([]byte, m.ValueSize())
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		f := Flow{
			Backend:  netip.AddrPortFrom(keyAddr(val[0:16]), binary.BigEndian.Uint16(val[16:18])),
			SNATPort: binary.BigEndian.Uint16(val[18:20]),
		}
		f.Src, f.Dst, f.Proto = flowKey(key)
		out = append(out, f)
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("walk lb_conntrack of %s: %w", n.Name, err)
	}
	return out, nil
}

// RevnatEntries reads node n's pinned reverse table (lb_revnat).
func (n *Node) RevnatEntries() ([]RevEntry, error) {
	m, err := openPinned(n, "lb_revnat", 37, 36)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	var (
		out []RevEntry
		key = make([]byte, m.KeySize())
		val = make([]byte, m.ValueSize())
	)
	it := m.Iterate()
	for it.Next(&key, &val) {
		// struct lb_rev: vip[16], client[16], vport, cport.
		e := RevEntry{Client: netip.AddrPortFrom(keyAddr(val[16:32]), binary.BigEndian.Uint16(val[34:36]))}
		e.Src, e.Dst, e.Proto = flowKey(key)
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return out, fmt.Errorf("walk lb_revnat of %s: %w", n.Name, err)
	}
	return out, nil
}

// RevnatClients returns the client of every entry of node n's reverse
// table.
func (n *Node) RevnatClients() ([]netip.AddrPort, error) {
	es, err := n.RevnatEntries()
	out := make([]netip.AddrPort, len(es))
	for i, e := range es {
		out[i] = e.Client
	}
	return out, err
}

// ExplainFlow says what node n's tables hold for the client flow src ->
// dst: the connection-table entry (backend, SNAT port) and whether a
// reverse entry leads back to it. For soak and test failure messages.
func (n *Node) ExplainFlow(src, dst netip.AddrPort, proto uint8) string {
	flows, err := n.ConntrackFlows()
	if err != nil {
		return err.Error()
	}
	revs, err := n.RevnatEntries()
	if err != nil {
		return err.Error()
	}
	for _, f := range flows {
		if f.Src != src || f.Dst != dst || f.Proto != proto {
			continue
		}
		var rev []string
		for _, r := range revs {
			if r.Client == src && r.Proto == proto {
				rev = append(rev, fmt.Sprintf("%s->%s", r.Src, r.Dst))
			}
		}
		return fmt.Sprintf("%s: flow to backend %s, SNAT port %d, reverse entries %v", n.Name, f.Backend, f.SNATPort, rev)
	}
	return fmt.Sprintf("%s: no flow", n.Name)
}
