// SPDX-License-Identifier: Apache-2.0

package ipam

import "errors"

// Sentinel errors. Every error returned by this package that a caller can act
// on wraps exactly one of them (test with [errors.Is]); the message around it
// names the service, the address and the pool involved.
var (
	// ErrPoolExhausted means every pool that could serve the service has no
	// free address of a wanted family. Releasing another service or growing
	// the pool fixes it; retry later.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrNotAllowed means the requested (or restored) address or pool
	// belongs to a pool whose selectors do not select the service, or the
	// request breaks another pool rule (an avoided .0/.255 address, an
	// address outside the requested pool). Retrying does not help; the
	// Service or the pool must change.
	ErrNotAllowed = errors.New("not allowed")
	// ErrInUse means the requested (or restored) address is held by another
	// service and the two cannot share it: no common sharing key, or a
	// port/protocol used by both.
	ErrInUse = errors.New("address in use")
	// ErrNoPool means no pool can serve the service: none selects it with
	// AutoAssign, the requested pool does not exist or lacks a wanted
	// family, or the address is in no pool (for Restore: the pool was
	// removed or shrunk).
	ErrNoPool = errors.New("no pool")
	// ErrInvalid means the service's request itself is malformed: an
	// unknown family, two requested addresses of one family, requested
	// addresses that do not cover the wanted families.
	ErrInvalid = errors.New("invalid request")
)

// exhaustedError is an ErrPoolExhausted error that knows which pools were
// full, so a controller can put a condition on exactly those pools.
type exhaustedError struct {
	pools []string
	err   error
}

func (e *exhaustedError) Error() string { return e.err.Error() }
func (e *exhaustedError) Unwrap() error { return e.err }

// ExhaustedPools returns the names of the pools whose exhaustion err
// reports (err wraps ErrPoolExhausted), or nil.
func ExhaustedPools(err error) []string {
	var e *exhaustedError
	if errors.As(err, &e) {
		return append([]string(nil), e.pools...)
	}
	return nil
}
