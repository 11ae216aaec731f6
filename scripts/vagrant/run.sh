#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/vagrant/run.sh [--failover]
#
# The netns lab's scenarios (test/vm) against the Vagrant VMs, driven from
# the host over `vagrant ssh`, after `vagrant up`:
#
#   1. lbd is ready on every node (DaemonSet rolled out, /readyz).
#   2. Every Service got a VIP from the right pool: web-internal from
#      internal (10.20.1.1-127), web-external from external (.128-254).
#   3. Traffic: 100 requests from the client to each VIP all succeed and
#      reach more than one backend pod (Cluster policy).
#   4. ARP: exactly one MAC answers the client for each VIP, it is the
#      MAC of the node lbd status names as owner, and that node is the one
#      whose lbd says owned=true.
#   5. Local policy: web-local's owner runs a ready web pod.
#   6. Metrics: the owner's lbd_datapath_packets_total for the VIP grew.
#   7. --failover: the owner node of web-internal is excluded
#      (node.kubernetes.io/exclude-from-external-load-balancers); another
#      node takes the VIP over, ARP moves, traffic recovers; the label is
#      removed again.
#
# Exits non-zero at the first failed check, printing what it saw.
set -euo pipefail
cd "$(dirname "$0")/../.."

failover=false
[[ "${1:-}" == "--failover" ]] && failover=true

workers=()
for i in $(seq 1 "${LBD_WORKERS:-3}"); do workers+=("worker$i"); done
declare -A node_ip=([control]=10.20.0.21 [worker1]=10.20.0.51 [worker2]=10.20.0.52 [worker3]=10.20.0.53)

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# on VM CMD...: run CMD as root on VM, output only.
on() {
	local vm="$1"
	shift
	vagrant ssh "$vm" -c "sudo bash -c $(printf '%q' "$*")" -- -q -o LogLevel=ERROR 2>/dev/null | tr -d '\r'
}
kctl() { on control "KUBECONFIG=/etc/rancher/k3s/k3s.yaml kubectl $*"; }

# lbd_status NODE: lbd status -o json from the lbd pod on NODE.
lbd_status() {
	local pod
	pod="$(kctl -n lbd-system get pod -l app.kubernetes.io/name=lbd --field-selector spec.nodeName="$1" -o name)"
	[[ -n "$pod" ]] || fail "no lbd pod on $1"
	# Exit 3 (warnings) and 1 (errors) still print the status.
	kctl -n lbd-system exec "${pod#pod/}" -- lbd status -o json || true
}

vip_of() { kctl -n lbd-demo get svc "$1" -o "jsonpath={.status.loadBalancer.ingress[0].ip}"; }

# wait_for SECONDS DESC CMD...: retry CMD every 3 s.
wait_for() {
	local secs="$1" desc="$2"
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $desc"
		sleep 3
	done
}

# macs VIP: the distinct MACs answering the client's ARP requests for VIP.
macs() {
	on client "source /etc/lbd-vagrant.env; arping -c 3 -w 5 -I \$LBD_INTERFACE $1 || true" |
		grep -oiE '([0-9a-f]{2}:){5}[0-9a-f]{2}' | tr 'A-F' 'a-f' | sort -u
}
mac_of() { on "$1" "source /etc/lbd-vagrant.env; cat /sys/class/net/\$LBD_INTERFACE/address"; }

# load VIP PORT: 100 requests from the client; prints "<ok> <distinct hosts>".
load() {
	on client "ok=0; for i in \$(seq 100); do curl -s --max-time 2 http://$1:$2/ | awk '/^Hostname:/{print \$2}'; done" |
		awk 'NF {ok++; h[$1]=1} END {n=0; for (k in h) n++; print ok+0, n}'
}

in_range() { # in_range IP LO HI: IP is 10.20.1.x with LO <= x <= HI
	[[ "$1" == 10.20.1.* ]] || return 1
	local o="${1##*.}"
	((o >= $2 && o <= $3))
}

owner_of() { # owner_of VIP: the owner lbd status on worker1 reports (every node computes the same)
	lbd_status worker1 | jq -r --arg v "$1" '.vips[] | select(.vip == $v) | .owner'
}

step "1. lbd ready on every node"
kctl -n lbd-system rollout status ds/lbd --timeout=300s
for n in control "${workers[@]}"; do
	code="$(on client "curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://${node_ip[$n]}:9474/readyz")"
	[[ "$code" == 200 ]] || fail "$n: /readyz answered '$code'"
	ok "$n ready"
done

step "2. VIPs from the right pools"
declare -A vip
for s in web-internal web-external web-local; do
	wait_for 180 "a VIP for $s" test -n "$(vip_of "$s")"
	vip[$s]="$(vip_of "$s")"
	echo "$s: ${vip[$s]}"
done
in_range "${vip[web-internal]}" 1 127 || fail "web-internal got ${vip[web-internal]}, not from internal"
in_range "${vip[web-local]}" 1 127 || fail "web-local got ${vip[web-local]}, not from internal"
in_range "${vip[web-external]}" 128 254 || fail "web-external got ${vip[web-external]}, not from external"
ok "pools respected"

declare -A mac_node
for n in control "${workers[@]}"; do
	mac_node[$(mac_of "$n")]="$n"
done

check_vip() { # check_vip SERVICE PORT
	local s="$1" port="$2" v="${vip[$1]}" owner got res okc hosts
	owner="$(owner_of "$v")"
	[[ -n "$owner" && "$owner" != null ]] || fail "$s $v: lbd status names no owner"
	wait_for 60 "one ARP answer for $v" test "$(macs "$v" | wc -l)" -eq 1
	got="${mac_node[$(macs "$v")]:-unknown}"
	[[ "$got" == "$owner" ]] || fail "$s $v: ARP answered by $got, lbd status says owner $owner"
	[[ "$(lbd_status "$owner" | jq -r --arg v "$v" '.vips[] | select(.vip == $v) | .owned')" == true ]] ||
		fail "$s $v: lbd on $owner does not report owned=true"
	ok "$s $v: one ARP owner, $owner"

	res="$(load "$v" "$port")"
	read -r okc hosts <<<"$res"
	((okc == 100)) || fail "$s $v:$port: $okc/100 requests succeeded"
	((hosts > 1)) || [[ "$s" == web-local ]] || fail "$s $v:$port: all requests reached $hosts backend"
	ok "$s $v:$port: 100/100 from $hosts backends"
	OWNER="$owner"
}

step "3-4. traffic and ARP ownership"
check_vip web-internal 80
internal_owner="$OWNER"
check_vip web-external 80

step "5. Local policy: the owner runs a ready pod"
check_vip web-local 8080
kctl -n lbd-demo get pod -l app=web --field-selector "spec.nodeName=$OWNER,status.phase=Running" -o name | grep -q . ||
	fail "web-local is owned by $OWNER, which runs no web pod"
ok "web-local owner $OWNER runs a web pod"

step "6. metrics on the owner"
pk="$(on client "curl -s --max-time 3 http://${node_ip[$internal_owner]}:9474/metrics" |
	awk -v v="${vip[web-internal]}" '$1 ~ "^lbd_datapath_packets_total\\{" && index($1, "vip=\"" v "\"") {s += $2} END {print s+0}')"
awk -v p="$pk" 'BEGIN {exit !(p >= 100)}' || fail "lbd_datapath_packets_total for ${vip[web-internal]} on $internal_owner is $pk, want >= 100"
ok "lbd_datapath_packets_total{vip=${vip[web-internal]}} = $pk on $internal_owner"

if $failover; then
	step "7. failover of ${vip[web-internal]} away from $internal_owner"
	label=node.kubernetes.io/exclude-from-external-load-balancers
	kctl label node "$internal_owner" "$label=true" --overwrite
	trap 'kctl label node "$internal_owner" "$label-" >/dev/null || true' EXIT
	wait_for 60 "a new owner" test "$(owner_of "${vip[web-internal]}")" != "$internal_owner"
	check_vip web-internal 80
	[[ "$OWNER" != "$internal_owner" ]] || fail "VIP still on $internal_owner"
	ok "failover $internal_owner -> $OWNER"
fi

printf '\nall scenarios passed\n'
