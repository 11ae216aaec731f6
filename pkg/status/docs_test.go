// SPDX-License-Identifier: Apache-2.0

package status

import (
	"os"
	"strings"
	"testing"
)

// TestTroubleshootingDocCoversKinds: every kind of finding has its section
// in docs/troubleshooting.md, saying what to do.
func TestTroubleshootingDocCoversKinds(t *testing.T) {
	b, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{KindNoReadyBackend, KindPoolNearlyFull, KindSplitBrain, KindPeerDown, KindFenced, KindGenericXDP} {
		if !strings.Contains(string(b), "\n### "+k+"\n") {
			t.Errorf("docs/troubleshooting.md has no \"### %s\" section", k)
		}
	}
}
