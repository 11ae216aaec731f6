// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m),`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// wrkArgs returns wrk's arguments for test (cps: "Connection: close", so
// wrk opens a new connection for every request; rps: keep-alive).
func wrkArgs(test, url string, conc int, d time.Duration) []string {
	args := []string{"-t1", "-c" + strconv.Itoa(conc), "-d" + strconv.Itoa(int(d.Seconds())) + "s", "--timeout", "2s"}
	if test == TestCPS {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, url)
}

// ParseWrk reads wrk's summary into a LoadResult.
func ParseWrk(test, out string) (LoadResult, error) {
	r := LoadResult{Test: test}
	m := wrkRequests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("parse wrk output: no request count in %q", tail(out, 300))
	}
	r.OK, _ = strconv.Atoi(m[1])
	secs, _ := strconv.ParseFloat(m[2], 64)
	switch m[3] {
	case "us":
		secs /= 1e6
	case "ms":
		secs /= 1e3
	case "m":
		secs *= 60
	}
	r.Seconds = secs
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, v := range m[1:] {
			n, _ := strconv.Atoi(v)
			r.Errors += n
		}
		r.FirstErr = strings.TrimSpace(m[0])
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
		r.OK -= n
		r.FirstErr = strings.TrimSpace(m[0])
	}
	return r, nil
}
