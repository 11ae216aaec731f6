// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is a problem with one field of one object.
type FieldError struct {
	// Kind is the object's kind, e.g. "IPPool".
	Kind string
	// Namespace is empty for cluster-scoped objects.
	Namespace, Name string
	// Field is the path of the offending field, e.g. "spec.addresses[1]".
	Field string
	// Value is the offending value, or "" when the problem is its absence.
	Value string
	Err   error
}

// Error renders e as `Kind "namespace/name": field: "value": problem`.
func (e *FieldError) Error() string {
	var b strings.Builder
	obj := e.Name
	if e.Namespace != "" {
		obj = e.Namespace + "/" + e.Name
	}
	fmt.Fprintf(&b, "%s %q", e.Kind, obj)
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid")
	}
	return b.String()
}

// Unwrap returns the underlying problem.
func (e *FieldError) Unwrap() error { return e.Err }

// ErrOverlap is the problem of a pool range that overlaps another range of
// the same or an earlier (by name) pool. It is exported so the controller
// can tell a conflict between pools from a pool that is wrong on its own.
var ErrOverlap = errors.New("overlaps")

// Problems shared by several kinds. They are wrapped in FieldErrors and
// unexported: callers act on the object and field, not on the problem.
var (
	errInvalidIP    = errors.New("invalid IP address")
	errZone         = errors.New("IP address must not have a zone")
	errMapped       = errors.New("IPv4-mapped IPv6 address; write it as IPv4")
	errEmpty        = errors.New("must not be empty")
	errDuplicate    = errors.New("duplicate object")
	errPortRange    = errors.New("port must be between 1 and 65535")
	errBadProtocol  = errors.New("unsupported protocol, want TCP, UDP or SCTP")
	errFamilyTwice  = errors.New("more than one address of the same family")
	errUnknownValue = errors.New("unsupported value")
)

// object identifies the object being converted, to build FieldErrors and
// collect them.
type object struct {
	kind, namespace, name string
	errs                  []error
}

// add records a problem with field (and value, if any).
func (o *object) add(field, value string, err error) {
	o.errs = append(o.errs, &FieldError{
		Kind: o.kind, Namespace: o.namespace, Name: o.name,
		Field: field, Value: value, Err: err,
	})
}

// addf records a problem described by a format string.
func (o *object) addf(field, value, format string, args ...any) {
	o.add(field, value, fmt.Errorf(format, args...))
}

func (o *object) ok() bool { return len(o.errs) == 0 }

// checkMeta validates name and, for namespaced kinds, namespace.
func (o *object) checkMeta(namespaced bool) {
	if o.name == "" {
		o.add("metadata.name", "", errEmpty)
	}
	if namespaced && o.namespace == "" {
		o.add("metadata.namespace", "", errEmpty)
	}
}
