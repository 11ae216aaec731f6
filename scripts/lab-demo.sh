#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds lbd, the pod server and the lab runner, then runs the netns lab:
#   scripts/lab-demo.sh [demo|up|clean] [extra flags]   (default: demo)
# Needs root. Everything runs in network namespaces the lab creates and
# removes; see test/vm/doc.go. Meant as the body of `make demo` / `make lab`.
set -euo pipefail

cd "$(dirname "$0")/.."
cmd="${1:-demo}"
[[ $# -gt 0 ]] && shift

bin="$(mktemp -d "${TMPDIR:-/tmp}/lbd-demo-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT

go build -o "$bin/lab" ./test/vm/cmd/lab
case "$cmd" in
demo | up)
	go build -o "$bin/lbd" ./cmd/lbd
	go build -o "$bin/podserver" ./test/vm/podserver
	"$bin/lab" "$cmd" --lbd "$bin/lbd" --podserver "$bin/podserver" "$@"
	;;
clean)
	"$bin/lab" clean "$@"
	;;
*)
	echo "usage: $0 [demo|up|clean] [flags]" >&2
	exit 2
	;;
esac
