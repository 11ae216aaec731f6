// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/lbd-project/lbd/pkg/agent"
	"github.com/lbd-project/lbd/pkg/flows"
	"github.com/lbd-project/lbd/pkg/status"
)

// newFlowHub returns the hub behind /v1/flows: it turns the datapath's
// flow events on while someone streams them.
func newFlowHub(a *agent.Agent, sample uint, log *slog.Logger) *flows.Hub {
	return flows.NewHub(flows.Config{
		Open: func() (flows.Reader, error) {
			dp := a.Datapath()
			if dp == nil {
				return nil, errors.New("the datapath is not loaded yet")
			}
			return dp.OpenFlows(uint32(sample))
		},
		State: a.State,
		KernelLost: func() (uint64, error) {
			dp := a.Datapath()
			if dp == nil {
				return 0, nil
			}
			_, lost, err := dp.FlowStats()
			return lost, err
		},
		Log: log,
	})
}

func flowsCmd(args []string) error {
	fs := flag.NewFlagSet("lbd flows", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: lbd flows [flags]

Streams the flow events of the local daemon's datapath: new flows
(client -> VIP -> backend), drops with their reason, affinity hits and, with
lbd run --flow-sample, sampled packets of established flows. Events are
emitted only while a stream is open.

flags:
`)
		fs.PrintDefaults()
	}
	socket := fs.String("socket", defaultSocket, "status socket path")
	output := fs.String("o", "text", "output: text (one line per event) or json (one object per line)")
	vip := fs.String("vip", "", "only flows to this VIP")
	svc := fs.String("service", "", `only flows of this Service ("namespace/name", or "name" in any namespace)`)
	client := fs.String("client", "", "only flows from clients in this prefix (or address)")
	verdict := fs.String("verdict", "", "only these verdicts, comma-separated: new, affinity, established, drop")
	count := fs.Int("n", 0, "exit after this many events (0: until interrupted)")
	dur := fs.Duration("for", 0, "exit after this long (0: until interrupted)")
	fs.Parse(args)
	if fs.NArg() > 0 {
		return exitError{exitUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	f := flows.Filter{Service: *svc}
	var err error
	if *vip != "" {
		a, err := netip.ParseAddr(*vip)
		if err != nil {
			return exitError{exitUsage, fmt.Errorf("--vip: %w", err)}
		}
		f.VIP = a.Unmap()
	}
	if *client != "" {
		if f.Client, err = flows.ParseClient(*client); err != nil {
			return exitError{exitUsage, fmt.Errorf("--client: %w", err)}
		}
	}
	if err := f.AddVerdicts(*verdict); err != nil {
		return exitError{exitUsage, fmt.Errorf("--verdict: %w", err)}
	}
	var print func(flows.Event) error
	switch *output {
	case "text":
		print = func(e flows.Event) error {
			_, err := fmt.Println(flows.Line(e))
			return err
		}
	case "json":
		enc := json.NewEncoder(os.Stdout)
		print = func(e flows.Event) error { return enc.Encode(e) }
	default:
		return exitError{exitUsage, fmt.Errorf("-o %q: want text or json", *output)}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	seen := 0
	err = flows.Stream(ctx, *socket, f, func(e flows.Event) error {
		if err := print(e); err != nil {
			return err
		}
		if e.Verdict != flows.VerdictLost {
			seen++
		}
		if *count > 0 && seen >= *count {
			return flows.ErrStop
		}
		return nil
	})
	return socketError(err)
}

// socketError gives errors reaching the daemon their exit code.
func socketError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, status.ErrNotRunning):
		return exitError{exitNoDaemon, err}
	case errors.Is(err, status.ErrPermission):
		return exitError{exitPermission, err}
	}
	return exitError{exitErrors, err}
}
