// SPDX-License-Identifier: Apache-2.0

// Package pkt builds and checks Ethernet frames for datapath tests: frames
// are built with gopacket, and checked by an independent decoder that
// recomputes every checksum from scratch (RFC 1071), so a test never trusts
// the code that built a frame to also judge it.
package pkt
