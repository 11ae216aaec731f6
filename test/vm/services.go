// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/yaml"
)

// ExtraService is a Service a scenario adds to the lab's manifest, next to
// the two the lab always has, with an EndpointSlice of its own. Without a
// pool label it gets the next free address of the internal pool.
type ExtraService struct {
	Name string // in namespace "default"
	// Local sets externalTrafficPolicy: Local (default Cluster).
	Local bool
	// AffinityTimeout > 0 sets sessionAffinity: ClientIP with this
	// timeoutSeconds.
	AffinityTimeout int32
	// SourceRanges are its loadBalancerSourceRanges.
	SourceRanges []netip.Prefix
	// Endpoints are the pods listed ready; nil lists every pod of the lab.
	Endpoints []*Pod
	// Terminating pods are listed serving and terminating, not ready, as
	// during a pod's graceful shutdown.
	Terminating []*Pod
}

// Key is the service's "namespace/name".
func (s ExtraService) Key() string { return "default/" + s.Name }

func (l *Lab) extraDocs(s ExtraService) ([]any, error) {
	svc := service(s.Name, nil)
	if s.Local {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if s.AffinityTimeout > 0 {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
			ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(s.AffinityTimeout)},
		}
	}
	for _, p := range s.SourceRanges {
		svc.Spec.LoadBalancerSourceRanges = append(svc.Spec.LoadBalancerSourceRanges, p.String())
	}
	es := l.endpointSlice(s.Name)
	eps := s.Endpoints
	if eps == nil {
		eps = l.Pods()
	}
	es.Endpoints = nil
	for _, p := range eps {
		if slices.Contains(s.Terminating, p) {
			return nil, fmt.Errorf("service %s: pod %s both ready and terminating", s.Name, p.Name)
		}
		es.Endpoints = append(es.Endpoints, endpoint(p, true, false))
	}
	for _, p := range s.Terminating {
		es.Endpoints = append(es.Endpoints, endpoint(p, false, true))
	}
	return []any{svc, es}, nil
}

func endpoint(p *Pod, ready, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{p.IP.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: new(ready), Serving: new(true), Terminating: new(terminating)},
		NodeName:   new(p.Node.Name),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: p.Name},
	}
}

// ManifestsWith returns the lab's base manifest (Manifests) followed by the
// documents of svcs.
func (l *Lab) ManifestsWith(svcs ...ExtraService) ([]byte, error) {
	base, err := l.Manifests()
	if err != nil {
		return nil, err
	}
	buf := bytes.NewBuffer(base)
	for _, s := range svcs {
		docs, err := l.extraDocs(s)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			b, err := yaml.Marshal(d)
			if err != nil {
				return nil, fmt.Errorf("marshal manifest of %s: %w", s.Name, err)
			}
			buf.WriteString("---\n")
			buf.Write(b)
		}
	}
	return buf.Bytes(), nil
}

// ApplyServices writes the base manifest plus svcs to l.Manifest and makes
// every running lbd reload it at once (SIGHUP) rather than at its next
// one-second check. The file is replaced by a rename, so lbd never reads
// half of it. Calling it with no service restores the base manifest.
//
// Never call it while an lbd may be starting: a SIGHUP that arrives before
// lbd listens for it ends the process. Use WriteServices then.
func (l *Lab) ApplyServices(svcs ...ExtraService) error {
	if err := l.WriteServices(svcs...); err != nil {
		return err
	}
	var errs []error
	for _, n := range l.Nodes {
		if n.LBD == nil {
			continue
		}
		if done, _ := n.LBD.Exited(); !done {
			errs = append(errs, n.LBD.Signal(syscall.SIGHUP))
		}
	}
	return errors.Join(errs...)
}

// WriteServices writes the base manifest plus svcs to l.Manifest, by a
// rename, and leaves it to lbd to notice the change (within a second).
func (l *Lab) WriteServices(svcs ...ExtraService) error {
	b, err := l.ManifestsWith(svcs...)
	if err != nil {
		return err
	}
	return writeFileAtomic(l.Manifest, b)
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".manifest-*")
	if err != nil {
		return fmt.Errorf("write manifests: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write manifests: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write manifests: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write manifests: %w", err)
	}
	return nil
}

// WaitService waits until every running lbd reports service svc with a
// VIP, an owner they agree on, and exactly the ready backends ready (pod
// addresses, any order) on every port, and returns the VIP as seen by the
// owner. Status shows the agent's state; the datapath is written from the
// same state right after, which the short settle pause covers.
func (l *Lab) WaitService(ctx context.Context, svc string, ready []*Pod, timeout time.Duration) (VIPStatus, *Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := make([]netip.Addr, 0, len(ready))
	for _, p := range ready {
		want = append(want, p.IP)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	var last error
	for {
		v, owner, err := l.serviceConverged(ctx, svc, want)
		if err == nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			return v, owner, nil
		}
		last = err
		if err := l.CheckLBD(); err != nil {
			return VIPStatus{}, nil, err
		}
		select {
		case <-ctx.Done():
			return VIPStatus{}, nil, fmt.Errorf("wait for service %s: %w (last: %w)", svc, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Lab) serviceConverged(ctx context.Context, svc string, want []netip.Addr) (VIPStatus, *Node, error) {
	var (
		vip   VIPStatus
		owner string
		seen  bool
	)
	for _, n := range l.Nodes {
		if n.LBD == nil {
			continue
		}
		if done, _ := n.LBD.Exited(); done {
			continue
		}
		ds, err := l.DatapathStatus(ctx, n)
		if err != nil {
			return vip, nil, err
		}
		v, ok := ds.VIPFor(svc)
		if !ok || v.Owner == "" {
			return vip, nil, fmt.Errorf("%s: service %s has no owned VIP", n.Name, svc)
		}
		if seen && (v.VIP != vip.VIP || v.Owner != owner) {
			return vip, nil, fmt.Errorf("%s: service %s at %s owned by %s, others say %s by %s", n.Name, svc, v.VIP, v.Owner, vip.VIP, owner)
		}
		for _, p := range v.Ports {
			if p.Service != svc {
				continue
			}
			got := p.ReadyBackends()
			if !slices.Equal(got, want) {
				return vip, nil, fmt.Errorf("%s: service %s port %d ready backends %v, want %v", n.Name, svc, p.Port, got, want)
			}
		}
		vip, owner, seen = v.VIPStatus, v.Owner, true
	}
	if !seen {
		return vip, nil, errors.New("no lbd runs")
	}
	n := l.Node(owner)
	if n == nil {
		return vip, nil, fmt.Errorf("service %s: owner %q is not a lab node", svc, owner)
	}
	return vip, n, nil
}
