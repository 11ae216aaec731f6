// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/lbd-project/lbd/pkg/flows"
	"github.com/lbd-project/lbd/pkg/status"
)

// socketOptions returns the status socket's options: /v1/flows served by
// hub, and access for group (a name or a numeric id; empty: root only).
func socketOptions(group string, hub *flows.Hub) ([]status.Option, error) {
	opts := []status.Option{status.WithHandler("GET /v1/flows", flows.Handler(hub))}
	if group == "" {
		return opts, nil
	}
	gid, err := lookupGroup(group)
	if err != nil {
		return nil, fmt.Errorf("--socket-group: %w", err)
	}
	return append(opts, status.WithGroup(gid)), nil
}

func lookupGroup(group string) (int, error) {
	if id, err := strconv.Atoi(group); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("look up group %q: %w", group, err)
	}
	return strconv.Atoi(g.Gid)
}
