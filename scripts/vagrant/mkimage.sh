#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# mkimage.sh BINARY NAME:TAG ARCH OUT.tar
#
# Writes a `docker save` (docker-archive) image with one layer holding
# BINARY as /usr/local/bin/lbd, entrypoint lbd, CMD run: what `ctr images
# import` and `docker load` read. Pure tar and sha256sum, no daemon.
set -euo pipefail

bin="$1" ref="$2" arch="$3" dst="$4"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs/usr/local/bin"
install -m 0755 "$bin" "$work/rootfs/usr/local/bin/lbd"
# Fixed owner and mtime: the layer digest depends only on the binary.
tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 \
	-C "$work/rootfs" -cf "$work/layer.tar" .
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
cat >"$work/config.json" <<JSON
{"architecture":"$arch","os":"linux","config":{"Entrypoint":["/usr/local/bin/lbd"],"Cmd":["run"],"Env":["PATH=/usr/local/bin"],"User":"0:0"},"rootfs":{"type":"layers","diff_ids":["$diff_id"]},"history":[{"created_by":"scripts/vagrant/mkimage.sh"}]}
JSON
config="$(sha256sum "$work/config.json" | cut -d' ' -f1).json"
mv "$work/config.json" "$work/$config"
cat >"$work/manifest.json" <<JSON
[{"Config":"$config","RepoTags":["$ref"],"Layers":["layer.tar"]}]
JSON
tar -C "$work" -cf "$dst" manifest.json "$config" layer.tar
echo "image $ref ($diff_id) written to $dst"
