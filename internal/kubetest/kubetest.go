// SPDX-License-Identifier: Apache-2.0

package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// Identities of the cluster's static tokens. LBDUser is how the API server
// sees lbd's ServiceAccount, so the ClusterRoleBinding in deploy/rbac, which
// names the ServiceAccount, applies to the lbd token.
const (
	AdminUser    = "admin"
	LBDNamespace = "lbd-system"
	LBDUser      = "system:serviceaccount:" + LBDNamespace + ":lbd"
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	// Host is the API server URL, https://127.0.0.1:port.
	Host string

	caData     []byte
	adminToken string
	lbdToken   string
	procs      []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// AdminConfig returns a client config with every permission (system:masters).
// Use it for fixtures, never for the code under test.
func (c *Cluster) AdminConfig() *rest.Config { return c.config(c.adminToken) }

// LBDConfig returns a client config for lbd's ServiceAccount, which has only
// the permissions deploy/rbac grants.
func (c *Cluster) LBDConfig() *rest.Config { return c.config(c.lbdToken) }

func (c *Cluster) config(token string) *rest.Config {
	return &rest.Config{
		Host:            c.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caData},
		// Tests create objects in bursts; the default 5 QPS would make
		// the client's rate limiter, not lbd, the thing measured.
		QPS:   1000,
		Burst: 1000,
	}
}

// BinDir returns the directory holding kube-apiserver and etcd:
// $LBD_K8S_BIN_DIR, or bin/ at the repository root.
func BinDir() (string, error) {
	if d := os.Getenv("LBD_K8S_BIN_DIR"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

// RepoRoot returns the repository root, found from this source file so it
// works from any package directory.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("find kubetest source file: runtime.Caller failed")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "k8s", "build.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root above %s: no tools/k8s/build.sh", filepath.Dir(file))
		}
		dir = parent
	}
}

// mustRun reports whether a missing binary is a failure rather than a skip.
func mustRun() bool {
	return os.Getenv("CI") == "true" || os.Getenv("LBD_KUBE_TESTS") == "1"
}

// Start runs a new cluster for t and stops it when t ends. It installs
// deploy/crds and deploy/rbac and returns once the CRDs are established and
// lbd's RBAC is in effect.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	apiserver, etcd := filepath.Join(bin, "kube-apiserver"), filepath.Join(bin, "etcd")
	for _, b := range []string{apiserver, etcd} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("%s not built (run tools/k8s/build.sh or make k8s-bins): %v", b, err)
			if mustRun() {
				t.Fatalf("%s; CI=true or LBD_KUBE_TESTS=1 forbids skipping", msg)
			}
			t.Skip(msg)
		}
	}

	// The ports are chosen free and released before the servers bind
	// them; another process could take one in between, so a failed start
	// is retried with new ports.
	var c *Cluster
	for attempt := 1; ; attempt++ {
		c, err = start(t, apiserver, etcd)
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("start control plane: %v", err)
		}
		t.Logf("start control plane (attempt %d): %v; retrying", attempt, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.install(ctx); err != nil {
		c.dumpLogs(t)
		t.Fatalf("install lbd's CRDs and RBAC: %v", err)
	}
	return c
}

func start(t testing.TB, apiserverBin, etcdBin string) (*Cluster, error) {
	dir := t.TempDir()
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, etcdMetrics, apiPort := ports[0], ports[1], ports[2], ports[3]

	c := &Cluster{
		Host:       fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		adminToken: randomToken(),
		lbdToken:   randomToken(),
	}
	// Stop whatever started, even if a later step fails. Registered after
	// t.TempDir, so it runs before the directory is removed.
	t.Cleanup(c.stop)

	if err := writeSAKeys(dir); err != nil {
		return nil, err
	}
	tokens := fmt.Sprintf("%s,%s,admin-uid,\"system:masters\"\n%s,%s,lbd-uid,\"system:serviceaccounts,system:serviceaccounts:%s\"\n",
		c.adminToken, AdminUser, c.lbdToken, LBDUser, LBDNamespace)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}

	u := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d", p) }
	if err := c.run(dir, "etcd", etcdBin,
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		// Test data is thrown away; fsync only costs time on a busy disk.
		"--unsafe-no-fsync",
		"--listen-client-urls="+u(etcdClient),
		"--advertise-client-urls="+u(etcdClient),
		"--listen-peer-urls="+u(etcdPeer),
		"--initial-advertise-peer-urls="+u(etcdPeer),
		"--initial-cluster=kubetest="+u(etcdPeer),
		"--listen-metrics-urls="+u(etcdMetrics),
		"--log-level=warn",
	); err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := c.run(dir, "kube-apiserver", apiserverBin,
		"--etcd-servers="+u(etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The default reconciler exits at once when advertising a
		// loopback address.
		"--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+certDir,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/12",
	); err != nil {
		return nil, err
	}
	if err := c.waitReady(filepath.Join(certDir, "apiserver.crt")); err != nil {
		c.dumpLogs(t)
		c.stop()
		return nil, err
	}
	return c, nil
}

// run starts a server with its output in dir/<name>.log.
func (c *Cluster) run(dir, name, bin string, args ...string) error {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a ^C in the terminal reaches the test,
	// which then stops the servers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// waitReady waits for the API server's /readyz, failing early if a server
// exits. The serving certificate is self-signed into certFile on start;
// it becomes the clients' CA.
func (c *Cluster) waitReady(certFile string) error {
	deadline := time.Now().Add(90 * time.Second)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // only until the cert exists
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited during start: %v; log:\n%s", p.name, p.err, tail(p.log, 30))
			default:
			}
		}
		req, _ := http.NewRequest(http.MethodGet, c.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ca, err := os.ReadFile(certFile)
				if err != nil {
					return fmt.Errorf("read API server certificate: %w", err)
				}
				c.caData = ca
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("API server not ready after 90 s: %s", last)
}

// stop stops the API server, then etcd: SIGTERM, then SIGKILL after 10 s.
func (c *Cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	c.procs = nil
}

// dumpLogs logs the end of every server's log, for a failed test.
func (c *Cluster) dumpLogs(t testing.TB) {
	for _, p := range c.procs {
		t.Logf("--- %s log (tail) ---\n%s", p.name, tail(p.log, 40))
	}
}

// DumpLogsOnFailure logs the servers' output at the end of a failed test.
func (c *Cluster) DumpLogsOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(t)
		}
	})
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeSAKeys writes the service-account signing key pair the API server
// requires, even though these tests issue no ServiceAccount tokens.
func writeSAKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal service account public key: %w", err)
	}
	files := map[string]*pem.Block{
		"sa.key": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		"sa.pub": {Type: "PUBLIC KEY", Bytes: pub},
	}
	for name, blk := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
