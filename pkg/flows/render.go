// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"fmt"
	"strings"
)

// Line renders e as one line for people:
//
//	20:24:40.317 new         TCP 10.20.0.200:41003 -> 10.20.1.1:80 default/web -> 10.241.2.10:8080 node2 snat:61234
//	20:24:40.318 drop        TCP 10.20.0.200:41004 -> 10.20.1.4:80 default/ranges drop_src_range
func Line(e Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-11s ", e.Time.Local().Format("15:04:05.000"), e.Verdict)
	if e.Verdict == VerdictLost {
		fmt.Fprintf(&b, "%d events not shown so far (ring buffer full or reader too slow)", e.Lost)
		return b.String()
	}
	svc := e.Service
	if svc == "" {
		svc = "-"
	}
	fmt.Fprintf(&b, "%-4s %s -> %s %s", e.Protocol, e.Client, e.VIP, svc)
	if e.Backend.IsValid() {
		fmt.Fprintf(&b, " -> %s", e.Backend)
		if e.Node != "" {
			fmt.Fprintf(&b, " %s", e.Node)
		}
		if e.SNATPort != 0 {
			fmt.Fprintf(&b, " snat:%d", e.SNATPort)
		}
	}
	if e.Verdict == VerdictDrop {
		fmt.Fprintf(&b, " %s", e.Reason)
	}
	return b.String()
}
