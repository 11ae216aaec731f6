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

.PHONY: all build generate check-generated deps deps-bpf test test-unit test-privileged bench demo lab lab-clean lint fmt vet clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/lbd ./cmd/lbd

# Host packages: iproute2 for the lab; clang, llvm and libbpf only for
# `make generate` (the generated objects are committed).
deps:
	@command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
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
test: deps vet test-unit test-privileged

test-unit:
	$(GO) test -race -count=1 -skip Privileged ./...

test-privileged:
	LBD_PRIVILEGED_TESTS=1 $(GO) test -count=1 -p 1 -run 'Privileged' ./...

bench: deps
	LBD_PRIVILEGED_TESTS=1 $(GO) test -count=1 -p 1 -run '^$$' -bench . -benchtime 2000x ./pkg/datapath/ ./pkg/ipam/

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
