// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/status"
)

// Exit codes of lbd status: 0 all good, 1 the daemon reports errors,
// 3 it reports warnings only, 4 the daemon cannot be reached.
const (
	exitErrors   = 1
	exitWarnings = 3
	exitNoDaemon = 4
)

func statusCmd(args []string) error {
	fs := flag.NewFlagSet("lbd status", flag.ExitOnError)
	socket := fs.String("socket", defaultSocket, "status socket path")
	output := fs.String("o", "table", "output: table, json or yaml")
	fs.Parse(args)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := status.Fetch(ctx, *socket)
	if err != nil {
		code := exitErrors
		if errors.Is(err, status.ErrNotRunning) {
			code = exitNoDaemon
		}
		return exitError{code, err}
	}
	if vip := fs.Arg(0); vip != "" {
		filtered := st.VIPs[:0]
		for _, v := range st.VIPs {
			if v.VIP == vip {
				filtered = append(filtered, v)
			}
		}
		if len(filtered) == 0 {
			return exitError{exitErrors, fmt.Errorf("VIP %s is not allocated", vip)}
		}
		st.VIPs = filtered
	}
	switch *output {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	case "yaml":
		b, err := yaml.Marshal(st)
		if err != nil {
			return err
		}
		os.Stdout.Write(b)
	case "table":
		status.Render(os.Stdout, st)
	default:
		return fmt.Errorf("-o %q: want table, json or yaml", *output)
	}
	switch {
	case len(st.Errors) > 0:
		return exitError{exitErrors, fmt.Errorf("the daemon reports %d error(s)", len(st.Errors))}
	case len(st.Warnings) > 0:
		return exitError{exitWarnings, fmt.Errorf("the daemon reports %d warning(s)", len(st.Warnings))}
	}
	return nil
}
