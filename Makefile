# SPDX-License-Identifier: Apache-2.0
# The single source of toolchain truth. `make demo` and `make test` work on a
# fresh Debian machine as root: they install what is missing.

CLANG ?= clang
BPF2GO_CFLAGS := -O2 -g -Wall -Werror -mcpu=v3
GO ?= go
export BPF_CLANG := $(CLANG)
export BPF_CFLAGS := $(BPF2GO_CFLAGS)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: soak k8s-bins fuzz helm-sync all build generate check-generated deps deps-bpf test test-unit test-privileged bench demo lab lab-clean lint fmt vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/lbd ./cmd/lbd

# Host packages: iproute2 for the lab; clang, llvm and libbpf only for
# `make generate` (the generated objects are committed).
deps:
	@command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	@command -v iptables-restore >/dev/null && command -v nft >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq iptables nftables)
	@command -v vagrant >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends vagrant)
	$(GO) mod download

deps-bpf:
	@command -v $(CLANG) >/dev/null && test -f /usr/include/bpf/bpf_helpers.h || \
		(apt-get update -qq && apt-get install -y -qq clang llvm libbpf-dev)

generate: deps-bpf
	cd pkg/datapath && $(GO) generate ./...

check-generated: generate
	git diff --exit-code -- pkg/datapath

# make test: unit tests with -race, then the privileged tests (BPF packet
# tests, ARP/NDP in netns, the netns lab end to end). CI runs as root with
# CI=true, so privileged tests fail instead of skipping.
# Real kube-apiserver + etcd for the Kubernetes tests (internal/kubetest),
# built from tools/k8s/go.mod into bin/. First build ~8 min; then a no-op.
k8s-bins:
	bash tools/k8s/build.sh

test: deps vet k8s-bins test-unit test-privileged

test-unit:
	$(GO) test -race -count=1 -skip Privileged ./...

test-privileged:
	LBD_PRIVILEGED_TESTS=1 $(GO) test -count=1 -p 1 -timeout 30m -run 'Privileged' ./...

# make bench: a report, not pass/fail. Datapath ns/packet and allocator,
# lbd vs kube-proxy's iptables and nftables modes in the lab, failover times.
bench: deps k8s-bins
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(GO) test -count=1 -run '^$$' -bench . -skip Privileged -benchtime 2000x ./pkg/datapath/ ./pkg/ipam/
	LBD_PRIVILEGED_TESTS=1 $(GO) test -count=1 -run '^$$' -bench BenchmarkPrivilegedSync10k -benchtime 3x ./pkg/datapath/
	LBD_PRIVILEGED_TESTS=1 $(GO) test -count=1 -run '^$$' -bench BenchmarkPrivilegedFlowEvents -benchtime 100000x ./pkg/datapath/
	$(GO) run ./test/bench/cmd/lbd-bench
	$(GO) run ./test/k8sbench
	$(GO) build -o bin/lab ./test/vm/cmd/lab && $(GO) build -o bin/podserver ./test/vm/podserver && $(GO) build -o bin/lbd ./cmd/lbd && \
	bin/lab failover-bench --lbd bin/lbd --podserver bin/podserver --runs 10 --max-time 4m && \
	bin/lab fast-mode-bench --lbd bin/lbd --podserver bin/podserver --duration 5s --runs 3

# make soak: a report, bounded (SOAK_DURATION, default 10m): mixed TCP/UDP
# traffic from 3 clients, endpoint churn every 2 s, a kill -9 failover of the
# soak VIP's owner every minute; exits 1 if a request failed outside a
# failover window.
SOAK_DURATION ?= 10m
soak: deps
	$(GO) build -o bin/lab ./test/vm/cmd/lab && $(GO) build -o bin/podserver ./test/vm/podserver && $(GO) build -o bin/lbd ./cmd/lbd && \
	bin/lab soak --lbd bin/lbd --podserver bin/podserver --duration $(SOAK_DURATION)

# make fuzz: the datapath fuzz target for a minute (make test runs its seeds).
fuzz: deps
	LBD_PRIVILEGED_TESTS=1 $(GO) test -run '^$$' -fuzz FuzzPrivilegedDatapath -fuzztime 60s ./pkg/datapath/
	$(GO) test -run '^$$' -fuzz '^FuzzPoolAddresses$$' -fuzztime 30s ./pkg/config/
	$(GO) test -run '^$$' -fuzz '^FuzzSelector$$' -fuzztime 30s ./pkg/config/
	$(GO) test -run '^$$' -fuzz '^FuzzService$$' -fuzztime 30s ./pkg/config/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 30s ./pkg/source/static/

helm-sync:
	rm -f deploy/helm/lbd/crds/*.yaml
	cp deploy/crds/*.yaml deploy/helm/lbd/crds/
	cp deploy/rbac/lbd.yaml deploy/helm/lbd/files/rbac.yaml

demo: deps
	bash scripts/lab-demo.sh demo

lab: deps
	bash scripts/lab-demo.sh up

lab-clean:
	bash scripts/lab-demo.sh clean

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...

lint: vet

clean:
	rm -rf bin
