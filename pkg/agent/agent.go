// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/pkg/announce"
	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/membership"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/model"
)

// Source produces States; Run publishes each new one and returns when ctx
// ends (or with an error the daemon cannot continue after).
type Source interface {
	Run(ctx context.Context, publish func(*model.State)) error
	Name() string
}

// Config configures an Agent.
type Config struct {
	// NodeName is this node's name, as in the Node objects.
	NodeName string
	// Interface is the VLAN-facing interface: the datapath attaches and
	// ARP/NDP is answered there.
	Interface string
	// AttachMode is how the ingress program attaches (default auto).
	AttachMode datapath.Mode
	// Socket is the status socket path.
	Socket string
	// Datapath options (PinDir, Maglev size, capacities). NodeIP4 is
	// filled from Interface when unset.
	Datapath datapath.Options
	// StaticIPAM makes every node compute allocations itself (static
	// source: same inputs, same answers on every node). With Kubernetes,
	// VIPs come from Service status.
	StaticIPAM bool
	// Membership configures failure detection among lbd instances (see
	// package membership).
	Membership MembershipConfig
	// Events, if set, receives this node's VIP takeovers and releases
	// (cmd/lbd records them as Kubernetes Events in Kubernetes mode).
	Events OwnershipEvents
	// IPAM, if set, counts static-mode allocations and refusals
	// (lbd_ipam_*_total); the IPAM controller counts Kubernetes mode's.
	IPAM    *ipamcount.Counters
	Version string
	Log     *slog.Logger
}

// MembershipConfig configures failure detection. The zero value runs it
// with membership's defaults.
type MembershipConfig struct {
	// Disabled treats every node as live and never fences: no failover,
	// the behaviour before membership existed.
	Disabled bool
	// Port, Interval and Timeout are membership.Config's (0 means its
	// default).
	Port     uint16
	Interval time.Duration
	Timeout  time.Duration
}

// Agent is a running node daemon.
type Agent struct {
	cfg Config
	log *slog.Logger
	src Source
	dp  *datapath.Datapath
	ann *announce.Announcer

	updates chan *model.State

	mu    sync.Mutex
	mem   *membership.Membership // nil when disabled; set once by Run
	state *model.State           // last reconciled, VIPs filled in
	owned map[netip.Addr]bool
	// annIfaces are the interfaces the announcer answers on (announce.Plan
	// closes the ones that lose their last VIP).
	annIfaces []string
	// election is the last one announced from; owners tracks it for
	// owner-change counting (see observeElection).
	election     *announce.Election
	owners       map[netip.Addr]string
	ownerChanges uint64
	ownedBy      map[netip.Addr]bool // VIPs the last election gave this node
	pools        []ipam.PoolStats
	poolOf       func(netip.Addr) (string, bool)
	errs         []string
	mode         datapath.Mode
	lastSync     time.Time
	// ifaces are the interfaces the datapath is attached to beyond
	// --interface (interfaces.go).
	ifaces ifaceSet
	// reconciles and syncErrors count reconcile passes and the ones whose
	// datapath sync or announcement failed (lbd_sync_errors_total).
	reconciles, syncErrors uint64
	// ipamCounts counts what changed between static allocations.
	ipamCounts *ipamcount.ChangeCounter
	// allocated are the VIPs of the last static allocation, restored into
	// the next one (sticky.go). Only the reconcile loop uses it.
	allocated map[model.ServiceKey][]netip.Addr
}

// New validates cfg and returns an Agent reading from src.
func New(cfg Config, src Source) (*Agent, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("node name is required")
	}
	if cfg.Interface == "" {
		return nil, errors.New("interface is required")
	}
	if cfg.AttachMode == "" {
		cfg.AttachMode = datapath.ModeAuto
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Agent{
		cfg:     cfg,
		log:     cfg.Log,
		src:     src,
		updates: make(chan *model.State, 1),
		owned:   make(map[netip.Addr]bool),
		ifaces:  ifaceSet{appeared: make(chan struct{}, 1)},
		poolOf:  func(netip.Addr) (string, bool) { return "", false },

		ipamCounts: ipamcount.NewChangeCounter(cfg.IPAM),
	}, nil
}

// Run loads and attaches the datapath, then reconciles every State the
// source publishes until ctx ends. On return the announcer has stopped
// answering, and the datapath stays attached and pinned so traffic keeps
// flowing to established backends until the next lbd takes over (use
// `lbd run --cleanup` to remove it).
func (a *Agent) Run(ctx context.Context) error {
	if !a.cfg.Datapath.NodeIP4.IsValid() {
		ip, err := interfaceIPv4(a.cfg.Interface)
		if err != nil {
			return err
		}
		a.cfg.Datapath.NodeIP4 = ip
	}
	if !a.cfg.Datapath.NodeIP6.IsValid() {
		// Optional: without a global IPv6 address, IPv6 VIPs reach
		// remote backends only if a SNAT source is configured.
		a.cfg.Datapath.NodeIP6, _ = interfaceAddr(a.cfg.Interface, unix.AF_INET6)
	}
	a.cfg.Datapath.Log = a.log
	dp, err := datapath.New(a.cfg.Datapath)
	if err != nil {
		return fmt.Errorf("load datapath: %w", err)
	}
	defer dp.Close()
	a.dp = dp
	mode, err := dp.Attach(a.cfg.Interface, a.cfg.AttachMode)
	if err != nil {
		return fmt.Errorf("attach datapath: %w", err)
	}
	a.mode = mode
	a.log.Info("datapath attached", "interface", a.cfg.Interface, "mode", mode, "nodeIP", a.cfg.Datapath.NodeIP4, "nodeIP6", a.cfg.Datapath.NodeIP6, "pinDir", a.cfg.Datapath.PinDir)

	var mem *membership.Membership
	if !a.cfg.Membership.Disabled {
		mem, err = membership.New(membership.Config{
			Self:     a.cfg.NodeName,
			BindAddr: a.cfg.Datapath.NodeIP4,
			Port:     a.cfg.Membership.Port,
			Interval: a.cfg.Membership.Interval,
			Timeout:  a.cfg.Membership.Timeout,
			Log:      a.log,
		})
		if err != nil {
			return fmt.Errorf("start membership: %w", err)
		}
		a.mu.Lock()
		a.mem = mem // Snapshot reads it from the status server's goroutine
		a.mu.Unlock()
	}

	a.ann = announce.New(a.log)
	g, ctx := errgroup.WithContext(ctx)
	// Membership outlives ctx until the loop has withdrawn this node's
	// announcements: only then does it tell the peers it leaves, so they
	// take over at once and never overlap with us.
	memCtx, memCancel := context.WithCancel(context.Background())
	defer memCancel()
	if mem != nil {
		g.Go(func() error { return mem.Run(memCtx) })
	}
	g.Go(func() error { return a.ann.Run(ctx) })
	g.Go(func() error { return a.attachLoop(ctx) })
	g.Go(func() error { return a.src.Run(ctx, a.publish) })
	g.Go(func() error {
		defer memCancel()
		return a.loop(ctx)
	})
	return g.Wait()
}

// publish hands a State to the reconcile loop; a newer State replaces one
// not yet taken (coalescing bursts).
func (a *Agent) publish(st *model.State) {
	for {
		select {
		case a.updates <- st:
			return
		default:
		}
		select {
		case <-a.updates:
		default:
		}
	}
}

func (a *Agent) loop(ctx context.Context) error {
	// A periodic full pass repairs anything changed behind lbd's back.
	resync := time.NewTicker(5 * time.Minute)
	defer resync.Stop()
	var changes <-chan struct{} // nil (never ready) without membership
	if mem := a.membership(); mem != nil {
		changes = mem.Changes()
	}
	var last *model.State
	for {
		select {
		case <-ctx.Done():
			// Stop answering before leaving the membership (see Run).
			a.mu.Lock()
			ifaces := slices.Concat(a.annIfaces, []string{a.cfg.Interface})
			a.mu.Unlock()
			for _, iface := range ifaces {
				if err := a.ann.Set(iface, nil); err != nil && !errors.Is(err, announce.ErrClosed) {
					a.log.Warn("withdraw announcements", "iface", iface, "err", err)
				}
			}
			a.log.Info("withdrew announcements", "reason", "shutting down")
			return nil
		case <-changes:
			// A peer came or went: only ownership changes, so skip
			// allocation and the datapath and announce at once.
			a.announceOwned()
			continue
		case <-a.ifaces.appeared:
			// An announced interface appeared (interfaces.go): answer
			// there now, not at the next State.
			a.announceOwned()
			continue
		case st := <-a.updates:
			last = st
		case <-resync.C:
			if last == nil {
				continue
			}
		}
		a.reconcile(last)
	}
}

// reconcile runs every reconciler for st; one failing does not stop the
// others.
func (a *Agent) reconcile(in *model.State) {
	st, errs := a.allocate(in)
	self := a.cfg.NodeName
	if _, ok := st.Node(self); !ok {
		errs = append(errs, fmt.Errorf("node %q is not among the Node objects: this node announces nothing", self))
	}
	if mem := a.membership(); mem != nil {
		mem.SetPeers(peerAddrs(st, self, a.cfg.Datapath.NodeIP4))
	}
	a.mu.Lock()
	a.state = st
	a.mu.Unlock()
	// Attach before answering on a new interface, so that no VIP packet
	// arrives there unbalanced.
	a.syncAttached(st)
	vips, owned, err := a.announce(st)
	if err != nil {
		errs = append(errs, err)
	}
	syncFailed := err != nil
	stats, err := a.dp.Sync(st, self)
	if err != nil {
		errs = append(errs, fmt.Errorf("datapath sync: %w", err))
		syncFailed = true
	}
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
			a.log.Error("reconcile", "error", e)
		}
	}
	a.log.Info("reconciled", "services", len(st.Services), "owned", len(vips),
		"frontendsAdded", stats.FrontendsAdded, "frontendsRemoved", stats.FrontendsRemoved,
		"tablesWritten", stats.TablesWritten, "errors", len(msgs))
	a.mu.Lock()
	a.owned, a.errs, a.lastSync = owned, msgs, time.Now()
	a.reconciles++
	if syncFailed {
		a.syncErrors++
	}
	a.mu.Unlock()
}

// announceOwned re-elects owners for the last reconciled State after a
// membership change.
func (a *Agent) announceOwned() {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	if st == nil {
		return
	}
	vips, owned, err := a.announce(st)
	if err != nil {
		a.log.Error("announce", "err", err)
	}
	a.log.Info("ownership re-elected", "reason", "membership changed", "owned", len(vips), "fenced", a.fenced())
	a.mu.Lock()
	a.owned = owned
	a.mu.Unlock()
}

// announce makes the announcer answer for exactly the VIPs of st this
// node owns among the live nodes, each on the interfaces its pool is
// announced on, and returns them.
func (a *Agent) announce(st *model.State) ([]netip.Addr, map[netip.Addr]bool, error) {
	self := a.cfg.NodeName
	e := announce.Elect(st, a.liveFunc())
	a.mu.Lock()
	prevIfaces := a.annIfaces
	a.mu.Unlock()
	plan := announce.Plan(st, e, self, a.cfg.Interface, prevIfaces)
	a.holdUnattached(plan)
	owned := make(map[netip.Addr]bool)
	var (
		vips   []netip.Addr
		ifaces []string
		errs   []error
	)
	for iface, list := range plan {
		for _, v := range list {
			if !owned[v] {
				owned[v] = true
				vips = append(vips, v)
			}
		}
		if len(list) > 0 {
			ifaces = append(ifaces, iface)
		}
		if err := a.ann.Set(iface, list); err != nil {
			errs = append(errs, fmt.Errorf("announce on %s: %w", iface, err))
			// Retry the interface next time even if it owns nothing then.
			if len(list) == 0 {
				ifaces = append(ifaces, iface)
			}
		}
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	slices.Sort(ifaces)
	a.mu.Lock()
	a.annIfaces = ifaces
	a.mu.Unlock()
	a.observeElection(st, e)
	return vips, owned, errors.Join(errs...)
}

// liveFunc returns the liveness every ownership decision and the status
// use: peers are live while membership hears them, and this node is live
// unless it is fenced (it cannot show it is on the majority side, see
// membership.Membership.Fenced), which makes it announce nothing.
// Without membership every node is live.
func (a *Agent) liveFunc() func(string) bool {
	mem := a.membership()
	if mem == nil {
		return func(string) bool { return true }
	}
	self, fenced := a.cfg.NodeName, mem.Fenced()
	return func(n string) bool {
		if n == self {
			return !fenced
		}
		return mem.Live(n)
	}
}

func (a *Agent) membership() *membership.Membership {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mem
}

func (a *Agent) fenced() bool {
	mem := a.membership()
	return mem != nil && mem.Fenced()
}

// peerAddrs maps every node of st but self to its first address of the
// family of bind: where its lbd listens for heartbeats.
func peerAddrs(st *model.State, self string, bind netip.Addr) map[string]netip.Addr {
	out := make(map[string]netip.Addr, len(st.Nodes))
	for _, n := range st.Nodes {
		if n.Name == self {
			continue
		}
		for _, ad := range n.Addrs {
			if ad.Unmap().Is4() == bind.Unmap().Is4() {
				out[n.Name] = ad.Unmap()
				break
			}
		}
	}
	return out
}

// allocate fills in VIPs in static mode. Services whose allocation fails
// keep no VIP and are reported; the others are unaffected.
func (a *Agent) allocate(in *model.State) (*model.State, []error) {
	if !a.cfg.StaticIPAM {
		return in, nil
	}
	var errs []error
	svcs, sticky := a.withAllocated(in.Services)
	res, err := ipam.Allocate(in.Pools, svcs)
	if err != nil {
		return &model.State{Nodes: in.Nodes, Pools: in.Pools}, []error{fmt.Errorf("ipam: %w", err)}
	}
	a.ipamCounts.Observe(res)
	st := *in
	st.Services = slices.Clone(in.Services)
	alloc, _ := ipam.New(in.Pools)
	for i := range st.Services {
		svc := &st.Services[i]
		r := res[svc.Key]
		if sticky[svc.Key] {
			a.logMoved(svc.Key, svcs[i].VIPs, r)
		} else if r.RestoreErr != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.Key, r.RestoreErr))
		}
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.Key, r.Err))
		}
		svc.VIPs = r.VIPs
		if alloc != nil && len(r.VIPs) > 0 {
			alloc.Restore(svc, r.VIPs)
		}
	}
	a.remember(st.Services)
	if alloc != nil {
		a.mu.Lock()
		a.pools = alloc.Stats()
		a.poolOf = alloc.PoolOf
		a.mu.Unlock()
	}
	return &st, errs
}

// interfaceIPv4 returns the first global IPv4 address of iface: the node's
// address on the VLAN and the SNAT source.
func interfaceIPv4(iface string) (netip.Addr, error) {
	ip, err := interfaceAddr(iface, unix.AF_INET)
	if err == errNoAddr {
		return ip, fmt.Errorf("interface %s has no IPv4 address: lbd needs one as the SNAT source", iface)
	}
	return ip, err
}

var errNoAddr = errors.New("no global address")

// interfaceAddr returns the first global unicast address of family fam.
func interfaceAddr(iface string, fam int) (netip.Addr, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find interface %s: %w", iface, err)
	}
	addrs, err := netlink.AddrList(l, fam)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", iface, err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap().IsGlobalUnicast() {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, errNoAddr
}
