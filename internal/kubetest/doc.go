// SPDX-License-Identifier: Apache-2.0

// Package kubetest runs a real, throwaway Kubernetes control plane (etcd and
// kube-apiserver, loopback only) for tests of lbd's Kubernetes code.
//
// The binaries are built from pinned Go modules by tools/k8s/build.sh into
// <repo>/bin (or $LBD_K8S_BIN_DIR). [Start] skips the test when they are
// missing, except in CI (CI=true) or with LBD_KUBE_TESTS=1, where it fails:
// CI must never silently skip the tests that prove lbd works against a real
// API server.
//
// Each cluster gets free loopback ports and temporary directories, lbd's
// CRDs (deploy/crds) and RBAC (deploy/rbac) installed, and two identities:
// an all-powerful admin for setting up fixtures, and lbd's own ServiceAccount
// bound only to deploy/rbac, for the code under test. No node, kubelet,
// scheduler or controller-manager runs: objects are created directly.
package kubetest
