// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// counter counts the HTTP requests of one client, by verb and resource.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

// wrap is a rest.Config.WrapTransport.
func (c *counter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.n[r.Method+" "+kind(r)]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// kind reduces a request path to its resource (and subresource), e.g.
// services/status, so that counts group by what was touched.
func kind(r *http.Request) string {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// /api/v1/... or /apis/group/version/...
	i := 2
	if len(parts) > 0 && parts[0] == "apis" {
		i = 3
	}
	if i < len(parts) && parts[i] == "namespaces" && i+2 < len(parts) {
		i += 2
	}
	if i >= len(parts) {
		return strings.Join(parts, "/")
	}
	res := parts[i]
	if i+2 < len(parts) {
		res += "/" + parts[i+2]
	}
	if r.URL.Query().Get("watch") == "true" {
		res += " (watch)"
	}
	return res
}

// total returns the number of requests so far.
func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, v := range c.n {
		t += v
	}
	return t
}

// String lists the counts, largest first.
func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return c.n[b] - c.n[a] })
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%d", k, c.n[k]))
	}
	return strings.Join(out, " ")
}

// get returns the count of one verb and kind.
func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}
