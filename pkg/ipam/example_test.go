// SPDX-License-Identifier: Apache-2.0

package ipam

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/lbd-project/lbd/pkg/model"
)

// The reference cluster: an internal service gets an internal address and
// is refused an external one by name, with the reason.
func ExampleAllocator_Assign() {
	a, err := New(exclusivePools())
	if err != nil {
		panic(err)
	}
	foo := model.Service{Key: model.ServiceKey{Namespace: "default", Name: "foo"}}
	vips, err := a.Assign(&foo)
	fmt.Println(vips, err)

	web := model.Service{
		Key:    model.ServiceKey{Namespace: "default", Name: "web"},
		Labels: map[string]string{"lb-type": "external"},
	}
	vips, err = a.Assign(&web)
	fmt.Println(vips, err)

	foo.RequestedIPs = []netip.Addr{netip.MustParseAddr("10.20.1.130")}
	_, err = a.Assign(&foo)
	fmt.Println(errors.Is(err, ErrNotAllowed), err)
	// Output:
	// [10.20.1.1] <nil>
	// [10.20.1.128] <nil>
	// true assigning default/foo: not allowed: 10.20.1.130 is in pool external whose serviceSelector lb-type=external does not select default/foo
}
