#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Vendors the kernel uapi and libbpf headers the BPF programs include, so the
# build does not depend on the host's /usr/include layout. Pinned to the
# Debian 12 packages named below; rerun after changing them and commit.
#   linux-libc-dev 6.1.x (uapi), libbpf-dev 1:1.1.2 (bpf_helpers.h & co)
set -euo pipefail
cd "$(dirname "$0")"
arch=/usr/include/x86_64-linux-gnu
files=(
  asm-generic/bitsperlong.h asm-generic/int-ll64.h asm-generic/posix_types.h asm-generic/types.h
  bpf/bpf_endian.h bpf/bpf_helper_defs.h bpf/bpf_helpers.h
  linux/bpf.h linux/bpf_common.h linux/byteorder/little_endian.h linux/const.h linux/if_ether.h
  linux/in.h linux/in6.h linux/ip.h linux/ipv6.h linux/libc-compat.h linux/pkt_cls.h
  linux/pkt_sched.h linux/posix_types.h linux/socket.h linux/stddef.h linux/swab.h linux/tcp.h
  linux/types.h linux/udp.h
)
for f in "${files[@]}"; do mkdir -p "$(dirname "$f")"; cp "/usr/include/$f" "$f"; done
for f in bitsperlong.h byteorder.h posix_types.h posix_types_64.h swab.h types.h; do
  mkdir -p asm; cp "$arch/asm/$f" "asm/$f"
done
