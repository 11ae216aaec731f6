// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// Defaults of Config.
const (
	DefaultNamespace     = "lbd-system"
	DefaultLeaseName     = "lbd-ipam"
	DefaultLeaseDuration = 5 * time.Second
	DefaultRenewDeadline = 3 * time.Second
	DefaultRetryPeriod   = 1 * time.Second
)

// ClientQPS and ClientBurst are the client-go rate limits lbd run gives
// the controller's client: status writes of a burst of new Services go out
// at up to this rate (16 at a time, see statusWriters).
const (
	ClientQPS   = 1000
	ClientBurst = 1000
)

// Config configures a Controller.
type Config struct {
	Clients kube.Clients
	// Identity names this instance in the Lease; it must be unique among
	// running instances (the node name, or a pod name). Required.
	Identity string
	// Namespace and LeaseName locate the leader-election Lease; defaults
	// DefaultNamespace and DefaultLeaseName.
	Namespace, LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// defaults 5 s, 3 s and 1 s: a crashed leader is replaced within
	// about 6 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Options tune the conversion (the LoadBalancerClass).
	Options config.Options
	// Log receives decisions and problems; nil discards.
	Log *slog.Logger
	// IPAM, if set, counts allocations and refusals (metrics.go).
	IPAM *ipamcount.Counters
}

// Controller is the IPAM controller; Run campaigns for leadership and
// allocates while leading.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	leading atomic.Bool
	termMu  sync.Mutex
}

// New validates cfg and returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Clients.Kube == nil || cfg.Clients.Dynamic == nil {
		return nil, errors.New("controller needs both a kubernetes and a dynamic client")
	}
	if cfg.Identity == "" {
		return nil, errors.New("controller needs an identity for leader election")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.LeaseName == "" {
		cfg.LeaseName = DefaultLeaseName
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if !(cfg.LeaseDuration > cfg.RenewDeadline && cfg.RenewDeadline > cfg.RetryPeriod && cfg.RetryPeriod > 0) {
		return nil, fmt.Errorf("leader election needs lease duration (%v) > renew deadline (%v) > retry period (%v) > 0",
			cfg.LeaseDuration, cfg.RenewDeadline, cfg.RetryPeriod)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: cfg.Log.With("component", "ipam-controller", "identity", cfg.Identity)}, nil
}

// Leading reports whether this instance currently holds the Lease.
func (c *Controller) Leading() bool { return c.leading.Load() }

// Run campaigns for the Lease and, while holding it, allocates VIPs. A lost
// Lease ends the term (its allocator and caches are dropped) and Run
// campaigns again. Run returns nil when ctx ends, after releasing the Lease.
func (c *Controller) Run(ctx context.Context) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: c.cfg.Namespace, Name: c.cfg.LeaseName},
		Client:     c.cfg.Clients.Kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			Name:          c.cfg.LeaseName,
			LeaseDuration: c.cfg.LeaseDuration,
			RenewDeadline: c.cfg.RenewDeadline,
			RetryPeriod:   c.cfg.RetryPeriod,
			// A term's work stops with the context the elector
			// cancels, so releasing on stop is safe, and it makes a
			// restart hand over at once instead of after 5 s.
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: c.term,
				OnStoppedLeading: func() { c.log.Info("stopped leading", "op", "elect") },
				OnNewLeader: func(id string) {
					if id != c.cfg.Identity {
						c.log.Info("another instance leads", "op", "elect", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("set up leader election: %w", err)
		}
		le.Run(ctx)
	}
	// Wait for the last term's work to stop.
	c.termMu.Lock()
	c.termMu.Unlock()
	return nil
}

// term is one term as leader. The elector starts it in a goroutine and
// cancels ctx when the Lease is lost; termMu keeps two terms in this
// process from overlapping, and a term that starts after its ctx ended
// (the elector gave up at once) does nothing.
func (c *Controller) term(ctx context.Context) {
	c.termMu.Lock()
	defer c.termMu.Unlock()
	if ctx.Err() != nil {
		return
	}
	c.leading.Store(true)
	defer c.leading.Store(false)
	c.log.Info("became leader", "op", "elect")
	// lead returns early only on a setup error; the Lease is still held,
	// so retry rather than sit on it doing nothing.
	for {
		err := c.lead(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Error("ipam term failed; restarting it", "op", "lead", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.cfg.RetryPeriod):
		}
	}
}
