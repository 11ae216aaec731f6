// SPDX-License-Identifier: Apache-2.0

// Package status is lbd's local status API: the daemon serves a JSON
// snapshot over a unix socket (HTTP), and `lbd status` fetches and renders
// it. The socket is created mode 0600 (root only) unless a group is given.
package status
