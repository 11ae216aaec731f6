#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# On control: install lbd the documented way (CRDs, RBAC, deploy/lbd.yaml,
# the reference pools) with two lab substitutions in the DaemonSet: the
# locally imported image and the VLAN interface's name on these VMs. Then
# the test workloads. Workers that join later get the DaemonSet pod and
# their share of the workloads as they come.
source /vagrant/scripts/vagrant/lib.sh
source /etc/lbd-vagrant.env
export KUBECONFIG=/etc/rancher/k3s/k3s.yaml

for _ in $(seq 60); do
	kubectl get --raw /readyz >/dev/null 2>&1 && break
	sleep 5
done
kubectl apply -f /vagrant/deploy/crds -f /vagrant/deploy/rbac
kubectl wait --for condition=established --timeout=60s crd/ippools.lbd.dev crd/l2announcements.lbd.dev
# Every node uses the same box and provider, so control's interface name
# is every node's.
sed -e 's#image: ghcr.io/lbd-project/lbd:.*#image: docker.io/library/lbd:vagrant#' \
	-e 's#imagePullPolicy: IfNotPresent#imagePullPolicy: Never#' \
	-e "/name: LBD_INTERFACE/{n;s#value: .*#value: ${LBD_INTERFACE}#}" \
	/vagrant/deploy/lbd.yaml | kubectl apply -f -
kubectl apply -f /vagrant/deploy/examples/reference-pools.yaml
kubectl apply -f /vagrant/scripts/vagrant/workloads.yaml
# Restart picks up a rebuilt image on re-provisioning (same tag).
kubectl -n lbd-system rollout restart ds/lbd
echo "deployed; run scripts/vagrant/run.sh on the host"
