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
	Version    string
	Log        *slog.Logger
}

// Agent is a running node daemon.
type Agent struct {
	cfg Config
	log *slog.Logger
	src Source
	dp  *datapath.Datapath
	ann *announce.Announcer

	updates chan *model.State

	mu       sync.Mutex
	state    *model.State // last reconciled, VIPs filled in
	owned    map[netip.Addr]bool
	pools    []ipam.PoolStats
	poolOf   func(netip.Addr) (string, bool)
	errs     []string
	mode     datapath.Mode
	lastSync time.Time
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
		poolOf:  func(netip.Addr) (string, bool) { return "", false },
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
	a.log.Info("datapath attached", "interface", a.cfg.Interface, "mode", mode, "nodeIP", a.cfg.Datapath.NodeIP4, "pinDir", a.cfg.Datapath.PinDir)

	a.ann = announce.New(a.log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.ann.Run(ctx) })
	g.Go(func() error { return a.src.Run(ctx, a.publish) })
	g.Go(func() error { return a.loop(ctx) })
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
	var last *model.State
	for {
		select {
		case <-ctx.Done():
			return nil
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
	live := func(string) bool { return true }
	owned := make(map[netip.Addr]bool)
	var vips []netip.Addr
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			if ok, _ := announce.ShouldAnnounce(self, st, svc, vip, live); ok && !owned[vip] {
				owned[vip] = true
				vips = append(vips, vip)
			}
		}
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	if err := a.ann.Set(a.cfg.Interface, vips); err != nil {
		errs = append(errs, fmt.Errorf("announce: %w", err))
	}
	stats, err := a.dp.Sync(st, self)
	if err != nil {
		errs = append(errs, fmt.Errorf("datapath sync: %w", err))
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
	a.state, a.owned, a.errs, a.lastSync = st, owned, msgs, time.Now()
	a.mu.Unlock()
}

// allocate fills in VIPs in static mode. Services whose allocation fails
// keep no VIP and are reported; the others are unaffected.
func (a *Agent) allocate(in *model.State) (*model.State, []error) {
	if !a.cfg.StaticIPAM {
		return in, nil
	}
	var errs []error
	res, err := ipam.Allocate(in.Pools, in.Services)
	if err != nil {
		return &model.State{Nodes: in.Nodes, Pools: in.Pools}, []error{fmt.Errorf("ipam: %w", err)}
	}
	st := *in
	st.Services = slices.Clone(in.Services)
	alloc, _ := ipam.New(in.Pools)
	for i := range st.Services {
		svc := &st.Services[i]
		r := res[svc.Key]
		if r.RestoreErr != nil {
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
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("find interface %s: %w", iface, err)
	}
	addrs, err := netlink.AddrList(l, unix.AF_INET)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", iface, err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap().IsGlobalUnicast() {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address: lbd needs one as the SNAT source", iface)
}
