// SPDX-License-Identifier: Apache-2.0

package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Host is the API server URL, https://<addr>:port.
	Host string

	opts       Options
	caData     []byte
	adminToken string
	lbdToken   string
	procs      []*proc
}

// Options configure Launch.
type Options struct {
	// Dir holds etcd's data, certificates, keys and the servers' logs.
	// Required; the caller removes it.
	Dir string
	// Addr is the address the API server listens on and advertises;
	// default 127.0.0.1. etcd always listens on 127.0.0.1 of the network
	// namespace the servers run in.
	Addr netip.Addr
	// Wrap prefixes both servers' command lines, e.g. {"ip", "netns",
	// "exec", "cp"} to run them in a network namespace. The wrapper must
	// exec the server (keep its PID), as ip netns exec does.
	Wrap []string
	// Dial reaches Addr from this process; nil dials directly. A test
	// whose servers run in another network namespace dials from there.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

type proc struct {
	name string
	dir  string
	args []string // the command line, to start it again
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
		Dial:  c.opts.Dial,
	}
}

// CAData returns the API server's serving certificate, the clients' CA.
func (c *Cluster) CAData() []byte { return c.caData }

// LBDToken returns the bearer token of lbd's ServiceAccount identity.
func (c *Cluster) LBDToken() string { return c.lbdToken }

// WriteKubeconfig writes a kubeconfig for lbd's ServiceAccount identity
// (only deploy/rbac's permissions) to path, for `lbd run --kubeconfig`.
func (c *Cluster) WriteKubeconfig(path string) error {
	ca := base64.StdEncoding.EncodeToString(c.caData)
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: lbd
  user:
    token: %s
contexts:
- name: lbd
  context: {cluster: kubetest, user: lbd}
current-context: lbd
`, c.Host, ca, c.lbdToken)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
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

// Require skips t when the binaries are not built, or fails it when
// skipping is forbidden (CI=true or LBD_KUBE_TESTS=1). Start calls it; a
// test that calls Launch itself should too.
func Require(t testing.TB) {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{filepath.Join(bin, "kube-apiserver"), filepath.Join(bin, "etcd")} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("%s not built (run tools/k8s/build.sh or make k8s-bins): %v", b, err)
			if mustRun() {
				t.Fatalf("%s; CI=true or LBD_KUBE_TESTS=1 forbids skipping", msg)
			}
			t.Skip(msg)
		}
	}
}

// Start runs a new cluster for t and stops it when t ends. It installs
// deploy/crds and deploy/rbac and returns once the CRDs are established and
// lbd's RBAC is in effect.
func Start(t testing.TB) *Cluster {
	t.Helper()
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Registered before t.Cleanup(c.Stop) below, so the directory is
	// removed after the servers stopped.
	c, err := Launch(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Launch starts a cluster as Start does, without a test: the caller
// stops it with Stop. The servers run from BinDir.
func Launch(ctx context.Context, o Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if !o.Addr.IsValid() {
		o.Addr = netip.MustParseAddr("127.0.0.1")
	}
	// The ports are chosen free and released before the servers bind
	// them; another process could take one in between, so a failed start
	// is retried with new ports.
	var c *Cluster
	for attempt := 1; ; attempt++ {
		dir := filepath.Join(o.Dir, fmt.Sprintf("try%d", attempt))
		c, err = start(dir, o, filepath.Join(bin, "kube-apiserver"), filepath.Join(bin, "etcd"))
		if err == nil {
			break
		}
		if attempt == 3 {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
	}
	if err := c.install(ctx); err != nil {
		logs := c.logs()
		c.Stop()
		return nil, fmt.Errorf("install lbd's CRDs and RBAC: %w\n%s", err, logs)
	}
	return c, nil
}

func start(dir string, o Options, apiserverBin, etcdBin string) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, etcdMetrics, apiPort := ports[0], ports[1], ports[2], ports[3]

	c := &Cluster{
		Host:       "https://" + net.JoinHostPort(o.Addr.String(), strconv.Itoa(apiPort)),
		opts:       o,
		adminToken: randomToken(),
		lbdToken:   randomToken(),
	}

	if err := writeSAKeys(dir); err != nil {
		return nil, err
	}
	tokens := fmt.Sprintf("%s,%s,admin-uid,\"system:masters\"\n%s,%s,lbd-uid,\"system:serviceaccounts,system:serviceaccounts:%s\"\n",
		c.adminToken, AdminUser, c.lbdToken, LBDUser, LBDNamespace)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}

	u := func(p int) string { return fmt.Sprintf("http://127.0.0.1:%d", p) }
	if err := c.run(dir, "etcd", append([]string{etcdBin},
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
	)); err != nil {
		c.Stop()
		return nil, err
	}
	certDir := filepath.Join(dir, "certs")
	if err := c.run(dir, "kube-apiserver", append([]string{apiserverBin},
		"--etcd-servers="+u(etcdClient),
		"--bind-address="+o.Addr.String(),
		"--advertise-address="+o.Addr.String(),
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
		// Dual-stack, so Services may ask for RequireDualStack and
		// lbd's dual-stack allocation is tested as a cluster runs it.
		"--service-cluster-ip-range=10.96.0.0/12,fd00:96::/108",
	)); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.waitReady(filepath.Join(certDir, "apiserver.crt")); err != nil {
		err = fmt.Errorf("%w\n%s", err, c.logs())
		c.Stop()
		return nil, err
	}
	return c, nil
}

// run starts a server with its output appended to dir/<name>.log.
func (c *Cluster) run(dir, name string, args []string) error {
	p := &proc{name: name, dir: dir, args: args, log: filepath.Join(dir, name+".log")}
	if err := p.start(c.opts.Wrap); err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

func (p *proc) start(wrap []string) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create %s log: %w", p.name, err)
	}
	argv := append(slices.Clone(wrap), p.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a ^C in the terminal reaches the test,
	// which then stops the servers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := forkStart(cmd); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(done)
	}()
	return nil
}

// stop stops p: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
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

func (c *Cluster) proc(name string) (*proc, error) {
	for _, p := range c.procs {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no %s in this cluster", name)
}

// StopAPIServer stops the API server (etcd keeps running), to test what
// lbd does while it is unreachable.
func (c *Cluster) StopAPIServer() error {
	p, err := c.proc("kube-apiserver")
	if err != nil {
		return err
	}
	p.stop()
	return nil
}

// StartAPIServer starts a stopped API server again with the same flags,
// certificates and data, and waits until it is ready.
func (c *Cluster) StartAPIServer() error {
	p, err := c.proc("kube-apiserver")
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	default:
		return errors.New("the API server is running")
	}
	if err := p.start(c.opts.Wrap); err != nil {
		return err
	}
	return c.waitReady(filepath.Join(p.dir, "certs", "apiserver.crt"))
}

// waitReady waits for the API server's /readyz, failing early if a server
// exits. The serving certificate is self-signed into certFile on start;
// it becomes the clients' CA.
func (c *Cluster) waitReady(certFile string) error {
	deadline := time.Now().Add(90 * time.Second)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // only until the cert exists
		DialContext:     c.opts.Dial,
	}
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

// Stop stops the API server, then etcd: SIGTERM, then SIGKILL after 10 s.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
	c.procs = nil
}

// logs returns the end of every server's log.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s log (tail) ---\n%s\n", p.name, tail(p.log, 40))
	}
	return b.String()
}

// dumpLogs logs the end of every server's log, for a failed test.
func (c *Cluster) dumpLogs(t testing.TB) { t.Log(c.logs()) }

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

// forks runs cmd.Start calls on one OS thread that never exits. Pdeathsig
// fires when the thread that forked the child exits, not the process, and a
// test that enters network namespaces (test/vm) ends threads on purpose; a
// server forked from such a thread would be killed at a random moment.
var forks = sync.OnceValue(func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for f := range ch {
			f()
		}
	}()
	return ch
})

func forkStart(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	forks() <- func() { errc <- cmd.Start() }
	return <-errc
}
