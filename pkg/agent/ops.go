// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"github.com/lbd-project/lbd/pkg/datapath"
	"github.com/lbd-project/lbd/pkg/model"
	"github.com/lbd-project/lbd/pkg/status"
)

// Datapath returns the loaded datapath once the first State has been
// reconciled, nil before (`lbd flows` reads its flow events). Reading it
// under mu after reconcile stored the State (also under mu) orders this
// read after Run's assignment of a.dp.
func (a *Agent) Datapath() *datapath.Datapath {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state == nil {
		return nil
	}
	return a.dp
}

// State returns the last reconciled State (VIPs filled in), nil before the
// first.
func (a *Agent) State() *model.State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// reconcileInfo returns the reconcile counters for the status.
func (a *Agent) reconcileInfo() status.ReconcileInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	return status.ReconcileInfo{Runs: a.reconciles, SyncErrors: a.syncErrors}
}
