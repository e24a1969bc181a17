package netcfg

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes eipgw owns (values above the kernel's own are for
// routing daemons), so Sync never touches a route somebody else made.
const RouteProtocol = netlink.RouteProtocol(0xe1)

// GatewayRoutes keeps, on the gateway, one on-link route per cut-through EIP out of
// the VPC-side interface: the instance holds the EIP there and answers ARP for it,
// and the fast path's route lookup must send the EIP's traffic that way.
type GatewayRoutes struct {
	Handle    *netlink.Handle
	Interface string
}

// Sync makes eipgw's routes on the interface exactly one per EIP.
func (g GatewayRoutes) Sync(eips []netip.Addr) error {
	link, err := g.Handle.LinkByName(g.Interface)
	if err != nil {
		return fmt.Errorf("netcfg: %s: %w", g.Interface, err)
	}
	idx := link.Attrs().Index
	have, err := g.Handle.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: idx, Protocol: RouteProtocol},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("netcfg: list routes on %s: %w", g.Interface, err)
	}
	want := map[netip.Prefix]bool{}
	for _, e := range eips {
		want[netip.PrefixFrom(e, 32)] = true
	}
	var errs []error
	for _, r := range have {
		p, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || !want[netip.PrefixFrom(p.Unmap(), 32)] {
			if err := g.Handle.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("netcfg: remove route to %v: %w", r.Dst, err))
			}
		}
	}
	for p := range want {
		r := &netlink.Route{LinkIndex: idx, Dst: ipnet(p), Scope: netlink.SCOPE_LINK, Protocol: RouteProtocol}
		if err := g.Handle.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: route to %v: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
