// SPDX-License-Identifier: Apache-2.0

// Package testutil holds test helpers: privilege gating and network
// namespaces. Every test that touches interfaces runs inside a namespace it
// creates here; nothing is ever changed in the machine's own namespace.
package testutil
