package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// Capture reads the frames an interface of a host receives, through a packet socket
// opened in the host's namespace.
type Capture struct {
	fd   int
	name string
}

// CaptureIPv4 starts capturing the IPv4 frames ifname receives.
func (h *Host) CaptureIPv4(ifname string) (*Capture, error) {
	attrs, err := h.Link(ifname)
	if err != nil {
		return nil, err
	}
	proto := htons(unix.ETH_P_IP)
	c := &Capture{fd: -1, name: h.Name + "/" + ifname}
	err = h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("%s: packet socket: %w", c.name, err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: attrs.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("%s: bind packet socket: %w", c.name, err)
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Next returns the next frame the interface received (not ones it sent), waiting at
// most timeout.
func (c *Capture) Next(timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%s: no frame within %v", c.name, timeout)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: receive: %w", c.name, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return append([]byte(nil), buf[:n]...), nil
	}
}

// Close stops the capture.
func (c *Capture) Close() error { return unix.Close(c.fd) }

// SendIPv4 sends a whole IPv4 packet, header included, as it is: the kernel fills in
// only the header checksum and total length, and never fragments it, so a test can
// send fragments in the order it chooses.
func (h *Host) SendIPv4(packet []byte, to netip.Addr) error {
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("%s: raw socket: %w", h.Name, err)
		}
		defer unix.Close(fd)
		// A test may send to a broadcast address too.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); err != nil {
			return fmt.Errorf("%s: raw socket: %w", h.Name, err)
		}
		if err := unix.Sendto(fd, packet, 0, &unix.SockaddrInet4{Addr: to.As4()}); err != nil {
			return fmt.Errorf("%s: send raw IPv4 to %v: %w", h.Name, to, err)
		}
		return nil
	})
}

// SendFrame sends a whole Ethernet frame out of ifname as it is, through a packet
// socket: for frames the host's stack would not build (a VLAN tag without a VLAN
// device, say).
func (h *Host) SendFrame(ifname string, frame []byte) error {
	attrs, err := h.Link(ifname)
	if err != nil {
		return err
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: packet socket: %w", h.Name, err)
		}
		defer unix.Close(fd)
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: attrs.Index}); err != nil {
			return fmt.Errorf("%s: send a frame out of %s: %w", h.Name, ifname, err)
		}
		return nil
	})
}

// htons puts a 16-bit protocol number in network order, as packet sockets take it.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// UDPDatagram builds an IPv4/UDP packet with valid checksums, to be cut with
// FragmentIPv4 and sent with SendIPv4.
func UDPDatagram(from, to netip.AddrPort, id uint16, payload []byte) ([]byte, error) {
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: id, Protocol: layers.IPProtocolUDP,
		SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(from.Port()), DstPort: layers.UDPPort(to.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, err
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, udp, gopacket.Payload(payload))
	return buf.Bytes(), err
}

// FragmentIPv4 cuts an IPv4 packet into fragments carrying at most maxData bytes of
// its payload each (a multiple of 8), in order.
func FragmentIPv4(packet []byte, maxData int) ([][]byte, error) {
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(packet, gopacket.NilDecodeFeedback); err != nil {
		return nil, fmt.Errorf("fragment: %w", err)
	}
	if maxData <= 0 || maxData%8 != 0 {
		return nil, fmt.Errorf("fragment: %d bytes per fragment is not a positive multiple of 8", maxData)
	}
	body := packet[ip.IHL*4:]
	var out [][]byte
	for off := 0; off < len(body); off += maxData {
		end := min(off+maxData, len(body))
		h := ip
		h.Options, h.Padding = nil, nil
		h.IHL = 5
		h.Flags = 0
		if end < len(body) {
			h.Flags = layers.IPv4MoreFragments
		}
		h.FragOffset = uint16(off / 8)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&h, gopacket.Payload(body[off:end])); err != nil {
			return nil, fmt.Errorf("fragment: %w", err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}
