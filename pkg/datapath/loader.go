// SPDX-License-Identifier: Apache-2.0

package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is where lbd pins its maps and links on bpffs.
const DefaultPinDir = "/sys/fs/bpf/lbd"

// Options configure the datapath. Zero values take the documented defaults.
type Options struct {
	// PinDir is a directory on bpffs for maps and links
	// (default DefaultPinDir). Two lbd instances sharing a mount namespace
	// (the netns lab) need distinct directories.
	PinDir string
	// NodeIP4 is the node's address on the VLAN interface: the source of
	// SNATed flows to remote backends. Required for externalTrafficPolicy:
	// Cluster to remote backends.
	NodeIP4 netip.Addr
	// NodeIP6 is the same for IPv6 (optional: without it, IPv6 services
	// reach only local backends or use externalTrafficPolicy: Local).
	NodeIP6 netip.Addr
	// MaglevSize is the per-service Maglev table size, a prime
	// (default DefaultMaglevSize).
	MaglevSize uint32
	// MaxServices bounds the frontends ({VIP, port, protocol}) (default 4096).
	// The Maglev map is preallocated: MaxServices * MaglevSize * 8 bytes.
	MaxServices uint32
	// MaxBackends bounds distinct backends (default 65536).
	MaxBackends uint32
	// ConntrackSize is the number of flows in the LRU connection table
	// (default 262144); the reverse table (lb_revnat) has twice as many
	// entries (see revnatSize).
	ConntrackSize uint32
	// SNATPortMin and SNATPortMax bound the node source ports used for
	// SNAT (default 61000-65535, outside Linux's default ephemeral range).
	SNATPortMin, SNATPortMax uint16
	// FastLocalRedirect delivers to local pods with bpf_redirect instead of
	// the kernel stack. It skips netfilter and whatever the CNI enforces on
	// the forward path (NetworkPolicy): opt-in only.
	FastLocalRedirect bool
	// UDPIdleTimeout and TCPIdleTimeout: a flow to a remote backend with
	// no packet either way for this long gives up its SNAT port when a
	// new flow to that backend needs it (its connection-table entry
	// stays; if it comes back, it gets another port). UDP never closes,
	// so without a timeout every UDP flow would hold its port until LRU
	// eviction. UDP defaults to DefaultUDPIdleTimeout (netfilter's
	// unreplied UDP timeout); TCP to DefaultTCPIdleTimeout, longer than
	// Linux's default keepalive time (2 h), because reclaiming the port
	// of a live but quiet TCP connection breaks it. Both must be at least
	// MinIdleTimeout.
	UDPIdleTimeout, TCPIdleTimeout time.Duration
	Log                            *slog.Logger
}

const (
	// DefaultUDPIdleTimeout is Options.UDPIdleTimeout's default.
	DefaultUDPIdleTimeout = 30 * time.Second
	// DefaultTCPIdleTimeout is Options.TCPIdleTimeout's default.
	DefaultTCPIdleTimeout = 3 * time.Hour
	// MinIdleTimeout is the shortest idle timeout: not shorter than the
	// datapath's once-a-second flow refresh (LB_CT_REFRESH_NS), which is
	// when a flow finds out that its port was reclaimed. So short a
	// timeout is for tests: a flow sending less than about once a second
	// would lose its port.
	MinIdleTimeout = time.Second
)

func (o *Options) defaults() error {
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	if o.MaglevSize == 0 {
		o.MaglevSize = DefaultMaglevSize
	}
	if o.MaxServices == 0 {
		o.MaxServices = 4096
	}
	if o.MaxBackends == 0 {
		o.MaxBackends = 65536
	}
	if o.ConntrackSize == 0 {
		o.ConntrackSize = 262144
	}
	if o.SNATPortMin == 0 && o.SNATPortMax == 0 {
		o.SNATPortMin, o.SNATPortMax = 61000, 65535
	}
	if o.UDPIdleTimeout == 0 {
		o.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if o.TCPIdleTimeout == 0 {
		o.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if o.UDPIdleTimeout < MinIdleTimeout || o.TCPIdleTimeout < MinIdleTimeout {
		return fmt.Errorf("idle timeouts (udp %s, tcp %s) must be at least %s", o.UDPIdleTimeout, o.TCPIdleTimeout, MinIdleTimeout)
	}
	if o.SNATPortMin > o.SNATPortMax {
		return fmt.Errorf("snat port range %d-%d is empty", o.SNATPortMin, o.SNATPortMax)
	}
	if o.NodeIP4.IsValid() && !o.NodeIP4.Is4() {
		return fmt.Errorf("node IPv4 address %s is not IPv4", o.NodeIP4)
	}
	if uint64(o.MaxServices)*uint64(o.MaglevSize) > 1<<31 {
		return fmt.Errorf("max services %d x maglev size %d is too large", o.MaxServices, o.MaglevSize)
	}
	if _, err := NewMaglev(o.MaglevSize); err != nil {
		return err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// loadSpec returns the collection spec with load-time constants and map
// sizes applied.
func loadSpec(o *Options) (*ebpf.CollectionSpec, error) {
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("load embedded bpf object: %w", err)
	}
	var ip4 [4]byte
	if o.NodeIP4.IsValid() {
		ip4 = o.NodeIP4.As4()
	}
	var ip6 [16]byte
	if o.NodeIP6.IsValid() && o.NodeIP6.Is6() && !o.NodeIP6.Is4In6() {
		ip6 = o.NodeIP6.As16()
	}
	set := map[string]any{
		lbVarNodeIp6:           ip6,
		lbVarNodeIp4:           ip4, // network order, like the packet
		lbVarMaglevSize:        o.MaglevSize,
		lbVarSnatPortMin:       o.SNATPortMin,
		lbVarSnatPortMax:       o.SNATPortMax,
		lbVarFastLocalRedirect: boolByte(o.FastLocalRedirect),
		lbVarUdpIdleNs:         uint64(o.UDPIdleTimeout.Nanoseconds()),
		lbVarTcpIdleNs:         uint64(o.TCPIdleTimeout.Nanoseconds()),
	}
	for name, v := range set {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	spec.Maps[lbMapLbServices].MaxEntries = o.MaxServices * 2 // frontends + VIP markers
	spec.Maps[lbMapLbStats].MaxEntries = o.MaxServices
	spec.Maps[lbMapLbMaglev].MaxEntries = o.MaxServices * o.MaglevSize
	spec.Maps[lbMapLbBackends].MaxEntries = o.MaxBackends
	spec.Maps[lbMapLbConntrack].MaxEntries = o.ConntrackSize
	spec.Maps[lbMapLbRevnat].MaxEntries = o.revnatSize()
	return spec, nil
}

// revnatSize is lb_revnat's capacity: twice the connection table's. Both
// are LRU maps filled at the same rate (an entry in each per flow), but
// losing a live flow's connection-table entry is mostly harmless (its next
// packet claims the same backend and, unless taken meanwhile, the same
// SNAT port again) where losing its reverse entry is not: the backend's
// next reply goes to the node's stack, which resets the connection before
// the flow's next packet could re-create the entry (lb_rev_ensure). The
// kernel's LRU is approximate and evicts in batches, so with equal sizes
// live reverse entries were evicted under churn; the larger map keeps them
// well behind the connection table's own eviction.
func (o *Options) revnatSize() uint32 {
	return uint32(min(2*uint64(o.ConntrackSize), 1<<31))
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// loadObjects loads the programs and opens or creates the pinned maps. When
// a pinned map no longer matches (capacity or layout changed by an
// upgrade or new options), the stale pin is replaced and the loss is logged:
// the alternative, refusing to start, would leave the node serving nothing.
func loadObjects(o *Options) (*lbObjects, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock rlimit: %w", err)
	}
	if err := ensureBPFFS(o.PinDir); err != nil {
		return nil, err
	}
	spec, err := loadSpec(o)
	if err != nil {
		return nil, err
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: o.PinDir}}
	var objs lbObjects
	err = spec.LoadAndAssign(&objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// Replace only the maps that changed, so e.g. a larger Maglev
		// table does not reset the connection table.
		for name, ms := range spec.Maps {
			path := filepath.Join(o.PinDir, name)
			m, lerr := ebpf.LoadPinnedMap(path, nil)
			if lerr != nil {
				continue
			}
			if cerr := ms.Compatible(m); cerr != nil {
				o.Log.Warn("pinned map incompatible with this version or options; recreating it", "map", name, "error", cerr)
				os.Remove(path)
			}
			m.Close()
		}
		err = spec.LoadAndAssign(&objs, opts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load bpf programs: %+v", ve)
		}
		return nil, fmt.Errorf("load bpf objects: %w", err)
	}
	return &objs, nil
}

// ensureBPFFS makes dir, mounting bpffs on /sys/fs/bpf first if nothing is
// mounted there (fresh hosts without systemd's mount).
func ensureBPFFS(dir string) error {
	root := "/sys/fs/bpf"
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return fmt.Errorf("stat %s: %w", root, err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs on %s: %w", root, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin dir %s is not on bpffs", dir)
	}
	return nil
}
