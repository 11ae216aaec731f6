// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/lbd-project/lbd/internal/testutil"
	"github.com/lbd-project/lbd/pkg/status"
)

// testNode is a real lbd binary running in a node namespace on the static
// cluster of metricsManifests, with a client namespace on the same /22.
type testNode struct {
	bin, dir, socket string
	node, client     *testutil.NetNS
}

// startNode builds lbd, wires node and client namespaces with a veth pair
// (node 10.20.0.51, client 10.20.0.200) and runs `lbd run` in the node
// namespace with extra flags until the test ends. The test's directory is
// world-traversable so that tests can run lbd commands as another user.
func startNode(t *testing.T, extra ...string) *testNode {
	t.Helper()
	return startNodeWith(t, metricsManifests, extra...)
}

// startNodeWith is startNode on other manifests (the reference pools are
// appended).
func startNodeWith(t *testing.T, yaml string, extra ...string) *testNode {
	t.Helper()
	return startNodeOpts(t, nodeOptions{yaml: yaml, flags: extra})
}

// nodeOptions configure startNodeOpts.
type nodeOptions struct {
	// yaml is the static manifest (the reference pools are appended);
	// empty runs without --manifests (setup must give --kubeconfig).
	yaml  string
	flags []string
	// setup runs once the namespaces are wired, before lbd starts, and
	// returns more flags.
	setup func(n *testNode) []string
}

func startNodeOpts(t *testing.T, o nodeOptions) *testNode {
	t.Helper()
	yaml, extra := o.yaml, o.flags
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := &testNode{bin: filepath.Join(dir, "lbd"), dir: dir, socket: filepath.Join(dir, "run", "lbd.sock")}
	if out, err := exec.Command("go", "build", "-o", n.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pools, err := os.ReadFile("../../deploy/examples/reference-pools.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifests := filepath.Join(dir, "cluster.yaml")
	if yaml != "" {
		if err := os.WriteFile(manifests, append([]byte(yaml), pools...), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	n.node, n.client = testutil.NewNetNS(t), testutil.NewNetNS(t)
	if err := n.node.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth0"}, PeerName: "veth1"}); err != nil {
			return fmt.Errorf("add veth: %w", err)
		}
		peer, err := netlink.LinkByName("veth1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(peer, int(n.client.Handle())); err != nil {
			return fmt.Errorf("move veth1: %w", err)
		}
		return linkUp("veth0", "10.20.0.51/22")
	}); err != nil {
		t.Fatal(err)
	}
	if err := n.client.Do(func() error { return linkUp("veth1", "10.20.0.200/22") }); err != nil {
		t.Fatal(err)
	}

	if o.setup != nil {
		extra = append(extra, o.setup(n)...)
	}
	pinDir := fmt.Sprintf("/sys/fs/bpf/lbd-test-%d-%s", os.Getpid(), strings.NewReplacer("/", "-").Replace(t.Name()))
	args := []string{"--net=" + n.node.Path(), n.bin, "run",
		"--node-name=node-1", "--interface=veth0", "--pin-dir=" + pinDir, "--socket=" + n.socket}
	if yaml != "" {
		args = append(args, "--manifests="+manifests)
	}
	args = append(args, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--metrics-addr") {
		args = append(args, "--metrics-addr=")
	}
	cmd := exec.Command("nsenter", args...)
	logf, err := os.Create(filepath.Join(dir, "lbd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		exec.Command("nsenter", "--net="+n.node.Path(), n.bin, "run", "--cleanup", "--pin-dir="+pinDir).Run()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("lbd log:\n%s", b)
		}
	})
	return n
}

// waitVIP waits until the daemon reports an owned VIP and returns it.
func (n *testNode) waitVIP(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := status.Fetch(context.Background(), n.socket)
		if err == nil {
			for _, v := range st.VIPs {
				if v.Owned && len(st.Datapath.Attached) > 0 {
					return v.VIP
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no owned VIP in lbd status after 30s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
