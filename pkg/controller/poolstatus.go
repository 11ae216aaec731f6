// SPDX-License-Identifier: Apache-2.0

package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/lbd-project/lbd/pkg/apis/v1alpha1"
	"github.com/lbd-project/lbd/pkg/config"
	"github.com/lbd-project/lbd/pkg/ipam"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/source/kube"
)

// Condition types in IPPool status.
const (
	// ConditionValid is False when lbd cannot use the pool: its spec is
	// wrong (ReasonInvalidSpec) or overlaps an earlier pool
	// (ReasonConflict). The message names the field and the problem.
	ConditionValid = "Valid"
	// ConditionExhausted is True while Services wait for an address this
	// pool would give them but has no free address left; it turns False
	// by itself when an address frees and the waiting Services get it.
	ConditionExhausted = "Exhausted"
	// ConditionStranded is True while Services keep addresses this pool
	// held before it shrank (or became invalid): they keep serving on them.
	ConditionStranded = "Stranded"
)

// Condition reasons in IPPool status.
const (
	ReasonAccepted         = "Accepted"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonConflict         = "Conflict"
	ReasonServicesWaiting  = "ServicesWaiting"
	ReasonNoServiceWaiting = "NoServiceWaiting"
	ReasonAddressesOutside = "AddressesOutsidePool"
	ReasonNoneOutside      = "NoneOutside"
)

// maxListed bounds the Services named in one condition message.
const maxListed = 5

// keepStranded reports whether svc keeps addresses no pool contains any
// more, and tells its owner once. A Service that now requests another
// address is no longer kept: it gets what it asked for through Assign.
func (t *termState) keepStranded(svc *model.Service) bool {
	ips, ok := t.stranded[svc.Key]
	if !ok {
		return false
	}
	for _, r := range svc.RequestedIPs {
		if !slices.Contains(ips, r) {
			delete(t.stranded, svc.Key)
			delete(t.warned, svc.Key)
			return false
		}
	}
	t.written[svc.Key] = ips
	var outside []string
	for _, ip := range ips {
		if _, in := t.alloc.PoolOf(ip); !in {
			outside = append(outside, ip.String())
		}
	}
	msg := fmt.Sprintf("keeps serving on %s, which no IPPool contains any more (its pool shrank or was removed); "+
		"lbd does not move a live address: delete the Service or request another address to move it",
		strings.Join(outside, ","))
	if t.warned[svc.Key] != msg {
		t.warned[svc.Key] = msg
		t.c.log.Warn("address outside every pool kept", "op", "restore", "svc", svc.Key, "ip", outside)
		if obj, ok := t.inf.Service(svc.Key.Namespace, svc.Key.Name); ok {
			t.rec.Event(obj, corev1.EventTypeWarning, ReasonAddressOutsidePool, msg)
		}
	}
	return true
}

// poolProblems maps each pool pkg/config rejected to its problems.
func poolProblems(err error) map[string][]*config.FieldError {
	out := map[string][]*config.FieldError{}
	for _, fe := range fieldErrors(err) {
		if fe.Kind == v1alpha1.KindIPPool {
			out[fe.Name] = append(out[fe.Name], fe)
		}
	}
	return out
}

// poolStatus publishes each pool's usage and conditions in its status,
// when they changed.
func (t *termState) poolStatus(ctx context.Context, pools []v1alpha1.IPPool, problems map[string][]*config.FieldError,
	waiting map[string][]model.ServiceKey) []error {
	stats := make(map[string]ipam.PoolStats)
	for _, ps := range t.alloc.Stats() {
		stats[ps.Name] = ps
	}
	stranded := t.strandedByPool()
	var errs []error
	for i := range pools {
		p := &pools[i]
		upd := p.DeepCopy()
		t.poolConditions(upd, stats, problems[p.Name], waiting[p.Name], stranded[p.Name])
		if apiequality.Semantic.DeepEqual(p.Status, upd.Status) {
			continue
		}
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(upd)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode IPPool %s: %w", p.Name, err))
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetAPIVersion(v1alpha1.GroupVersion.String())
		u.SetKind(v1alpha1.KindIPPool)
		// A conflict means the pool changed; its event brings another
		// pass, which writes from the newer object.
		_, err = t.c.cfg.Clients.Dynamic.Resource(kube.IPPoolsResource).UpdateStatus(ctx, u, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("write status of IPPool %s: %w", p.Name, err))
		}
	}
	return errs
}

// poolConditions computes p's status in place. SetStatusCondition keeps a
// condition's lastTransitionTime while its status stays, so an unchanged
// pool compares equal and is not written.
func (t *termState) poolConditions(p *v1alpha1.IPPool, stats map[string]ipam.PoolStats, problems []*config.FieldError,
	waiting []model.ServiceKey, stranded []string) {
	st := &p.Status
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: p.Generation,
		})
	}
	ps, valid := stats[p.Name]
	if !valid {
		// Left out by pkg/config: it serves nothing, so no usage.
		st.AddressesTotal, st.AddressesUsed = "", ""
		reason := ReasonInvalidSpec
		msgs := make([]string, 0, len(problems))
		for _, fe := range problems {
			if errors.Is(fe, config.ErrOverlap) {
				reason = ReasonConflict
			}
			msgs = append(msgs, fe.Error())
		}
		if len(msgs) == 0 {
			msgs = append(msgs, "not accepted by lbd")
		}
		set(ConditionValid, metav1.ConditionFalse, reason, strings.Join(msgs, "; "))
	} else {
		st.AddressesTotal, st.AddressesUsed = strconv.FormatUint(ps.Total, 10), strconv.FormatUint(ps.Used, 10)
		set(ConditionValid, metav1.ConditionTrue, ReasonAccepted, "the pool is in use")
	}
	if len(waiting) > 0 {
		names := make([]string, len(waiting))
		for i, k := range waiting {
			names[i] = k.String()
		}
		set(ConditionExhausted, metav1.ConditionTrue, ReasonServicesWaiting,
			fmt.Sprintf("no free address: %s of %s in use; %d Service(s) wait for one: %s",
				st.AddressesUsed, st.AddressesTotal, len(names), listSome(names)))
	} else if valid {
		set(ConditionExhausted, metav1.ConditionFalse, ReasonNoServiceWaiting,
			fmt.Sprintf("%s of %s addresses in use; no Service waits for one", st.AddressesUsed, st.AddressesTotal))
	} else {
		meta.RemoveStatusCondition(&st.Conditions, ConditionExhausted)
	}
	if len(stranded) > 0 {
		set(ConditionStranded, metav1.ConditionTrue, ReasonAddressesOutside,
			fmt.Sprintf("%d Service(s) keep addresses this pool no longer contains, and keep serving on them: %s",
				len(stranded), listSome(stranded)))
	} else if meta.FindStatusCondition(st.Conditions, ConditionStranded) != nil {
		set(ConditionStranded, metav1.ConditionFalse, ReasonNoneOutside, "every address in use is inside the pool")
	}
}

// strandedByPool lists, per former pool, the stranded Services and their
// addresses outside every pool, sorted.
func (t *termState) strandedByPool() map[string][]string {
	out := map[string][]string{}
	for key, ips := range t.stranded {
		for _, ip := range ips {
			if _, in := t.alloc.PoolOf(ip); in {
				continue
			}
			if p, ok := t.formerPool[ip]; ok {
				out[p] = append(out[p], fmt.Sprintf("%s (%s)", key, ip))
			}
		}
	}
	for _, l := range out {
		slices.Sort(l)
	}
	return out
}

func listSome(names []string) string {
	slices.Sort(names)
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
}
