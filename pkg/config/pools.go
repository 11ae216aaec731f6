// SPDX-License-Identifier: Apache-2.0

package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/model"
)

// claim is a range accepted into the State, remembered to report overlaps
// with the pool and field that own it.
type claim struct {
	r     model.AddrRange
	pool  string
	field string
	text  string
}

// convertPools converts and validates pools, in name order so that the
// first of two overlapping pools wins whatever the input order.
func convertPools(in []v1alpha1.IPPool) ([]model.Pool, []error) {
	sorted := make([]*v1alpha1.IPPool, len(in))
	for i := range in {
		sorted[i] = &in[i]
	}
	slices.SortStableFunc(sorted, func(a, b *v1alpha1.IPPool) int { return strings.Compare(a.Name, b.Name) })

	var (
		out     []model.Pool
		errs    []error
		claimed []claim
		seen    = map[string]bool{}
	)
	for _, p := range sorted {
		o := &object{kind: v1alpha1.KindIPPool, name: p.Name}
		o.checkMeta(false)
		if p.Name != "" && seen[p.Name] {
			o.add("metadata.name", "", errDuplicate)
		}
		seen[p.Name] = true

		mp, mine := convertPool(o, p, claimed)
		if o.ok() {
			out = append(out, mp)
			claimed = append(claimed, mine...)
		}
		errs = append(errs, o.errs...)
	}
	return out, errs
}

func convertPool(o *object, p *v1alpha1.IPPool, claimed []claim) (model.Pool, []claim) {
	mp := model.Pool{
		Name:          p.Name,
		AutoAssign:    p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
		AvoidBuggyIPs: p.Spec.AvoidBuggyIPs,
		Priority:      p.Spec.Priority,
	}
	if len(p.Spec.Addresses) == 0 {
		o.add("spec.addresses", "", errEmpty)
	}
	var mine []claim
	for i, s := range p.Spec.Addresses {
		field := fmt.Sprintf("spec.addresses[%d]", i)
		r, err := parseRange(s)
		if err != nil {
			o.add(field, s, err)
			continue
		}
		c := claim{r: r, pool: p.Name, field: field, text: s}
		for _, prev := range mine {
			if overlaps(r, prev.r) {
				o.add(field, s, fmt.Errorf("%w %s %q", ErrOverlap, prev.field, prev.text))
			}
		}
		for _, prev := range claimed {
			if overlaps(r, prev.r) {
				o.add(field, s, fmt.Errorf("%w IPPool %q %s %q", ErrOverlap, prev.pool, prev.field, prev.text))
			}
		}
		mine = append(mine, c)
		mp.Ranges = append(mp.Ranges, r)
	}
	var err error
	if mp.ServiceSelector, err = LabelSelector(p.Spec.ServiceSelector); err != nil {
		o.add("spec.serviceSelector", "", err)
	}
	if mp.NamespaceSelector, err = LabelSelector(p.Spec.NamespaceSelector); err != nil {
		o.add("spec.namespaceSelector", "", err)
	}
	return mp, mine
}

func convertAnnouncements(in []v1alpha1.L2Announcement) ([]model.Announcement, []error) {
	var (
		out  []model.Announcement
		errs []error
		seen = map[string]bool{}
	)
	for i := range in {
		a := &in[i]
		o := &object{kind: v1alpha1.KindL2Announcement, name: a.Name}
		o.checkMeta(false)
		if a.Name != "" && seen[a.Name] {
			o.add("metadata.name", "", errDuplicate)
		}
		seen[a.Name] = true
		ma := model.Announcement{
			Name:       a.Name,
			Pools:      slices.Clone(a.Spec.IPPools),
			Interfaces: slices.Clone(a.Spec.Interfaces),
		}
		for j, p := range a.Spec.IPPools {
			if p == "" {
				o.add(fmt.Sprintf("spec.ipPools[%d]", j), "", errEmpty)
			}
		}
		for j, ifname := range a.Spec.Interfaces {
			if err := checkIfname(ifname); err != nil {
				o.add(fmt.Sprintf("spec.interfaces[%d]", j), ifname, err)
			}
		}
		var err error
		if ma.NodeSelector, err = LabelSelector(a.Spec.NodeSelector); err != nil {
			o.add("spec.nodeSelector", "", err)
		}
		if o.ok() {
			out = append(out, ma)
		}
		errs = append(errs, o.errs...)
	}
	slices.SortFunc(out, func(a, b model.Announcement) int { return cmp.Compare(a.Name, b.Name) })
	return out, errs
}

// checkIfname applies the kernel's rules for interface names (dev_valid_name).
func checkIfname(s string) error {
	switch {
	case s == "":
		return errEmpty
	case len(s) > 15: // IFNAMSIZ - 1
		return fmt.Errorf("interface name longer than 15 bytes")
	case s == "." || s == "..":
		return fmt.Errorf("invalid interface name")
	case strings.ContainsAny(s, "/: \t\n"):
		return fmt.Errorf("interface name must not contain '/', ':' or whitespace")
	}
	return nil
}
