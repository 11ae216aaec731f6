// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// ErrNoInterface is wrapped by SetAttached's per-interface errors when an
// interface does not exist (yet): the caller retries later.
var ErrNoInterface = errors.New("no such interface")

// SetAttached makes want exactly the set of interfaces carrying lbd's
// programs, attached in mode. An interface of want is (re)attached when it
// has none of lbd's links yet or when its pinned links belong to an
// earlier incarnation of the interface (deleted and created again, which
// detaches them in the kernel); one already attached is left alone, so
// calling this often costs a few netlink and bpf syscalls and no packet.
// Every other interface with lbd's links, those attached by this process
// and those pinned under the pin dir by an earlier lbd, is detached. Only
// lbd's own pinned links are ever removed: programs others attached to
// the same interfaces are not touched.
//
// It returns the interfaces of want that could not be attached, each with
// its error (wrapping ErrNoInterface when the interface is missing); the
// others are attached regardless.
func (d *Datapath) SetAttached(want []string, mode Mode) map[string]error {
	failed := map[string]error{}
	for _, iface := range want {
		ok, err := d.attachedNow(iface)
		if err != nil {
			failed[iface] = err
			continue
		}
		if ok {
			continue
		}
		if _, err := d.Attach(iface, mode); err != nil {
			failed[iface] = err
		}
	}
	pinned, err := d.pinnedInterfaces()
	if err != nil {
		// Only stale pins of an earlier lbd go unnoticed: retried next call.
		d.opts.Log.Warn("list pinned links", "err", err)
	}
	for iface := range d.Attached() {
		pinned = append(pinned, iface)
	}
	slices.Sort(pinned)
	for _, iface := range slices.Compact(pinned) {
		if !slices.Contains(want, iface) {
			d.opts.Log.Info("detaching datapath", "interface", iface, "reason", "no longer announced on")
			d.Detach(iface)
		}
	}
	return failed
}

// attachedNow reports whether iface exists and carries every link lbd
// attached to it, still on this incarnation of the interface. A missing
// interface is an error wrapping ErrNoInterface; it is also forgotten, so
// that it is attached afresh when it comes back.
func (d *Datapath) attachedNow(iface string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := netlink.LinkByName(iface)
	if err != nil {
		delete(d.attached, iface)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return false, fmt.Errorf("attach datapath to %s: %w", iface, ErrNoInterface)
		}
		return false, fmt.Errorf("find interface %s: %w", iface, err)
	}
	mode, ok := d.attached[iface]
	if !ok {
		return false, nil
	}
	hooks := []string{hookTCXEgress, hookXDP}
	if mode == ModeTCX {
		hooks[1] = hookTCXIngress
	}
	for _, h := range hooks {
		pl, err := link.LoadPinnedLink(d.linkPin(iface, h), nil)
		if err != nil {
			return false, nil // pin removed behind lbd's back: attach again
		}
		idx := linkIfindex(pl)
		pl.Close()
		if idx != l.Attrs().Index {
			return false, nil
		}
	}
	return true, nil
}

// pinnedInterfaces returns the interfaces that have a link pinned under the
// pin dir (pins are named "<interface>_<hook>", see linkPin).
func (d *Datapath) pinnedInterfaces() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.opts.PinDir, "links"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned links: %w", err)
	}
	var out []string
	for _, e := range ents {
		for _, h := range []string{hookXDP, hookTCXIngress, hookTCXEgress} {
			if iface, ok := strings.CutSuffix(e.Name(), "_"+h); ok && iface != "" {
				out = append(out, iface)
				break
			}
		}
	}
	return out, nil
}
