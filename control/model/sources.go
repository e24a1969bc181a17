package model

import (
	"bytes"
	"fmt"
	"github.com/eipgw/eipgw/desired"
	"net"
	"net/netip"
	"slices"
)

// DesiredSources are the sources of every registered interface (the gateway translates
// a frame from the VPC only when its source address and MAC are one of these,
// docs/security.md): each ENI's addresses
// with its MAC (an ENI eipgw is told of is one some host holds, attached here or not), each HaVip's address with the MAC of every instance it is
// associated with (whichever holds it sends), and each load balancer's VIP with its
// MAC. Interfaces registered without a MAC have none.
func DesiredSources(tx Tx) ([]desired.Source, error) {
	var out []desired.Source
	add := func(owner, ip, mac string) error {
		if mac == "" || ip == "" {
			return nil
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("%s has a damaged address %q", owner, ip)
		}
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return fmt.Errorf("%s has a damaged MAC %q", owner, mac)
		}
		out = append(out, desired.Source{Addr: a, MAC: hw})
		return nil
	}
	enis, err := list[ENI](tx, KindENI)
	if err != nil {
		return nil, err
	}
	primaryMAC := map[string]string{} // instance -> its primary ENI's MAC
	for _, e := range enis {
		if e.Primary && e.InstanceID != "" {
			primaryMAC[e.InstanceID] = e.MacAddress
		}
		for _, ip := range append([]string{e.PrimaryIP}, e.SecondaryIPs...) {
			if err := add(e.ENIID, ip, e.MacAddress); err != nil {
				return nil, err
			}
		}
	}
	havips, err := list[HaVip](tx, KindHaVip)
	if err != nil {
		return nil, err
	}
	for _, h := range havips {
		for _, in := range h.Instances {
			if err := add(h.HaVipID, h.IPAddress, primaryMAC[in]); err != nil {
				return nil, err
			}
		}
	}
	slbs, err := list[SLB](tx, KindSLB)
	if err != nil {
		return nil, err
	}
	for _, lb := range slbs {
		if err := add(lb.LoadBalancerID, lb.Address, lb.MacAddress); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b desired.Source) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return bytes.Compare(a.MAC, b.MAC)
	})
	return slices.CompactFunc(out, func(a, b desired.Source) bool {
		return a.Addr == b.Addr && bytes.Equal(a.MAC, b.MAC)
	}), nil
}
