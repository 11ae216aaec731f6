// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/lbd-project/lbd/pkg/agent"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/metrics/ipamcount"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// kubeFlag registers --kubeconfig. Given at all, even empty, it selects
// Kubernetes mode; empty means the pod's in-cluster ServiceAccount, which is
// how deploy/lbd.yaml runs lbd.
func kubeFlag(fs *flag.FlagSet) *string {
	return fs.String("kubeconfig", "", "Kubernetes mode: path to a kubeconfig; empty (--kubeconfig=) uses the pod's in-cluster ServiceAccount")
}

// kubeMode reports whether --kubeconfig was given.
func kubeMode(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "kubeconfig" })
	return set
}

// newKube builds the Kubernetes source, the run function of the IPAM
// controller, which every instance runs and only the Lease holder acts in,
// and the recorder of this node's ownership Events (run it too). The
// controller's Lease lives in $POD_NAMESPACE (default lbd-system).
func newKube(kubeconfig, node string, ipamCounts *ipamcount.Counters, log *slog.Logger) (agent.Source, func(context.Context) error, *serviceEvents, error) {
	if node == "" {
		return nil, nil, nil, errors.New("--node-name (or NODE_NAME) is required in Kubernetes mode: it is the leader-election identity")
	}
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load kubeconfig %q: %w", kubeconfig, err)
	}
	// Informers list once and then watch; the status writes of a burst
	// of new Services are what needs headroom over client-go's 5 QPS.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "lbd/" + version
	clients, err := kube.NewClients(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	// The IPAM controller writes one status per new Service; at 50 QPS
	// a cluster's first 10 000 Services would wait 200 s for their VIPs.
	// Its writes are bounded by the Services that changed, and the API
	// server's priority and fairness protects it from any client, so the
	// controller gets its own, wider limit (see test/k8sbench).
	ctlCfg := rest.CopyConfig(cfg)
	ctlCfg.QPS, ctlCfg.Burst = controller.ClientQPS, controller.ClientBurst
	ctlClients, err := kube.NewClients(ctlCfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ns := os.Getenv("POD_NAMESPACE")
	ctl, err := controller.New(controller.Config{
		Clients:   ctlClients,
		Identity:  node,
		Namespace: ns,
		Options:   config.Options{},
		Log:       log,
		IPAM:      ipamCounts,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return kube.New(clients, kube.Options{Log: log}), ctl.Run, newServiceEvents(clients.Kube, node, log), nil
}
