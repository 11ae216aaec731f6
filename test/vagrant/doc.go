// SPDX-License-Identifier: Apache-2.0

// Package vagrant checks the Vagrant lab's files that can be checked
// without a hypervisor: the Vagrantfile validates (vagrant validate
// --ignore-provider), the provisioning and runner scripts parse, and the
// image that scripts/vagrant/mkimage.sh writes is a well-formed docker
// archive. Bringing the VMs up and running scripts/vagrant/run.sh needs
// libvirt or VirtualBox and is manual (docs/operations.md, "Vagrant lab").
package vagrant
