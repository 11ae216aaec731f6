#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds the real kube-apiserver and etcd that internal/kubetest starts, from
# the pinned versions in tools/k8s/go.mod, into <repo>/bin/ (gitignored).
#
# The first build costs ~8 min of CPU and ~3 GB of build cache; afterwards the
# Go build cache makes a rebuild ~7 s, and this script skips even that when the
# binaries were built from the same go.mod, go.sum, script and Go version.
# Keep ONE set of build flags: changing them (e.g. adding -trimpath) recompiles
# all of Kubernetes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bindir="${LBD_K8S_BIN_DIR:-$repo/bin}"
GO="${GO:-go}"
# The same version as k8s.io/kubernetes in go.mod: without it the binaries
# report v0.0.0-master, which clients refuse to parse.
k8s_version="v1.37.2"
major="1"
minor="37"

stamp_file="$bindir/.k8s-tools.stamp"
stamp="$( (cat "$here/go.mod" "$here/go.sum" "$here/build.sh"; "$GO" version) | sha256sum | cut -d' ' -f1)"

if [[ "${1:-}" != "-f" && -x "$bindir/kube-apiserver" && -x "$bindir/etcd" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]]; then
	echo "k8s test binaries up to date in $bindir"
	exit 0
fi

mkdir -p "$bindir"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
done

cd "$here"
# GOWORK=off: this module must never be resolved through a workspace.
export GOWORK=off
start=$(date +%s)
echo "building kube-apiserver $k8s_version (first build ~8 min on 2 cores)"
"$GO" build -ldflags "$ldflags" -o "$bindir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
echo "building etcd"
"$GO" build -ldflags "$ldflags" -o "$bindir/etcd" go.etcd.io/etcd/server/v3
echo "$stamp" >"$stamp_file"
echo "built kube-apiserver and etcd into $bindir in $(($(date +%s) - start)) s"
