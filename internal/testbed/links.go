package testbed

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/eipgw/eipgw/internal/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Veth joins two hosts with a veth pair and brings both ends up.
func Veth(a *Host, aName string, b *Host, bName string) error {
	la := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.ns)),
	}
	if err := a.nl.LinkAdd(la); err != nil {
		return fmt.Errorf("veth %s/%s - %s/%s: %w", a.Name, aName, b.Name, bName, err)
	}
	if err := a.LinkUp(aName); err != nil {
		return err
	}
	return b.LinkUp(bName)
}

// LinkUp sets an interface up.
func (h *Host) LinkUp(name string) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, name, err)
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s: %s up: %w", h.Name, name, err)
	}
	return nil
}

// Bridge creates a bridge, enslaves ports to it and brings it up.
func (h *Host) Bridge(name string, ports ...string) error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.nl.LinkAdd(br); err != nil {
		return fmt.Errorf("%s: bridge %s: %w", h.Name, name, err)
	}
	for _, p := range ports {
		l, err := h.nl.LinkByName(p)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", h.Name, p, err)
		}
		if err := h.nl.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("%s: enslave %s to %s: %w", h.Name, p, name, err)
		}
	}
	return h.LinkUp(name)
}

// Addr adds an address in CIDR form to an interface.
func (h *Host) Addr(ifname, cidr string) error {
	return h.changeAddr("add", h.nl.AddrAdd, ifname, cidr)
}

// DelAddr removes an address in CIDR form from an interface.
func (h *Host) DelAddr(ifname, cidr string) error {
	return h.changeAddr("remove", h.nl.AddrDel, ifname, cidr)
}

func (h *Host) changeAddr(verb string, op func(netlink.Link, *netlink.Addr) error, ifname, cidr string) error {
	l, err := h.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, ifname, err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := op(l, a); err != nil {
		return fmt.Errorf("%s: %s %s on %s: %w", h.Name, verb, cidr, ifname, err)
	}
	return nil
}

// Route adds a route to dst ("default" or a CIDR) via a gateway address, or out of
// ifname directly when via is empty.
func (h *Host) Route(dst, via, ifname string) error {
	r := &netlink.Route{}
	if dst != "default" {
		_, n, err := net.ParseCIDR(dst)
		if err != nil {
			return err
		}
		r.Dst = n
	}
	if via != "" {
		r.Gw = net.ParseIP(via)
	}
	if ifname != "" {
		l, err := h.nl.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", h.Name, ifname, err)
		}
		r.LinkIndex = l.Attrs().Index
	}
	if err := h.nl.RouteAdd(r); err != nil {
		return fmt.Errorf("%s: route %s via %s dev %s: %w", h.Name, dst, via, ifname, err)
	}
	return nil
}

// Neigh adds a permanent neighbour entry.
func (h *Host) Neigh(ifname string, ip netip.Addr, mac net.HardwareAddr) error {
	l, err := h.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, ifname, err)
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
		IP: net.IP(ip.AsSlice()), HardwareAddr: mac}
	if err := h.nl.NeighSet(n); err != nil {
		return fmt.Errorf("%s: neighbour %v on %s: %w", h.Name, ip, ifname, err)
	}
	return nil
}

// Link returns an interface's attributes.
func (h *Host) Link(name string) (*netlink.LinkAttrs, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", h.Name, name, err)
	}
	return l.Attrs(), nil
}

// SetTXChecksum turns transmit checksum offload on or off: with it on, a veth hands
// packets on with CHECKSUM_PARTIAL (only the pseudo-header sum in the L4 checksum).
func (h *Host) SetTXChecksum(ifname string, on bool) error {
	return h.ethtool(ifname, ethtool.SetTXChecksum, on)
}

// SetGRO turns GRO on or off. On a veth, GRO gives the receiving side the NAPI
// context that XDP_REDIRECT into the veth needs.
func (h *Host) SetGRO(ifname string, on bool) error {
	return h.ethtool(ifname, ethtool.SetGRO, on)
}

func (h *Host) ethtool(ifname string, cmd uint32, on bool) error {
	var data uint32
	if on {
		data = 1
	}
	return h.Do(func() error {
		_, err := ethtool.Value(ifname, cmd, data)
		return wrapHost(h, err)
	})
}

// SetTXVLANOffload turns transmit VLAN offload on or off. Off, a frame forwarded out of
// the interface carries its VLAN tag in its bytes, as on a physical wire; on, a veth
// passes the tag on in the packet's metadata, where an XDP program cannot see it.
func (h *Host) SetTXVLANOffload(ifname string, on bool) error {
	return h.Do(func() error { return wrapHost(h, ethtool.SetFlag(ifname, ethtool.FlagTXVLAN, on)) })
}

func wrapHost(h *Host, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}

// SetMTU sets an interface's MTU.
func (h *Host) SetMTU(name string, mtu int) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, name, err)
	}
	if err := h.nl.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("%s: %s mtu %d: %w", h.Name, name, mtu, err)
	}
	return nil
}

// Enslave attaches a port to an existing bridge.
func (h *Host) Enslave(port, bridge string) error {
	p, err := h.nl.LinkByName(port)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, port, err)
	}
	br, err := h.nl.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, bridge, err)
	}
	if err := h.nl.LinkSetMaster(p, br); err != nil {
		return fmt.Errorf("%s: enslave %s to %s: %w", h.Name, port, bridge, err)
	}
	return nil
}

// MAC is the hardware address of the host's interface.
func (h *Host) MAC(ifname string) (net.HardwareAddr, error) {
	l, err := h.Link(ifname)
	if err != nil {
		return nil, err
	}
	return l.HardwareAddr, nil
}

// AddrNoPrefixRoute adds an address as `ip addr add CIDR dev IF noprefixroute metric
// M` does: no broadcast address, the noprefixroute flag and a route metric, which the
// netlink library's AddrAdd cannot express (it always adds a broadcast address).
func (h *Host) AddrNoPrefixRoute(ifname, cidr string, metric uint32) error {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("%s: %q is not an IPv4 prefix", h.Name, cidr)
	}
	l, err := h.nl.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", h.Name, ifname, err)
	}
	u32 := func(v uint32) []byte {
		b := make([]byte, 4)
		binary.NativeEndian.PutUint32(b, v)
		return b
	}
	return h.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
		msg := nl.NewIfAddrmsg(unix.AF_INET)
		msg.Index = uint32(l.Attrs().Index)
		msg.Prefixlen = uint8(pfx.Bits())
		req.AddData(msg)
		ip := pfx.Addr().AsSlice()
		req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip))
		req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, ip))
		req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, u32(unix.IFA_F_NOPREFIXROUTE)))
		req.AddData(nl.NewRtAttr(unix.IFA_RT_PRIORITY, u32(metric)))
		if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w", h.Name, cidr, ifname, err)
		}
		return nil
	})
}
