// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/lbd-project/lbd/pkg/model"
)

// Service is one synthetic single-port Service as every mode under test sees
// it.
type Service struct {
	Namespace, Name string
	PortName        string
	VIP             netip.Addr
	Port            uint16
	Proto           model.Protocol
	// Backends are the endpoints; Nodes[i] is the node of Backends[i].
	Backends []netip.AddrPort
	Nodes    []string
}

// Key returns the model key of s.
func (s Service) Key() model.ServiceKey {
	return model.ServiceKey{Namespace: s.Namespace, Name: s.Name}
}

// FillerBase is the first VIP of the filler services. Fillers never receive
// traffic; their VIPs only have to be distinct from the lab's addresses.
var FillerBase = netip.MustParseAddr("10.30.0.0")

// fillerBackendBase is where filler backends live; nothing answers there and
// nothing is ever sent there.
var fillerBackendBase = netip.MustParseAddr("10.128.0.0")

// BackendsPerService is the number of backends of each filler service.
const BackendsPerService = 10

// MaxFillers bounds the filler count so VIPs stay in 10.30.0.0/18.
const MaxFillers = 16000

// Fillers returns n services "bench/svc<i>", TCP port 80, each with
// BackendsPerService backends on port 8080 spread over nodes, VIP
// FillerBase+i.
func Fillers(n int, nodes []string) ([]Service, error) { return fillers(n, nodes, 0) }

// SharedBackends is the number of distinct backend addresses the datapath
// bench's fillers cycle through.
const SharedBackends = 50000

// fillers is Fillers with backend addresses cycling through distinct
// addresses when distinct > 0.
func fillers(n int, nodes []string, distinct int) ([]Service, error) {
	if n < 0 || n > MaxFillers {
		return nil, fmt.Errorf("make %d filler services: want 0..%d", n, MaxFillers)
	}
	if len(nodes) == 0 {
		nodes = []string{"node1"}
	}
	out := make([]Service, n)
	vip := FillerBase
	be := fillerBackendBase
	for i := range out {
		vip = vip.Next()
		s := Service{
			Namespace: "bench", Name: fmt.Sprintf("svc%d", i), PortName: "http",
			VIP: vip, Port: 80, Proto: model.TCP,
		}
		for j := range BackendsPerService {
			be = be.Next()
			if distinct > 0 && (i*BackendsPerService+j)%distinct == 0 {
				be = fillerBackendBase.Next()
			}
			s.Backends = append(s.Backends, netip.AddrPortFrom(be, 8080))
			s.Nodes = append(s.Nodes, nodes[j%len(nodes)])
		}
		out[i] = s
	}
	return out, nil
}

// State returns the desired state of svcs for lbd: one model.Service per
// entry, Cluster policy, every endpoint ready.
func State(svcs []Service, nodes []model.Node) *model.State {
	st := &model.State{Nodes: nodes}
	for _, s := range svcs {
		ms := model.Service{
			Key:      s.Key(),
			Families: []model.Family{model.IPv4},
			VIPs:     []netip.Addr{s.VIP},
			Ports:    []model.ServicePort{{Name: s.PortName, Port: s.Port, Protocol: s.Proto}},
		}
		for i, b := range s.Backends {
			ms.Endpoints = append(ms.Endpoints, model.Endpoint{
				Addr: b.Addr(), NodeName: s.Nodes[i], Ready: true, Serving: true,
				Ports: []model.EndpointPort{{Name: s.PortName, Port: b.Port(), Protocol: s.Proto}},
			})
		}
		ms.Revision = revision(s)
		st.Services = append(st.Services, ms)
	}
	return st
}

// revision stands in for the Kubernetes source's model.Service.Revision
// (which comes from resourceVersions): the same Service gets the same
// one, so lbd's datapath skips unchanged services as it does in a cluster.
func revision(s Service) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, s.Namespace, "/", s.Name, s.PortName, s.VIP, s.Port, s.Proto, s.Backends, s.Nodes)
	return h.Sum64() | 1
}
