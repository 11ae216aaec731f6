// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/lbd-project/lbd/pkg/agent"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/membership"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/static"
	"github.com/lbd-project/lbd/pkg/status"
)

const defaultSocket = "/run/lbd/lbd.sock"

func runCmd(args []string) error {
	fs := flag.NewFlagSet("lbd run", flag.ExitOnError)
	var (
		node        = fs.String("node-name", os.Getenv("NODE_NAME"), "this node's name, as in its Node object (env NODE_NAME)")
		manifests   = fs.String("manifests", "", "static mode: a multi-document YAML file of Nodes, Services, EndpointSlices and IPPools")
		kubecfg     = kubeFlag(fs)
		iface       = fs.String("interface", "eth0", "VLAN-facing interface: datapath attachment and ARP/NDP answers")
		mode        = fs.String("attach-mode", "auto", "ingress attachment: auto (driver XDP, tcx on veth), xdp, xdpgeneric, tcx")
		pinDir      = fs.String("pin-dir", datapath.DefaultPinDir, "bpffs directory for pinned maps and links")
		socket      = fs.String("socket", defaultSocket, "status socket path")
		sockGroup   = fs.String("socket-group", "", "group (name or id) allowed to use the status socket (mode 0660); empty: root only (0600)")
		flowSample  = fs.Uint("flow-sample", 0, "lbd flows: also report 1 in N packets of established flows (0: only new flows, drops and affinity hits)")
		maglev      = fs.Uint("maglev-size", datapath.DefaultMaglevSize, "Maglev table size per service (a prime)")
		maxSvc      = fs.Uint("max-services", 4096, "capacity in frontends ({VIP, port, protocol})")
		ctSize      = fs.Uint("conntrack-size", 262144, "connection table capacity (flows)")
		fastLocal   = fs.Bool("fast-local-redirect", false, "deliver to local pods with bpf_redirect, skipping the CNI's policy path (opt-in)")
		udpIdle     = fs.Duration("udp-idle-timeout", datapath.DefaultUDPIdleTimeout, "a UDP flow to a remote backend idle this long gives up its SNAT port when a new flow needs it (at least 1s)")
		cleanup     = fs.Bool("cleanup", false, "detach lbd's programs, remove its pinned maps and exit")
		logLevel    = fs.String("log-level", "info", "debug, info, warn or error")
		metricsAddr = fs.String("metrics-addr", defaultMetricsAddr, "listen address of /metrics, /healthz and /readyz (empty: disabled)")
		gPort       = fs.Uint("gossip-port", membership.DefaultPort, "UDP port of the heartbeats between lbd instances, on every node's VLAN address; 0 disables failure detection (every node counts as live, no failover)")
		gInterval   = fs.Duration("gossip-interval", membership.DefaultInterval, "interval between heartbeats to each peer")
		gTimeout    = fs.Duration("gossip-timeout", membership.DefaultTimeout, "silence after which a peer is dead and its VIPs move (at least twice --gossip-interval)")
		memLimit    = fs.String("memory-limit", "auto", "soft limit of the Go heap (e.g. 192MiB; off: none); auto: 112MiB, at most 3/4 of the container's limit, raised to 4/3 of the live heap on large clusters; GOMEMLIMIT wins over auto")
	)
	fs.Parse(args)

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("node", *node)

	if *cleanup {
		if err := datapath.Cleanup(*pinDir); err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		log.Info("datapath detached and pins removed", "pinDir", *pinDir)
		return nil
	}
	if (*manifests == "") == !kubeMode(fs) {
		return errors.New("exactly one of --manifests (static mode) and --kubeconfig (Kubernetes mode) is required")
	}
	if *gPort > 65535 {
		return fmt.Errorf("--gossip-port %d: not a port", *gPort)
	}
	am, err := datapath.ParseMode(*mode)
	if err != nil {
		return err
	}
	memFlagSet := false
	fs.Visit(func(f *flag.Flag) { memFlagSet = memFlagSet || f.Name == "memory-limit" })
	memPolicy, err := resolveMemoryLimit(*memLimit, memFlagSet, os.Getenv("GOMEMLIMIT"), cgroupMemoryLimit())
	if err != nil {
		return err
	}
	var (
		src     agent.Source
		reload  = func() {}
		ipamCtl func(context.Context) error // Kubernetes mode only
		events  *serviceEvents              // Kubernetes mode only
		// ipamCounts: the controller's (Kubernetes) or the agent's
		// (static) allocations, for lbd_ipam_*_total.
		ipamCounts = &ipamcount.Counters{}
	)
	if *manifests != "" {
		s := namedSource{static.New(*manifests, config.Options{}, log), "static:" + *manifests}
		src, reload = s, s.Reload
	} else if src, ipamCtl, events, err = newKube(*kubecfg, *node, ipamCounts, log); err != nil {
		return err
	}
	a, err := agent.New(agent.Config{
		NodeName:   *node,
		Interface:  *iface,
		AttachMode: am,
		Socket:     *socket,
		StaticIPAM: *manifests != "",
		Membership: agent.MembershipConfig{
			Disabled: *gPort == 0,
			Port:     uint16(*gPort),
			Interval: *gInterval,
			Timeout:  *gTimeout,
		},
		Events:  ownershipEvents(events),
		IPAM:    ipamCounts,
		Version: version,
		Log:     log,
		Datapath: datapath.Options{
			PinDir:            *pinDir,
			MaglevSize:        uint32(*maglev),
			MaxServices:       uint32(*maxSvc),
			ConntrackSize:     uint32(*ctSize),
			FastLocalRedirect: *fastLocal,
			UDPIdleTimeout:    *udpIdle,
		},
	}, src)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, ctx := errgroup.WithContext(ctx)
	applyMemoryLimit(ctx, memPolicy, log)
	// One Checker: the socket and the metrics report the same warnings.
	chk := status.NewChecker(a.Snapshot)
	if err := startMetrics(ctx, *metricsAddr, chk.Snapshot, metricsDatapath(a), ipamCounts, g); err != nil {
		return err
	}
	sockOpts, err := socketOptions(*sockGroup, newFlowHub(a, *flowSample, log))
	if err != nil {
		return err
	}
	g.Go(func() error { return a.Run(ctx) })
	g.Go(func() error { return status.Serve(ctx, *socket, chk.Snapshot, sockOpts...) })
	if events != nil {
		g.Go(func() error { return events.Run(ctx) })
	}
	if ipamCtl != nil {
		g.Go(func() error { return ipamCtl(ctx) })
	}
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				log.Info("SIGHUP: reloading manifests")
				reload()
			}
		}
	})
	err = g.Wait()
	log.Info("lbd stopped")
	return err
}

// namedSource gives the static source the name shown by lbd status.
type namedSource struct {
	*static.Source
	name string
}

func (s namedSource) Name() string { return s.name }

func (s namedSource) Run(ctx context.Context, publish func(*model.State)) error {
	return s.Source.Run(ctx, publish)
}
