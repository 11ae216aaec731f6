// SPDX-License-Identifier: Apache-2.0

package announce

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// lifecycle is the goroutine and shutdown plumbing the ARP and NDP
// responders share: a read loop and a gratuitous-burst loop, both stopped
// by shutdown.
type lifecycle struct {
	name  string // "ARP" or "NDP", for logs
	log   *slog.Logger
	burst *burst

	closing atomic.Bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// start runs readLoop and the burst in their own goroutines.
func (l *lifecycle) start(readLoop func()) {
	l.stop = make(chan struct{})
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		readLoop()
	}()
	go func() {
		defer l.wg.Done()
		l.burst.run()
	}()
}

// shutdown stops both goroutines and closes conn; it returns once both
// have returned. The burst stops before the socket closes so it never
// writes to a closed one; closing the socket is what unblocks the read.
func (l *lifecycle) shutdown(conn io.Closer) {
	l.closing.Store(true)
	close(l.stop)
	l.burst.close()
	if err := conn.Close(); err != nil {
		l.log.Warn("close "+l.name+" socket", "error", err)
	}
	l.wg.Wait()
	l.log.Info(l.name + " responder stopped")
}
