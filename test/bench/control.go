// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
)

// ControlResult holds the control-plane figures of one run. A zero
// duration means "not measured"; the matching Note says why.
type ControlResult struct {
	Services int

	LBDNew, LBDSync, LBDOne time.Duration
	// LBDRSS is VmRSS (KiB) of the bench process right after the Sync: an
	// upper bound, it also holds the rule texts the bench generated.
	LBDRSS  int
	LBDNote string

	IptRestore, IptOne time.Duration
	IptNote            string

	// NftChunked is the time to load all Services in NftChunkSize-service
	// transactions; NftOne is one more service on that table.
	NftChunked time.Duration
	// NftServices is the largest count loaded in one transaction, as
	// kube-proxy's first sync does (Services unless a smaller step
	// predicted a kernel stall), NftLoad its time; NftSteps maps each
	// count tried to its load time.
	NftServices  int
	NftLoad      time.Duration
	NftOne       time.Duration
	NftSteps     map[int]time.Duration
	NftPredicted time.Duration
	NftNote      string
}

// ControlOptions configure ControlPlane.
type ControlOptions struct {
	Services int
	// Prefix names the pin dir and throwaway namespaces ("lbd-1a2b").
	Prefix string
	// Dir holds the generated rule files.
	Dir    string
	NodeIP netip.Addr
	Logf   func(string, ...any)
}

// extraService is the service added by the one-change measurements.
func extraService(n int) Service {
	s, _ := Fillers(n+1, []string{"node1", "node2", "node3"})
	return s[n]
}

var benchNodes = []string{"node1", "node2", "node3"}

// ControlPlane measures programming N services and one change at N with lbd,
// iptables-restore and nft, each in its own throwaway namespace.
func ControlPlane(ctx context.Context, o ControlOptions) (ControlResult, error) {
	r := ControlResult{Services: o.Services, NftSteps: map[int]time.Duration{}}
	svcs, err := Fillers(o.Services, benchNodes)
	if err != nil {
		return r, err
	}
	extra := extraService(o.Services)

	// lbd: load the programs and maps, then program every service, then
	// one more. MaxServices and MaxBackends leave room the way an operator
	// sizes them (10 backends each: 100 000 distinct backends).
	if err := lbdControl(o, svcs, extra, &r); err != nil {
		r.LBDNote = err.Error()
	}
	o.Logf("control: lbd new %v sync %v one %v", r.LBDNew, r.LBDSync, r.LBDOne)

	// iptables, kube-proxy's iptables shape.
	if err := iptControl(ctx, o, svcs, extra, &r); err != nil {
		r.IptNote = err.Error()
	}
	o.Logf("control: iptables-restore %v one %v %s", r.IptRestore, r.IptOne, r.IptNote)

	if err := nftControl(ctx, o, svcs, &r); err != nil {
		r.NftNote = err.Error()
	}
	o.Logf("control: nft %d services chunked %v, one %v; one transaction %d services %v %s", o.Services, r.NftChunked, r.NftOne, r.NftServices, r.NftLoad, r.NftNote)
	return r, nil
}

func lbdControl(o ControlOptions, svcs []Service, extra Service, r *ControlResult) error {
	pin := filepath.Join("/sys/fs/bpf", o.Prefix+"-bench")
	defer datapath.Cleanup(pin)
	nodes := []model.Node{{Name: "node1", Addrs: []netip.Addr{o.NodeIP}}}
	st := State(svcs, nodes)
	runtime.GC()
	start := time.Now()
	dp, err := datapath.New(datapath.Options{PinDir: pin, NodeIP4: o.NodeIP, MaxServices: 16384, MaxBackends: 1 << 17})
	if err != nil {
		return fmt.Errorf("lbd datapath: %w", err)
	}
	defer dp.Close()
	r.LBDNew = time.Since(start)
	start = time.Now()
	if _, err := dp.Sync(st, "node1"); err != nil {
		return fmt.Errorf("lbd sync %d services: %w", len(svcs), err)
	}
	r.LBDSync = time.Since(start)
	if rss, _, err := vmRSS(os.Getpid()); err == nil {
		r.LBDRSS = rss
	}
	st2 := State(append(svcs[:len(svcs):len(svcs)], extra), nodes)
	start = time.Now()
	stats, err := dp.Sync(st2, "node1")
	r.LBDOne = time.Since(start)
	if err != nil {
		return fmt.Errorf("lbd sync one more service: %w", err)
	}
	if stats.FrontendsAdded != 1 {
		return fmt.Errorf("lbd sync one more service: added %d frontends, want 1", stats.FrontendsAdded)
	}
	return nil
}

func iptControl(ctx context.Context, o ControlOptions, svcs []Service, extra Service, r *ControlResult) error {
	h, remove, err := ThrowawayNS(ctx, o.Prefix+"-cpipt")
	if err != nil {
		return err
	}
	defer remove()
	full, err := writeTemp(o.Dir, "ipt-*.rules", IptablesRestore(svcs))
	if err != nil {
		return err
	}
	one, err := writeTemp(o.Dir, "ipt-one-*.rules", IptablesAdd(extra))
	if err != nil {
		return err
	}
	if r.IptRestore, _, err = RunIn(ctx, h, 3*time.Minute, full, "iptables-restore"); err != nil {
		return err
	}
	if r.IptOne, _, err = RunIn(ctx, h, time.Minute, one, "iptables-restore", "--noflush"); err != nil {
		return err
	}
	// Flush before the namespace goes, so its teardown work is not
	// charged to whatever runs next.
	_, _, err = RunIn(ctx, h, time.Minute, "", "nft", "flush", "ruleset")
	return err
}

// NftChunkSize is the number of services per nft transaction of a chunked
// load.
const NftChunkSize = 1000

// SingleTransactionMax is the largest nft single transaction ControlPlane
// loads.
const SingleTransactionMax = 2000

// nftControl loads the full count in NftChunkSize-service transactions,
// then times one more service; and, for kube-proxy's single-transaction
// initial sync, loads single transactions of up to SingleTransactionMax
// services and predicts the full count from them.
func nftControl(ctx context.Context, o ControlOptions, svcs []Service, r *ControlResult) error {
	took, err := nftLoad(ctx, o, NftChunks(svcs, NftChunkSize), extraService(len(svcs)), r)
	if err != nil {
		return err
	}
	r.NftChunked = took
	o.Logf("control: nft -f of %d services in %d-service transactions: %v", len(svcs), NftChunkSize, took)

	// Single transactions: two steps, then a prediction for the full
	// count. The full count is never tried above SingleTransactionMax:
	// a 10 000-service transaction held a CPU in the kernel for minutes
	// here (soft lockup), whatever the prediction said.
	steps := []int{}
	for _, n := range []int{SingleTransactionMax / 2, SingleTransactionMax} {
		if n < len(svcs) {
			steps = append(steps, n)
		}
	}
	if len(svcs) <= SingleTransactionMax {
		steps = append(steps, len(svcs))
	}
	for _, n := range steps {
		took, err := nftLoad(ctx, o, []string{Nft(svcs[:n])}, Service{}, r)
		if err != nil {
			return err
		}
		r.NftSteps[n] = took
		r.NftServices, r.NftLoad = n, took
		o.Logf("control: nft -f of %d services in one transaction: %v", n, took)
	}
	if r.NftServices < len(svcs) && len(steps) == 2 {
		a, b := steps[0], steps[1]
		ta, tb := r.NftSteps[a], r.NftSteps[b]
		exp := 1.0
		if ta > 0 && tb > ta {
			exp = math.Log(float64(tb)/float64(ta)) / math.Log(float64(b)/float64(a))
		}
		r.NftPredicted = time.Duration(float64(tb) * math.Pow(float64(len(svcs))/float64(b), max(exp, 1)))
		r.NftNote = fmt.Sprintf("one transaction of %d services not tried: an attempt on this kernel ran over 2 minutes with soft lockups; extrapolating count^%.2f (%d to %d services) gives %v, which understates it",
			len(svcs), exp, a, b, r.NftPredicted.Round(100*time.Millisecond))
	}
	return nil
}

// nftLoad runs nft -f on each of texts in a fresh namespace and returns the
// total time; when extra has a VIP, it then times adding it.
func nftLoad(ctx context.Context, o ControlOptions, texts []string, extra Service, r *ControlResult) (time.Duration, error) {
	h, remove, err := ThrowawayNS(ctx, fmt.Sprintf("%s-cpnft", o.Prefix))
	if err != nil {
		return 0, err
	}
	defer remove()
	var total time.Duration
	for _, text := range texts {
		path, err := writeTemp(o.Dir, "nft-*.nft", text)
		if err != nil {
			return total, err
		}
		took, _, err := RunIn(ctx, h, 2*time.Minute, "", "nft", "-f", path)
		os.Remove(path)
		total += took
		if err != nil {
			return total, err
		}
	}
	if extra.VIP.IsValid() {
		one, err := writeTemp(o.Dir, "nft-one-*.nft", NftAdd(extra))
		if err != nil {
			return total, err
		}
		if r.NftOne, _, err = RunIn(ctx, h, time.Minute, "", "nft", "-f", one); err != nil {
			return total, err
		}
	}
	_, _, err = RunIn(ctx, h, 2*time.Minute, "", "nft", "flush", "ruleset")
	return total, err
}
