// SPDX-License-Identifier: Apache-2.0

package lab

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/lbd-project/lbd/internal/testutil/pkt"
)

// MaxFlood caps one SYNFlood: a bounded burst, never a stress test of the
// machine.
const MaxFlood = 10000

// SYNFlood sends n TCP SYN frames from h's eth0 to dst (n capped at
// MaxFlood), each from another source port, addressed at layer 2 to
// dstMAC (the VIP owner's MAC), through a packet socket: no SYN is retried
// and no socket state is kept on h. It returns how many were sent.
func (h *Host) SYNFlood(dstMAC net.HardwareAddr, dst netip.AddrPort, n int) (int, error) {
	if err := checkTarget(dst.Addr()); err != nil {
		return 0, err
	}
	n = min(n, MaxFlood)
	sent := 0
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0: %w", err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], dstMAC)
		for i := range n {
			f := pkt.IPv4{
				SrcMAC: h.MAC, DstMAC: dstMAC,
				Src:   netip.AddrPortFrom(h.IP, uint16(20000+i%40000)),
				Dst:   dst,
				Proto: pkt.TCP, TCPFlags: pkt.SYN,
			}
			b, err := f.Build()
			if err != nil {
				return err
			}
			if err := unix.Sendto(fd, b, 0, sa); err != nil {
				return fmt.Errorf("send syn %d: %w", i, err)
			}
			sent++
		}
		return nil
	})
	if err != nil {
		return sent, fmt.Errorf("syn flood from %s: %w", h.Name, err)
	}
	return sent, nil
}
