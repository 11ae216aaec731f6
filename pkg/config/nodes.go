// SPDX-License-Identifier: Apache-2.0

package config

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/lbd-project/lbd/pkg/model"
)

// LabelExcludeFromLB marks nodes that must never announce, whatever its
// value (Kubernetes' convention for external load balancers).
const LabelExcludeFromLB = corev1.LabelNodeExcludeBalancers

func convertNodes(in []corev1.Node) ([]model.Node, []error) {
	var (
		out  []model.Node
		errs []error
		seen = map[string]bool{}
	)
	for i := range in {
		n := &in[i]
		o := &object{kind: "Node", name: n.Name}
		o.checkMeta(false)
		if n.Name != "" && seen[n.Name] {
			o.add("metadata.name", "", errDuplicate)
		}
		seen[n.Name] = true

		// InternalIP first: it is the address on the cluster network that
		// peers and the datapath use; ExternalIP only after it.
		var internal, external []netip.Addr
		for j, a := range n.Status.Addresses {
			var list *[]netip.Addr
			switch a.Type {
			case corev1.NodeInternalIP:
				list = &internal
			case corev1.NodeExternalIP:
				list = &external
			default:
				continue
			}
			addr, err := parseAddr(a.Address)
			if err != nil {
				o.add(fmt.Sprintf("status.addresses[%d].address", j), a.Address, err)
				continue
			}
			*list = append(*list, addr)
		}
		mn := model.Node{Name: n.Name, Labels: maps.Clone(n.Labels)}
		for _, a := range append(internal, external...) {
			if !slices.Contains(mn.Addrs, a) {
				mn.Addrs = append(mn.Addrs, a)
			}
		}
		_, mn.Excluded = n.Labels[LabelExcludeFromLB]
		if o.ok() {
			out = append(out, mn)
		}
		errs = append(errs, o.errs...)
	}
	slices.SortFunc(out, func(a, b model.Node) int { return cmp.Compare(a.Name, b.Name) })
	return out, errs
}
