// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// prefixRE matches a lab run prefix.
var prefixRE = regexp.MustCompile(`^lbd-[0-9a-f]{4}$`)

// Clean removes what labs left behind when their runner crashed: namespaces
// named like a lab's (with the processes still in them), pin directories
// and temp dirs. With prefix "" it removes every lab's leftovers, including
// those of a lab that is still running; with a prefix ("lbd-3f9a") only that
// run's. It returns what it removed.
func Clean(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" && !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("clean lab: %q is not a lab prefix (lbd-<4 hex>)", prefix)
	}
	match := func(name, suffixRE string) bool {
		re := `^lbd-[0-9a-f]{4}` + suffixRE + `$`
		if prefix != "" {
			re = `^` + regexp.QuoteMeta(prefix) + suffixRE + `$`
		}
		return regexp.MustCompile(re).MatchString(name)
	}
	var removed []string
	var errs []error

	out, err := runIP(ctx, "netns", "list")
	if err != nil {
		return nil, fmt.Errorf("clean lab: %w", err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// "name (id: 3)" or just "name".
		if f := strings.Fields(line); len(f) > 0 && nsNameRE.MatchString(f[0]) && match(f[0], `-[a-z0-9]+`) {
			names = append(names, f[0])
		}
	}
	// Namespaces holding processes (pods, nodes) go before the switch, so
	// daemons stop before their links disappear.
	for _, n := range names {
		if !strings.HasSuffix(n, "-sw") {
			if err := removeNS(ctx, n); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "netns "+n)
		}
	}
	for _, n := range names {
		if strings.HasSuffix(n, "-sw") {
			if err := removeNS(ctx, n); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "netns "+n)
		}
	}

	for _, g := range []struct{ dir, suffix string }{
		{bpffsRoot, `-node[0-9]+`},
		{os.TempDir(), `-lab`},
	} {
		entries, err := os.ReadDir(g.dir)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("clean lab: %w", err))
			}
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !match(e.Name(), g.suffix) {
				continue
			}
			p := filepath.Join(g.dir, e.Name())
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("clean lab: %w", err))
				continue
			}
			removed = append(removed, p)
		}
	}
	return removed, errors.Join(errs...)
}
