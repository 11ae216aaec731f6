#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Every VM: packages the lab uses and the kernel lbd needs.
source /vagrant/scripts/vagrant/lib.sh

kver="$(uname -r | cut -d. -f1-2)"
if ! printf '%s\n%s\n' 6.6 "$kver" | sort -V -C; then
	echo "kernel $kver: lbd needs 6.6+ (tcx); set LBD_BOX to a newer box" >&2
	exit 1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends curl ca-certificates jq iputils-arping iproute2 tcpdump >/dev/null
# systemd mounts bpffs at boot; make sure, since the DaemonSet mounts
# /sys/fs/bpf from the host and lbd runs without CAP_SYS_ADMIN.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
iface="$(lab_iface)"
echo "LBD_INTERFACE=$iface" >/etc/lbd-vagrant.env
echo "$(hostname): VLAN interface $iface ($LBD_NODE_IP), kernel $(uname -r)"
