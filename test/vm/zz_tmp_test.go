// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestPrivilegedLabTmpUDP(t *testing.T) {
	l := labWithLBD(t, Options{})
	ctx := t.Context()
	c := l.Client()
	svc := ExtraService{Name: "soak"}
	l.ApplyServices(svc)
	v, owner, err := l.WaitService(ctx, svc.Key(), l.Pods(), serviceWait)
	if err != nil {
		t.Fatal(err)
	}
	udpT := netip.AddrPortFrom(v.VIP, ServiceUDPPort)
	type fail struct {
		at    time.Duration
		local netip.AddrPort
		err   error
	}
	var fails []fail
	ports := map[uint16]int{}
	start := time.Now()
	go func() {
		pods := l.Pods()
		for i := 0; time.Since(start) < 80*time.Second; i++ {
			s := svc
			s.Endpoints = []*Pod{pods[i%6], pods[(i+1)%6], pods[(i+3)%6]}
			s.Terminating = []*Pod{pods[(i+2)%6]}
			l.WriteServices(s)
			time.Sleep(2 * time.Second)
		}
	}()
	var phase []string
	for i := 0; time.Since(start) < 80*time.Second; i++ {
		if i > 0 && i%600 == 0 {
			phase = append(phase, time.Since(start).String()+" kill")
			owner.LBD.Signal(syscall.SIGKILL)
			<-owner.LBD.done
			l.WaitOwner(ctx, v.VIP, owner, 10*time.Second)
			l.StartNodeLBD(ctx, owner, true)
			l.WaitOwner(ctx, v.VIP, nil, 10*time.Second)
			phase = append(phase, time.Since(start).String()+" back")
		}
		var local netip.AddrPort
		err := c.Do(func() error {
			var d net.Dialer
			cc, err := d.DialContext(ctx, "udp4", udpT.String())
			if err != nil {
				return err
			}
			defer cc.Close()
			local = netip.MustParseAddrPort(cc.LocalAddr().String())
			cc.SetDeadline(time.Now().Add(time.Second))
			cc.Write([]byte("x"))
			b := make([]byte, 100)
			_, err = cc.Read(b)
			return err
		})
		ports[local.Port()]++
		if err != nil {
			fails = append(fails, fail{time.Since(start), local, err})
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = context.Background
	ct, _ := owner.ConntrackFlows()
	rev, _ := owner.RevnatClients()
	st, _ := l.DatapathStatus(ctx, owner)
	t.Logf("phases %v", phase)
	t.Logf("reasons %v", st.Reasons)
	reused := 0
	for _, n := range ports {
		if n > 1 {
			reused++
		}
	}
	t.Logf("%d fails, %d distinct ports, %d reused", len(fails), len(ports), reused)
	for i, f := range fails {
		if i > 15 {
			break
		}
		inCT := slices.ContainsFunc(ct, func(fl Flow) bool { return fl.Src == f.local && fl.Proto == 17 })
		t.Logf("fail at %s %s uses=%d inCT=%v inRev=%v: %v", f.at, f.local, ports[f.local.Port()], inCT, slices.Contains(rev, f.local), f.err)
	}
}
