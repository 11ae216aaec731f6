// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/pkg/controller"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

func main() {
	var (
		services = flag.Int("services", 10000, "LoadBalancer Services to allocate")
		changes  = flag.Int("changes", 1000, "changes timed from API call to datapath")
		dp       = flag.Bool("datapath", os.Geteuid() == 0, "end at a real loaded pkg/datapath (needs root and bpffs); false: at the State handed to sync")
		qps      = flag.Float64("qps", 0, "client-go QPS of the controller's client (0: lbd run's)")
		verbose  = flag.Bool("v", false, "log the controller and source")
	)
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the change-to-datapath phase to this file")
	flag.Parse()
	if err := run(*services, *changes, *dp, float32(*qps), *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "k8sbench:", err)
		os.Exit(1)
	}
}

var cpuProfile string

func run(n, changes int, useDatapath bool, qps float32, verbose bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	if verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}

	dir, err := os.MkdirTemp("", "k8sbench-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	fmt.Fprintln(os.Stderr, "starting etcd and kube-apiserver")
	cluster, err := kubetest.Launch(ctx, kubetest.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer cluster.Stop()

	admin, err := kubernetes.NewForConfig(cluster.AdminConfig())
	if err != nil {
		return fmt.Errorf("build admin client: %w", err)
	}
	adminClients, err := kube.NewClients(cluster.AdminConfig())
	if err != nil {
		return err
	}
	// One /16 holds every VIP; the reference pools are not needed here.
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "lbd.dev/v1alpha1", "kind": "IPPool",
		"metadata": map[string]any{"name": "bench"},
		"spec":     map[string]any{"addresses": []any{"10.128.0.0/16"}},
	}}
	if _, err := adminClients.Dynamic.Resource(kube.IPPoolsResource).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pool: %w", err)
	}

	b := &bench{ctx: ctx, admin: admin, n: n, log: log}
	if err := b.createServices(); err != nil {
		return err
	}
	if qps == 0 {
		qps = lbdRunQPS
	}
	ctlCfg := rest.CopyConfig(cluster.LBDConfig())
	ctlCfg.QPS, ctlCfg.Burst = qps, controller.ClientBurst
	stopCtl, err := b.allocate(ctlCfg)
	if err != nil {
		return err
	}
	defer stopCtl()
	return b.changeToDatapath(cluster.LBDConfig(), changes, useDatapath)
}
