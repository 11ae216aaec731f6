// SPDX-License-Identifier: Apache-2.0

package testutil

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// NetNS is an anonymous network namespace owned by one test.
type NetNS struct {
	handle netns.NsHandle
}

// NewNetNS creates a network namespace with loopback up and removes it when
// the test ends. It never changes the calling thread's namespace.
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	ns, err := newNetNS()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

func newNetNS() (*NetNS, error) {
	var (
		ns  *NetNS
		err error
	)
	done := make(chan struct{})
	// A fresh, locked thread that exits afterwards: its namespace is
	// never reused by another goroutine.
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var h netns.NsHandle
		h, err = netns.New()
		if err != nil {
			err = fmt.Errorf("create netns: %w", err)
			return
		}
		ns = &NetNS{handle: h}
		err = setLoopbackUp()
		// Do not UnlockOSThread: the thread is in the new namespace and
		// must die with the goroutine.
	}()
	<-done
	return ns, err
}

// Handle returns the namespace's handle, valid until Close.
func (n *NetNS) Handle() netns.NsHandle { return n.handle }

// Path returns a /proc path naming the namespace, for `ip netns exec`-like
// tools (nsenter --net=PATH). Valid while the test process lives.
func (n *NetNS) Path() string {
	return fmt.Sprintf("/proc/%d/fd/%d", pid(), int(n.handle))
}

// Do runs fn on a locked OS thread inside the namespace. Sockets fn creates
// stay in the namespace after Do returns.
func (n *NetNS) Do(fn func() error) error {
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if e := netns.Set(n.handle); e != nil {
			err = fmt.Errorf("enter netns: %w", e)
			return
		}
		err = fn()
		// The thread is left locked and dies with the goroutine, so a
		// thread in the wrong namespace is never reused.
	}()
	<-done
	return err
}

// Close releases the namespace; it disappears once no process or mount
// holds it.
func (n *NetNS) Close() error { return n.handle.Close() }
