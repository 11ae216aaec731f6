// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Load tests.
const (
	TestCPS = "cps" // a new TCP connection per HTTP request (Connection: close)
	TestRPS = "rps" // HTTP requests on keep-alive connections
	TestUDP = "udp" // UDP query/answer pairs, one socket (flow) per worker
)

// LoadResult is what one load run counted.
type LoadResult struct {
	Test     string  `json:"test"`
	OK       int     `json:"ok"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	FirstErr string  `json:"firstErr,omitempty"`
}

// Rate is successful operations per second.
func (r LoadResult) Rate() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.OK) / r.Seconds
}

const opTimeout = 2 * time.Second

var (
	closeReq     = []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
	keepAliveReq = []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	okPrefix     = []byte("HTTP/1.1 200")
)

// RunLoad runs test against target from the calling process's network
// namespace with conc workers for d, and counts the operations that
// completed within d. It is meant to run in a process of its own inside
// the client namespace (lbd-bench loadgen), so every socket is created
// there without per-dial namespace switches.
func RunLoad(ctx context.Context, test, target string, conc int, d time.Duration) LoadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu  sync.Mutex
		res = LoadResult{Test: test}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			ok, errs, first := worker(ctx, test, target)
			mu.Lock()
			res.OK += ok
			res.Errors += errs
			if res.FirstErr == "" && first != nil {
				res.FirstErr = first.Error()
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res
}

func worker(ctx context.Context, test, target string) (ok, errs int, first error) {
	fail := func(err error) {
		if ctx.Err() != nil {
			return // cut off by the end of the run: not a failure
		}
		errs++
		if first == nil {
			first = err
		}
		// Back off a little so a broken path does not spin.
		time.Sleep(10 * time.Millisecond)
	}
	switch test {
	case TestCPS:
		buf := make([]byte, 4096)
		for ctx.Err() == nil {
			if err := closeRequest(target, buf); err != nil {
				fail(err)
				continue
			}
			if ctx.Err() == nil {
				ok++
			}
		}
	case TestRPS:
		var (
			conn net.Conn
			br   *bufio.Reader
		)
		for ctx.Err() == nil {
			if conn == nil {
				c, err := net.DialTimeout("tcp", target, opTimeout)
				if err != nil {
					fail(err)
					continue
				}
				conn, br = c, bufio.NewReader(c)
			}
			if err := keepAliveRequest(conn, br); err != nil {
				conn.Close()
				conn = nil
				fail(err)
				continue
			}
			if ctx.Err() == nil {
				ok++
			}
		}
		if conn != nil {
			conn.Close()
		}
	case TestUDP:
		conn, err := net.Dial("udp4", target)
		if err != nil {
			fail(err)
			return
		}
		defer conn.Close()
		q := []byte("bench query")
		buf := make([]byte, 1500)
		for ctx.Err() == nil {
			_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := conn.Write(q); err != nil {
				fail(fmt.Errorf("send udp: %w", err))
				continue
			}
			if _, err := conn.Read(buf); err != nil {
				fail(fmt.Errorf("read udp answer: %w", err))
				continue
			}
			if ctx.Err() == nil {
				ok++
			}
		}
	default:
		first = fmt.Errorf("unknown test %q", test)
		errs++
	}
	return ok, errs, first
}

// closeRequest does one HTTP request on a fresh connection and reads until
// the server closes it.
func closeRequest(target string, buf []byte) error {
	c, err := net.DialTimeout("tcp", target, opTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := c.Write(closeReq); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	n, err := io.ReadFull(c, buf[:len(okPrefix)])
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if !bytes.Equal(buf[:n], okPrefix) {
		return fmt.Errorf("bad response %q", buf[:n])
	}
	for {
		if _, err := c.Read(buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read response: %w", err)
		}
	}
}

func keepAliveRequest(c net.Conn, br *bufio.Reader) error {
	_ = c.SetDeadline(time.Now().Add(opTimeout))
	if _, err := c.Write(keepAliveReq); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		return fmt.Errorf("server closed a keep-alive connection")
	}
	return nil
}

// LoadgenMain is the "loadgen" subcommand: it runs RunLoad from the flags
// in args and prints the LoadResult as JSON on stdout.
func LoadgenMain(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	test := fs.String("test", TestCPS, "cps, rps or udp")
	target := fs.String("target", "", "VIP:port")
	conc := fs.Int("c", 16, "concurrent workers")
	d := fs.Duration("d", 3*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || *d <= 0 || *d > time.Minute || *conc < 1 || *conc > 1024 {
		return errors.New("loadgen: need -target, 0 < -d <= 1m, 1 <= -c <= 1024")
	}
	return json.NewEncoder(os.Stdout).Encode(RunLoad(context.Background(), *test, *target, *conc, *d))
}
