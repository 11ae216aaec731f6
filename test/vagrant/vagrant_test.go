// SPDX-License-Identifier: Apache-2.0

package vagrant

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const repoRoot = "../.."

// need returns the path of tool or skips the test; under CI=true a
// missing tool fails it instead, so CI cannot pass by skipping.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed and CI=true (make deps installs it)", tool)
	}
	t.Skipf("%s is not installed (apt-get install --no-install-recommends %s)", tool, tool)
	return ""
}

// vagrantValidate runs vagrant validate in the repository root with extra
// environment, keeping vagrant's .vagrant state out of the work tree.
func vagrantValidate(t *testing.T, env ...string) (string, error) {
	t.Helper()
	bin := need(t, "vagrant")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// --ignore-provider: this machine has no hypervisor; the provider
	// blocks are still parsed, only their values are not checked.
	cmd := exec.CommandContext(ctx, bin, "validate", "--ignore-provider", "--no-color", "--no-tty")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), append([]string{
		"VAGRANT_DOTFILE_PATH=" + t.TempDir(),
		"VAGRANT_CHECKPOINT_DISABLE=1",
	}, env...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestVagrantfileValidates(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run("workers="+strconv.Itoa(workers), func(t *testing.T) {
			out, err := vagrantValidate(t, "LBD_WORKERS="+strconv.Itoa(workers))
			if err != nil {
				t.Fatalf("vagrant validate: %v\n%s", err, out)
			}
			if !strings.Contains(out, "Vagrantfile validated successfully") {
				t.Errorf("vagrant validate did not report success:\n%s", out)
			}
			// Every machine of the lab is defined.
			want := []string{"control", "client"}
			for i := 1; i <= workers; i++ {
				want = append(want, "worker"+strconv.Itoa(i))
			}
			for _, m := range want {
				if !strings.Contains(out, "==> "+m+":") {
					t.Errorf("machine %s not validated:\n%s", m, out)
				}
			}
		})
	}
	t.Run("bad worker count", func(t *testing.T) {
		out, err := vagrantValidate(t, "LBD_WORKERS=9")
		if err == nil || !strings.Contains(out, "LBD_WORKERS must be 1..3") {
			t.Errorf("LBD_WORKERS=9: err %v, want the range error; output:\n%s", err, out)
		}
	})
}

func TestScriptsParse(t *testing.T) {
	bash := need(t, "bash")
	scripts, err := filepath.Glob(filepath.Join(repoRoot, "scripts/vagrant/*.sh"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts under scripts/vagrant: %v", err)
	}
	for _, s := range scripts {
		if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestMkimage writes an image from a stand-in binary and checks it the way
// an image loader does: the manifest names the config, the config is
// named by its digest, diff_ids match the layer, and the layer holds the
// binary as /usr/local/bin/lbd, executable. Two runs give the same layer.
func TestMkimage(t *testing.T) {
	bash := need(t, "bash")
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbd")
	content := []byte("#!/bin/true\nnot really lbd\n")
	if err := os.WriteFile(bin, content, 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(out string) map[string][]byte {
		t.Helper()
		cmd := exec.Command(bash, filepath.Join(repoRoot, "scripts/vagrant/mkimage.sh"), bin, "lbd:vagrant", "amd64", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkimage.sh: %v\n%s", err, b)
		}
		return untar(t, out)
	}
	files := mk(filepath.Join(dir, "a.tar"))

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		t.Fatalf("manifest = %+v, want one image with one layer", manifest)
	}
	m := manifest[0]
	if diff := cmp.Diff([]string{"lbd:vagrant"}, m.RepoTags); diff != "" {
		t.Errorf("RepoTags (-want +got):\n%s", diff)
	}
	cfgBytes, ok := files[m.Config]
	if !ok {
		t.Fatalf("config %s missing from the archive", m.Config)
	}
	if got := sha256hex(cfgBytes) + ".json"; got != m.Config {
		t.Errorf("config file %s has digest %s", m.Config, got)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct{ Entrypoint, Cmd, Env []string }
		RootFS           struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	layer := files[m.Layers[0]]
	if diff := cmp.Diff([]string{"sha256:" + sha256hex(layer)}, cfg.RootFS.DiffIDs); diff != "" {
		t.Errorf("diff_ids (-want +got):\n%s", diff)
	}
	if cfg.Architecture != "amd64" || cfg.OS != "linux" || cfg.RootFS.Type != "layers" {
		t.Errorf("config platform/rootfs = %s/%s/%s", cfg.OS, cfg.Architecture, cfg.RootFS.Type)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/lbd"}, cfg.Config.Entrypoint); diff != "" {
		t.Errorf("Entrypoint (-want +got):\n%s", diff)
	}

	// The layer: the binary, executable, owned by root.
	tr := tar.NewReader(bytes.NewReader(layer))
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		if filepath.Clean(h.Name) != "usr/local/bin/lbd" {
			continue
		}
		found = true
		b, _ := io.ReadAll(tr)
		if !bytes.Equal(b, content) {
			t.Errorf("layer's lbd differs from the input binary")
		}
		if h.Mode&0o111 == 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("layer's lbd: mode %o uid %d gid %d, want executable root:root", h.Mode, h.Uid, h.Gid)
		}
	}
	if !found {
		t.Error("layer has no usr/local/bin/lbd")
	}

	again := mk(filepath.Join(dir, "b.tar"))
	if sha256hex(again["layer.tar"]) != sha256hex(layer) {
		t.Error("two runs on the same binary give different layers; the image is not reproducible")
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
	}
}
