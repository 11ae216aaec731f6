// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lbd-project/lbd/internal/kubetest"
	"github.com/lbd-project/lbd/internal/testutil"
)

func TestPrivilegedH3Scratch(t *testing.T) {
	testutil.Privileged(t)
	kubetest.Require(t)
	bins := goBuild(t, "./podserver", "../../cmd/lbd")
	l := newLab(t, Options{PodServer: bins[0], Nodes: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cp, err := l.StartControlPlane(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	if err := cp.ApplyManifests(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := l.StartKubeLBD(ctx, bins[1], cp); err != nil {
		t.Fatal(err)
	}
	waitVIP(t, ctx, cp, "web-internal", InternalRange[0])
	cp.Cluster.StopAPIServer()
	time.Sleep(5 * time.Second)
	n := l.Nodes[0]
	start := time.Now()
	n.LBD.Signal(syscall.SIGTERM)
	for time.Since(start) < 8*time.Second {
		if done, _ := n.LBD.Exited(); done {
			t.Logf("exited after %v", time.Since(start))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if done, _ := n.LBD.Exited(); !done {
		n.LBD.Signal(syscall.SIGQUIT)
		time.Sleep(2 * time.Second)
	}
	exec.Command("cp", n.LBD.Log, "/tmp/h3/lbd-hang.log").Run()
	_ = os.Remove
}
