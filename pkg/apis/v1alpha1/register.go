// SPDX-License-Identifier: Apache-2.0

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of lbd's API.
const (
	Group   = "lbd.dev"
	Version = "v1alpha1"
)

// Kinds of lbd's API.
const (
	KindIPPool         = "IPPool"
	KindL2Announcement = "L2Announcement"
)

// GroupVersion is lbd.dev/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

var (
	// SchemeBuilder registers this package's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds this package's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&IPPool{}, &IPPoolList{},
		&L2Announcement{}, &L2AnnouncementList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
