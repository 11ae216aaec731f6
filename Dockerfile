# SPDX-License-Identifier: Apache-2.0
#
# The lbd image: one static binary on an empty base.
#
#   docker build -t ghcr.io/lbd-project/lbd:$(git describe --always) .
#
# The BPF object (pkg/datapath/lb_bpfel.o) is committed, so the build needs
# no clang; CGO is off, so the binary needs no libc and runs FROM scratch.
# This image was not built in lbd's own CI sandbox (no registry there); the
# Vagrant lab builds an equivalent image without Docker
# (scripts/vagrant/build-image.sh).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
	-o /out/lbd ./cmd/lbd

FROM scratch
COPY --from=build /out/lbd /usr/local/bin/lbd
# scratch has no PATH of its own; kubectl exec ds/lbd -- lbd status needs one.
ENV PATH=/usr/local/bin
# lbd needs uid 0 for its capabilities to be effective (see deploy/lbd.yaml);
# everything else is dropped by the pod's securityContext.
USER 0:0
ENTRYPOINT ["/usr/local/bin/lbd"]
CMD ["run"]
