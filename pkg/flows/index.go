// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"net/netip"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
)

type frontend struct {
	vip   netip.Addr
	port  uint16
	proto model.Protocol
}

// index names what the datapath only knows by address: the Service behind
// a frontend and the node of a backend. It is built once per State.
type index struct {
	state    *model.State
	services map[frontend]string
	nodes    map[netip.Addr]string
}

func newIndex(st *model.State) *index {
	ix := &index{state: st, services: map[frontend]string{}, nodes: map[netip.Addr]string{}}
	if st == nil {
		return ix
	}
	for i := range st.Services {
		svc := &st.Services[i]
		for _, vip := range svc.VIPs {
			for _, p := range svc.Ports {
				k := frontend{vip.Unmap(), p.Port, p.Protocol}
				if _, dup := ix.services[k]; !dup {
					ix.services[k] = svc.Key.String()
				}
			}
		}
		for _, ep := range svc.Endpoints {
			if ep.NodeName != "" {
				ix.nodes[ep.Addr.Unmap()] = ep.NodeName
			}
		}
	}
	return ix
}

// event turns a datapath event into an Event.
func (ix *index) event(fe datapath.FlowEvent) Event {
	e := Event{
		Time:     fe.Time,
		Reason:   fe.Reason,
		Protocol: fe.Protocol.String(),
		Client:   fe.Client,
		VIP:      fe.VIP,
		SNATPort: fe.SNATPort,
	}
	switch {
	case fe.Type == datapath.FlowDrop:
		e.Verdict = VerdictDrop
	case fe.Type == datapath.FlowEstablished:
		e.Verdict = VerdictEstablished
	case fe.Affinity:
		e.Verdict = VerdictAffinity
	default:
		e.Verdict = VerdictNew
	}
	if !fe.NoService {
		e.Service = ix.services[frontend{fe.VIP.Addr(), fe.VIP.Port(), fe.Protocol}]
	}
	if fe.Backend.IsValid() {
		e.Backend = fe.Backend
		e.Node = ix.nodes[fe.Backend.Addr()]
	}
	return e
}
