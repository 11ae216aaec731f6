#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds lbd from /vagrant with the Go version of go.mod and imports it into
# k3s's containerd as docker.io/library/lbd:vagrant: a one-layer image
# holding /usr/local/bin/lbd, the same layout as the Dockerfile's, written as
# a `docker save` archive by hand so the VMs need neither Docker nor a
# registry. Runs on every cluster node (the images are per node).
source /vagrant/scripts/vagrant/lib.sh

out=/opt/lbd
image=lbd:vagrant
mkdir -p "$out"

goversion="$(awk '$1 == "go" {print $2; exit}' /vagrant/go.mod)"
arch="$(dpkg --print-architecture)"
if [[ "$(/usr/local/go/bin/go env GOVERSION 2>/dev/null)" != "go$goversion" ]]; then
	rm -rf /usr/local/go
	curl -fsSL "https://go.dev/dl/go${goversion}.linux-${arch}.tar.gz" | tar -C /usr/local -xz
fi
cd /vagrant
CGO_ENABLED=0 /usr/local/go/bin/go build -trimpath \
	-ldflags "-X main.version=vagrant-$(date -u +%Y%m%dT%H%M%SZ)" -o "$out/lbd" ./cmd/lbd

/vagrant/scripts/vagrant/mkimage.sh "$out/lbd" "$image" "$arch" "$out/lbd-image.tar"
k3s ctr images import "$out/lbd-image.tar"
k3s ctr images ls -q | grep -x "docker.io/library/$image"
