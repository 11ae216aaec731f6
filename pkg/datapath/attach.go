// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// Mode is how the ingress program is attached.
type Mode string

// Attach modes.
const (
	// ModeAuto uses driver-mode XDP where the driver supports it and tcx
	// otherwise. veth gets tcx: its native XDP converts every skb to an
	// xdp_buff and back, which measured slower than tc here.
	ModeAuto Mode = "auto"
	// ModeXDP is driver-mode XDP; it fails where the driver lacks it.
	ModeXDP Mode = "xdp"
	// ModeXDPGeneric is generic (skb) XDP: only when asked for, never as a
	// silent fallback, since it is slower than tcx.
	ModeXDPGeneric Mode = "xdpgeneric"
	// ModeTCX is tc ingress through tcx (bpf_link), Linux 6.6+.
	ModeTCX Mode = "tcx"
)

// ParseMode validates s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeXDP, ModeXDPGeneric, ModeTCX:
		return m, nil
	}
	return "", fmt.Errorf("attach mode %q: want auto, xdp, xdpgeneric or tcx", s)
}

const (
	hookXDP        = "xdp"
	hookTCXIngress = "tcx-ingress"
	hookTCXEgress  = "tcx-egress"
)

func (d *Datapath) linkPin(iface, hook string) string {
	return filepath.Join(d.opts.PinDir, "links", iface+"_"+hook)
}

// Attach attaches the ingress program to iface in mode (resolving
// ModeAuto) and the egress program with tcx, pinning the links. Links
// pinned by an earlier lbd are reused and their program replaced
// atomically, so a restart or upgrade drops no packet. lbd's tcx programs go
// first in the chain and hand every packet they do not consume to the next
// program (TCX_NEXT), so a CNI attached beside lbd still sees it.
// Returns the mode used.
func (d *Datapath) Attach(iface string, mode Mode) (Mode, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return "", fmt.Errorf("find interface %s: %w", iface, err)
	}
	idx := l.Attrs().Index
	if err := os.MkdirAll(filepath.Join(d.opts.PinDir, "links"), 0o700); err != nil {
		return "", fmt.Errorf("create link pin dir: %w", err)
	}
	if mode == ModeAuto {
		mode = ModeXDP
		if l.Type() == "veth" {
			mode = ModeTCX
		}
	}
	switch mode {
	case ModeXDP, ModeXDPGeneric:
		flags := link.XDPDriverMode
		if mode == ModeXDPGeneric {
			flags = link.XDPGenericMode
		}
		err = d.attachOne(iface, hookXDP, idx, d.objs.LbXdp, func() (link.Link, error) {
			return link.AttachXDP(link.XDPOptions{Program: d.objs.LbXdp, Interface: idx, Flags: flags})
		})
		if err != nil && errors.Is(err, ebpf.ErrNotSupported) && mode == ModeXDP {
			d.opts.Log.Info("driver-mode XDP not supported, using tcx", "interface", iface, "error", err)
			mode = ModeTCX
			err = nil
		} else if err == nil {
			d.dropPin(iface, hookTCXIngress)
		}
	}
	if err != nil {
		return "", err
	}
	if mode == ModeTCX {
		if err := d.attachOne(iface, hookTCXIngress, idx, d.objs.LbTcIngress, func() (link.Link, error) {
			return link.AttachTCX(link.TCXOptions{Interface: idx, Program: d.objs.LbTcIngress, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		}); err != nil {
			return "", err
		}
		d.dropPin(iface, hookXDP)
	}
	if err := d.attachOne(iface, hookTCXEgress, idx, d.objs.LbTcEgress, func() (link.Link, error) {
		return link.AttachTCX(link.TCXOptions{Interface: idx, Program: d.objs.LbTcEgress, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
	}); err != nil {
		return "", err
	}
	d.attached[iface] = mode
	return mode, nil
}

// attachOne reuses a pinned link on the same interface (swapping in prog)
// or creates and pins a new one.
func (d *Datapath) attachOne(iface, hook string, ifindex int, prog *ebpf.Program, create func() (link.Link, error)) error {
	pin := d.linkPin(iface, hook)
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		if linkIfindex(old) == ifindex {
			if err := old.Update(prog); err == nil {
				old.Close() // the pin keeps it attached
				return nil
			}
		}
		// Stale (interface recreated) or not updatable: replace it.
		old.Unpin()
		old.Close()
	}
	l, err := create()
	if err != nil {
		return fmt.Errorf("attach %s to %s: %w", hook, iface, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return fmt.Errorf("pin %s link of %s: %w", hook, iface, err)
	}
	l.Close()
	return nil
}

func linkIfindex(l link.Link) int {
	info, err := l.Info()
	if err != nil {
		return -1
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex)
	}
	if t := info.TCX(); t != nil {
		return int(t.Ifindex)
	}
	return -1
}

// dropPin detaches and unpins a link of iface, if there is one.
func (d *Datapath) dropPin(iface, hook string) {
	pin := d.linkPin(iface, hook)
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		l.Unpin()
		l.Close()
	}
}

// Detach removes lbd's programs from iface.
func (d *Datapath) Detach(iface string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range []string{hookXDP, hookTCXIngress, hookTCXEgress} {
		d.dropPin(iface, h)
	}
	delete(d.attached, iface)
}

// Attached returns the interfaces with lbd programs and their modes.
func (d *Datapath) Attached() map[string]Mode {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]Mode, len(d.attached))
	for k, v := range d.attached {
		out[k] = v
	}
	return out
}
