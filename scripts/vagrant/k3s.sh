#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# k3s server (control) or agent (workers). servicelb and traefik are off:
# lbd is the cluster's only LoadBalancer implementation. Flannel runs over
# the VLAN NIC with the host-gw backend: each node's pod CIDR is a plain
# route via that node's VLAN address, which is what lbd's datapath expects
# (bpf_fib_lookup towards a remote pod must resolve to the VLAN interface
# and the peer node's MAC; with VXLAN it would name flannel.1 instead).
# LBD_K3S_CHANNEL / LBD_K3S_VERSION pin k3s (default: the stable channel).
source /vagrant/scripts/vagrant/lib.sh
iface="$(lab_iface)"

export INSTALL_K3S_CHANNEL="${LBD_K3S_CHANNEL:-stable}"
[[ -n "${LBD_K3S_VERSION:-}" ]] && export INSTALL_K3S_VERSION="$LBD_K3S_VERSION"
export K3S_TOKEN

if systemctl is-active -q k3s || systemctl is-active -q k3s-agent; then
	echo "k3s already running"
	exit 0
fi
common=(--node-ip="$LBD_NODE_IP" --flannel-iface="$iface")
case "$LBD_ROLE" in
server)
	curl -sfL https://get.k3s.io | sh -s - server "${common[@]}" \
		--disable=servicelb --disable=traefik --flannel-backend=host-gw \
		--write-kubeconfig-mode=0644 --tls-san="$LBD_CONTROL_IP" \
		--node-taint=node-role.kubernetes.io/control-plane=true:NoSchedule
	;;
agent)
	curl -sfL https://get.k3s.io | K3S_URL="https://${LBD_CONTROL_IP}:6443" sh -s - agent "${common[@]}"
	;;
*)
	echo "LBD_ROLE=$LBD_ROLE: want server or agent" >&2
	exit 1
	;;
esac
