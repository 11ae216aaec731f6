// SPDX-License-Identifier: Apache-2.0

package testutil

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
)

func pid() int { return os.Getpid() }

func setLoopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
