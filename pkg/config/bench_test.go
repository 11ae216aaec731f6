// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// BenchmarkConverterOneChange10k: what the Kubernetes source spends on
// one EndpointSlice change among 10 000 Services of 10 endpoints each
// (the conversion of the whole cluster into a State, unchanged objects
// remembered).
func BenchmarkConverterOneChange10k(b *testing.B) {
	const n = 10000
	var r Resources
	for i := range n {
		s := svc(fmt.Sprintf("svc%d", i))
		s.UID, s.ResourceVersion = types.UID(fmt.Sprintf("svc-%d", i)), "1"
		r.Services = append(r.Services, s)
		var eps []discoveryv1.Endpoint
		for k := range 10 {
			b := i*10 + k
			eps = append(eps, ep(fmt.Sprintf("10.%d.%d.%d", 64+b>>16, byte(b>>8), byte(b))))
		}
		es := slice(s.Name+"-1", s.Name, discoveryv1.AddressTypeIPv4, httpPort, eps...)
		es.UID, es.ResourceVersion = types.UID(fmt.Sprintf("es-%d", i)), "1"
		r.EndpointSlices = append(r.EndpointSlices, es)
	}
	c := NewConverter(Options{})
	if _, err := c.For(r); err != nil {
		b.Fatal(err)
	}
	rv := 1
	for b.Loop() {
		rv++
		r.EndpointSlices[42].ResourceVersion = fmt.Sprint(rv)
		if _, err := c.For(r); err != nil {
			b.Fatal(err)
		}
	}
}
