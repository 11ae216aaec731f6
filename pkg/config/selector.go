// SPDX-License-Identifier: Apache-2.0

package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lbd-project/lbd/pkg/model"
)

// LabelSelector converts a Kubernetes label selector to a model.Selector.
// A nil selector becomes a nil model.Selector, which matches everything by
// the model's convention; an empty one ({}) matches everything too.
func LabelSelector(ls *metav1.LabelSelector) (model.Selector, error) {
	if ls == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, err
	}
	return selector{s}, nil
}

// selector adapts labels.Selector to model.Selector. labels.Selector is
// immutable once built, so Matches is safe for concurrent use.
type selector struct{ s labels.Selector }

func (s selector) Matches(l map[string]string) bool { return s.s.Matches(labels.Set(l)) }
func (s selector) String() string                   { return s.s.String() }
