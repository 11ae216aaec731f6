// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/lbd-project/lbd/pkg/status"
)

// Exit codes of lbd status (and, for 2, 4 and 5, lbd flows); documented in
// docs/operations.md:
//
//	0 all good
//	1 the daemon reports errors (or the command failed otherwise)
//	2 usage: a bad flag or argument, or a VIP the daemon does not know
//	3 the daemon reports warnings only
//	4 no daemon answers on the socket
//	5 the socket exists but this user may not use it
const (
	exitErrors     = 1
	exitUsage      = 2
	exitWarnings   = 3
	exitNoDaemon   = 4
	exitPermission = 5
)

func statusCmd(args []string) error {
	fs := flag.NewFlagSet("lbd status", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: lbd status [flags] [VIP]

Shows the local daemon's pools, VIPs, owners, backends, counters, datapath,
membership and warnings; with a VIP, that VIP in detail and only the
warnings about it, its pool or the node.

exit codes: 0 ok, 1 errors, 2 usage or unknown VIP, 3 warnings,
4 daemon not running, 5 permission denied on the socket

flags:
`)
		fs.PrintDefaults()
	}
	socket := fs.String("socket", defaultSocket, "status socket path")
	output := fs.String("o", "table", "output: table, json or yaml")
	fs.Parse(args)
	if fs.NArg() > 1 {
		return exitError{exitUsage, fmt.Errorf("want at most one VIP, got %q", fs.Args())}
	}
	var vip netip.Addr
	if s := fs.Arg(0); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return exitError{exitUsage, fmt.Errorf("VIP %q: %w", s, err)}
		}
		vip = a.Unmap()
	}
	switch *output {
	case "table", "json", "yaml":
	default:
		return exitError{exitUsage, fmt.Errorf("-o %q: want table, json or yaml", *output)}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := status.Fetch(ctx, *socket)
	if err != nil {
		return socketError(err)
	}
	if vip.IsValid() && !status.ForVIP(st, vip.String()) {
		return exitError{exitUsage, fmt.Errorf("VIP %s is not allocated (lbd status lists the VIPs)", vip)}
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
		if vip.IsValid() {
			status.RenderVIP(os.Stdout, st)
		} else {
			status.Render(os.Stdout, st)
		}
	}
	switch {
	case len(st.Errors) > 0:
		return exitError{exitErrors, fmt.Errorf("the daemon reports %d error(s)", len(st.Errors))}
	case len(st.Warnings) > 0:
		return exitError{exitWarnings, fmt.Errorf("the daemon reports %d warning(s)", len(st.Warnings))}
	}
	return nil
}
