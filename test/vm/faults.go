// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// RemoveNode makes node n disappear as a machine pulled from the rack
// would: its lbd and pod servers are killed and its namespaces (node and
// pods) deleted. It is also dropped from l.Nodes, so the manifest written
// from now on (Manifests, ApplyServices) lists neither the Node nor its
// pods' endpoints, as the API server would once the node is deleted. Its
// pin dir is left for Close.
func (l *Lab) RemoveNode(ctx context.Context, n *Node) error {
	var errs []error
	if n.LBD != nil {
		errs = append(errs, n.LBD.Signal(syscall.SIGKILL))
	}
	for _, p := range n.Pods {
		if p.Server != nil {
			errs = append(errs, p.Server.Signal(syscall.SIGKILL))
		}
	}
	var gone []string
	for _, p := range n.Pods {
		gone = append(gone, p.NetNS)
	}
	gone = append(gone, n.NetNS)
	for _, ns := range gone {
		errs = append(errs, removeNS(ctx, ns))
	}
	// The switch port went with the node's namespace (its veth peer).
	l.mu.Lock()
	l.namespaces = slices.DeleteFunc(l.namespaces, func(ns string) bool { return slices.Contains(gone, ns) })
	l.Nodes = slices.DeleteFunc(l.Nodes, func(m *Node) bool { return m == n })
	l.mu.Unlock()
	if n.LBD != nil {
		select {
		case <-n.LBD.done:
		case <-time.After(5 * time.Second):
			errs = append(errs, fmt.Errorf("remove %s: lbd still running after SIGKILL", n.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove node %s: %w", n.Name, err)
	}
	l.opts.Logf("lab %s: node %s removed", l.Prefix, n.Name)
	return nil
}

// KillAllLBD sends sig to every running lbd at once and waits until they
// have all exited (SIGKILL after the stop timeout).
func (l *Lab) KillAllLBD(sig syscall.Signal) error {
	var errs []error
	for _, n := range l.Nodes {
		if n.LBD != nil {
			errs = append(errs, n.LBD.Signal(sig))
		}
	}
	deadline := time.Now().Add(l.opts.StopTimeout)
	for _, n := range l.Nodes {
		if n.LBD == nil {
			continue
		}
		select {
		case <-n.LBD.done:
		case <-time.After(time.Until(deadline)):
			errs = append(errs, n.LBD.Signal(syscall.SIGKILL))
			<-n.LBD.done
		}
	}
	return errors.Join(errs...)
}
