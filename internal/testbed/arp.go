package testbed

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// GratuitousARP announces that ip is now at the interface's MAC, as VRRP does when a
// virtual address moves (keepalived sends the same request).
func (h *Host) GratuitousARP(ifname string, ip netip.Addr) error {
	attrs, err := h.Link(ifname)
	if err != nil {
		return err
	}
	buf := gopacket.NewSerializeBuffer()
	err = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true},
		&layers.Ethernet{SrcMAC: attrs.HardwareAddr, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: attrs.HardwareAddr, SourceProtAddress: ip.AsSlice(),
			DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: ip.AsSlice()})
	if err != nil {
		return err
	}
	proto := htons(unix.ETH_P_ARP)
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("%s: packet socket: %w", h.Name, err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: attrs.Index, Protocol: proto, Halen: 6}
		copy(to.Addr[:], layers.EthernetBroadcast)
		if err := unix.Sendto(fd, buf.Bytes(), 0, to); err != nil {
			return fmt.Errorf("%s: send gratuitous ARP for %v: %w", h.Name, ip, err)
		}
		return nil
	})
}
