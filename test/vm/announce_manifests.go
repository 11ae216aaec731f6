// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"fmt"
	"os"
	"slices"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
)

// ZoneLabel is the node label of a node's zone.
const ZoneLabel = "topology.kubernetes.io/zone"

// LabDocs are the objects of the lab's manifest, for scenarios to edit
// before WriteDocs: what Manifests writes, as objects.
type LabDocs struct {
	Nodes         []*corev1.Node
	Pools         []*v1alpha1.IPPool
	Services      []*corev1.Service
	Slices        []*discoveryv1.EndpointSlice
	Announcements []*v1alpha1.L2Announcement
}

// LabDocs returns the lab's manifest objects with only the given nodes and
// the endpoints of their pods (every node when none is given): a node
// left out has not joined the cluster yet.
func (l *Lab) LabDocs(nodes ...*Node) *LabDocs {
	if len(nodes) == 0 {
		nodes = l.Nodes
	}
	d := &LabDocs{}
	for _, n := range nodes {
		d.Nodes = append(d.Nodes, &corev1.Node{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{
				Name:   n.Name,
				Labels: map[string]string{"kubernetes.io/hostname": n.Name},
			},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.IP.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			}},
		})
	}
	d.Pools = []*v1alpha1.IPPool{
		pool(PoolInternal, InternalRange, &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: LBTypeLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"external"},
			}},
		}, 0),
		pool(PoolExternal, ExternalRange, &metav1.LabelSelector{
			MatchLabels: map[string]string{LBTypeLabel: "external"},
		}, 10),
	}
	for _, s := range []struct {
		name   string
		labels map[string]string
	}{
		{"web-internal", nil},
		{"web-external", map[string]string{LBTypeLabel: "external"}},
	} {
		es := l.endpointSlice(s.name)
		es.Endpoints = slices.DeleteFunc(es.Endpoints, func(e discoveryv1.Endpoint) bool {
			return !slices.ContainsFunc(nodes, func(n *Node) bool { return n.Name == *e.NodeName })
		})
		d.Services = append(d.Services, service(s.name, s.labels))
		d.Slices = append(d.Slices, es)
	}
	return d
}

// Node returns the Node object named name, or nil.
func (d *LabDocs) Node(name string) *corev1.Node {
	for _, n := range d.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Service returns the Service "default/name" as in ServiceInternal, or nil.
func (d *LabDocs) Service(key string) *corev1.Service {
	for _, s := range d.Services {
		if s.Namespace+"/"+s.Name == key {
			return s
		}
	}
	return nil
}

// Slice returns the EndpointSlice of Service key, or nil.
func (d *LabDocs) Slice(key string) *discoveryv1.EndpointSlice {
	for _, s := range d.Slices {
		if s.Namespace+"/"+s.Labels[discoveryv1.LabelServiceName] == key {
			return s
		}
	}
	return nil
}

// Announce adds an L2Announcement.
func (d *LabDocs) Announce(name string, pools, ifaces []string, sel *metav1.LabelSelector) {
	d.Announcements = append(d.Announcements, &v1alpha1.L2Announcement{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindL2Announcement},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.L2AnnouncementSpec{IPPools: pools, Interfaces: ifaces, NodeSelector: sel},
	})
}

// objects lists d's objects in manifest order.
func (d *LabDocs) objects() []any {
	var all []any
	for _, n := range d.Nodes {
		all = append(all, n)
	}
	for _, p := range d.Pools {
		all = append(all, p)
	}
	for _, a := range d.Announcements {
		all = append(all, a)
	}
	for _, s := range d.Services {
		all = append(all, s)
	}
	for _, s := range d.Slices {
		all = append(all, s)
	}
	return all
}

// WriteDocs replaces the lab's manifest with d, atomically (lbd never
// reads half a file), and signals every running lbd to reload it now
// rather than at its next poll.
func (l *Lab) WriteDocs(d *LabDocs) error {
	b, err := marshalDocs(d.objects())
	if err != nil {
		return err
	}
	tmp := l.Manifest + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write manifests: %w", err)
	}
	if err := os.Rename(tmp, l.Manifest); err != nil {
		return fmt.Errorf("replace manifests: %w", err)
	}
	for _, n := range l.Nodes {
		if n.LBD == nil {
			continue
		}
		if done, _ := n.LBD.Exited(); !done {
			_ = n.LBD.Signal(syscall.SIGHUP) // best effort: the poll catches up anyway
		}
	}
	return nil
}
