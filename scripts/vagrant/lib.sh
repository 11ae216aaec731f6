# SPDX-License-Identifier: Apache-2.0
#
# Sourced by the provisioning scripts (inside the VMs).

set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# lab_iface prints the interface holding LBD_NODE_IP: the VLAN NIC. Its name
# depends on the provider (eth1, enp0s8, ens6...), so nothing hard-codes it.
lab_iface() {
	local ifc
	ifc="$(ip -o -4 addr show | awk -v ip="${LBD_NODE_IP}" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}')"
	if [[ -z "$ifc" ]]; then
		echo "no interface has ${LBD_NODE_IP}" >&2
		ip -o -4 addr show >&2
		return 1
	fi
	echo "$ifc"
}
