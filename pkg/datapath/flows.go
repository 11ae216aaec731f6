// SPDX-License-Identifier: Apache-2.0

package datapath

// Flow events (bpf/lib/flow.h) for `lbd flows`. The programs emit them only
// while flow_enabled is set, which OpenFlows does and FlowReader.Close
// undoes, so a node nobody watches pays one branch per VIP packet.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/pkg/model"
)

// FlowType is the kind of a flow event.
type FlowType string

// Flow event types, as emitted by bpf/lib/flow.h.
const (
	FlowNew         FlowType = "new"
	FlowDrop        FlowType = "drop"
	FlowEstablished FlowType = "established"
)

// FlowEvent is one decoded flow event. Backend and SNATPort are zero for
// drops; ServiceID is meaningless when NoService is set.
type FlowEvent struct {
	Time      time.Time
	Type      FlowType
	Reason    string // ReasonName of the datapath reason ("fwd", "drop_src_range", ...)
	Protocol  model.Protocol
	Client    netip.AddrPort
	VIP       netip.AddrPort
	Backend   netip.AddrPort
	SNATPort  uint16
	ServiceID uint32
	Affinity  bool // backend from the client's sessionAffinity entry
	SNAT      bool // source rewritten to the node (remote backend)
	NoService bool // no frontend matched the port
}

// ErrFlowsBusy is returned by OpenFlows while another FlowReader is open:
// the ring buffer has one consumer, and callers fan its events out.
var ErrFlowsBusy = errors.New("flow events already have a reader")

// flowPoll is how often Read looks into the ring buffer when no wakeup
// came: the programs wake the reader only once LB_FLOW_WAKEUP_BYTES are
// pending (bpf/lib/flow.h), so a trickle of events is seen within this.
const flowPoll = 100 * time.Millisecond

// FlowReader reads flow events. Not safe for concurrent use, except Close,
// which unblocks a pending Read.
type FlowReader struct {
	d        *Datapath
	rd       *ringbuf.Reader
	boot     time.Time // wall clock at CLOCK_MONOTONIC zero, for event times
	rec      ringbuf.Record
	deadline time.Time // the caller's (SetDeadline); zero: none
}

// OpenFlows turns flow events on and returns their reader. sample makes one
// in sample packets of established flows emit an event too (0: none); new
// flows and drops are always emitted. Returns ErrFlowsBusy while another
// reader is open.
func (d *Datapath) OpenFlows(sample uint32) (*FlowReader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flowsOpen {
		return nil, ErrFlowsBusy
	}
	rd, err := ringbuf.NewReader(d.objs.LbFlowEvents)
	if err != nil {
		return nil, fmt.Errorf("open flow ring buffer: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		rd.Close()
		return nil, fmt.Errorf("read monotonic clock: %w", err)
	}
	boot := time.Now().Add(-time.Duration(ts.Nano()))
	if err := d.objs.FlowSample.Set(sample); err != nil {
		rd.Close()
		return nil, fmt.Errorf("set flow sampling: %w", err)
	}
	if err := d.objs.FlowEnabled.Set(uint32(1)); err != nil {
		rd.Close()
		return nil, fmt.Errorf("enable flow events: %w", err)
	}
	d.flowsOpen = true
	return &FlowReader{d: d, rd: rd, boot: boot}, nil
}

// Read blocks until the next event. After Close it returns an error
// wrapping ringbuf.ErrClosed (os.ErrClosed).
func (r *FlowReader) Read() (FlowEvent, error) {
	for {
		poll := time.Now().Add(flowPoll)
		if !r.deadline.IsZero() && r.deadline.Before(poll) {
			poll = r.deadline
		}
		r.rd.SetDeadline(poll)
		err := r.rd.ReadInto(&r.rec)
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && (r.deadline.IsZero() || time.Now().Before(r.deadline)) {
			continue // a poll found nothing: look again
		}
		return FlowEvent{}, fmt.Errorf("read flow event: %w", err)
	}
	var e lbLbFlowEvent
	if err := binary.Read(bytes.NewReader(r.rec.RawSample), binary.NativeEndian, &e); err != nil {
		return FlowEvent{}, fmt.Errorf("decode flow event: %w", err)
	}
	return r.decode(&e), nil
}

// SetDeadline makes Read return an error wrapping os.ErrDeadlineExceeded
// once t passes without an event; the zero time waits forever.
func (r *FlowReader) SetDeadline(t time.Time) { r.deadline = t }

func (r *FlowReader) decode(e *lbLbFlowEvent) FlowEvent {
	ap := func(a [16]uint8, port uint16) netip.AddrPort {
		return netip.AddrPortFrom(fromKeyAddr(a), htons(port))
	}
	out := FlowEvent{
		Time:      r.boot.Add(time.Duration(e.Ts)),
		Reason:    ReasonName(uint32(e.Reason)),
		Protocol:  model.Protocol(e.Proto),
		Client:    ap(e.Client, e.Cport),
		VIP:       ap(e.Vip, e.Vport),
		ServiceID: e.SvcId,
		Affinity:  e.Flags&uint8(lbLbFlowFlagsLB_FLOW_F_AFFINITY) != 0,
		SNAT:      e.Flags&uint8(lbLbFlowFlagsLB_FLOW_F_SNAT) != 0,
		NoService: e.Flags&uint8(lbLbFlowFlagsLB_FLOW_F_NO_SVC) != 0,
	}
	switch lbLbFlowType(e.Type) {
	case lbLbFlowTypeLB_FLOW_NEW:
		out.Type = FlowNew
	case lbLbFlowTypeLB_FLOW_DROP:
		out.Type = FlowDrop
	case lbLbFlowTypeLB_FLOW_ESTABLISHED:
		out.Type = FlowEstablished
	default:
		out.Type = FlowType(fmt.Sprintf("type_%d", e.Type))
	}
	if out.Type != FlowDrop {
		out.Backend = ap(e.Backend, e.Bport)
		out.SNATPort = htons(e.SnatPort)
	}
	return out
}

// Close turns flow events off and releases the reader; a blocked Read
// returns.
func (r *FlowReader) Close() error {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	if !r.d.flowsOpen {
		return nil
	}
	r.d.flowsOpen = false
	err := r.d.objs.FlowEnabled.Set(uint32(0))
	if cerr := r.rd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close flow events: %w", err)
	}
	return nil
}

// FlowStats returns how many flow events the programs wrote and how many
// they dropped because the ring buffer was full, since load.
func (d *Datapath) FlowStats() (emitted, lost uint64, err error) {
	for s, dst := range map[lbLbFlowStat]*uint64{
		lbLbFlowStatLB_FLOW_S_EMITTED: &emitted,
		lbLbFlowStatLB_FLOW_S_LOST:    &lost,
	} {
		var per []uint64
		if err := d.objs.LbFlowStats.Lookup(uint32(s), &per); err != nil {
			return 0, 0, fmt.Errorf("read flow event counters: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return emitted, lost, nil
}
