package dataplane

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// What the kernel's FIB answers, read from its tables, for the next-hop cache. Only
// what is unambiguous is cached: the main table under the three default policy rules,
// unicast routes with one path, on a link that is up, to a neighbour in a state the
// FIB would use. Anything else is left to bpf_fib_lookup.

// nudValid are the neighbour states bpf_fib_lookup sends to (the kernel's NUD_VALID).
const nudValid = unix.NUD_PERMANENT | unix.NUD_NOARP | unix.NUD_REACHABLE | unix.NUD_PROBE | unix.NUD_STALE | unix.NUD_DELAY

// defaultRules are the policy rules of a kernel nobody configured: local, main,
// default. Any other makes a destination's route depend on more than its address.
var defaultRules = map[[2]int]bool{
	{0, unix.RT_TABLE_LOCAL}:       true,
	{32766, unix.RT_TABLE_MAIN}:    true,
	{32767, unix.RT_TABLE_DEFAULT}: true,
}

type neighKey struct {
	ifindex int
	addr    netip.Addr
}

// fibTables is one reading of the kernel's tables.
type fibTables struct {
	main   []netlink.Route // unicast and other types, main table
	local  []netip.Prefix  // the local table's prefixes (the host's own and broadcast addresses)
	links  map[int]netlink.Link
	neighs map[neighKey]net.HardwareAddr
}

// ReadNextHops computes the next-hop cache's content from the tables of the namespace
// nl works in, with the hops of addrs (VPC addresses).
func ReadNextHops(nl *netlink.Handle, addrs []netip.Addr) (NextHops, error) {
	out := NextHops{ByAddr: map[netip.Addr]NextHop{}}
	rules, err := nl.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return out, fmt.Errorf("read policy rules: %w", err)
	}
	for _, r := range rules {
		if !defaultRules[[2]int{r.Priority, r.Table}] || r.Src != nil || r.Dst != nil || r.Mark != 0 ||
			r.IifName != "" || r.OifName != "" || r.Tos != 0 || r.Invert {
			return out, nil // policy routing: not cached
		}
	}
	t, err := readFIBTables(nl)
	if err != nil {
		return out, err
	}
	for _, r := range t.main {
		if r.Tos != 0 {
			return out, nil // routes by TOS: not cached
		}
	}
	out.Enabled = true
	for _, r := range t.main {
		if p, ok := routePrefix(r); ok && p.Bits() != 0 {
			out.Specific = append(out.Specific, p)
		}
	}
	out.Specific = append(out.Specific, t.local...)
	if hop, ok := t.hopOf(netip.IPv4Unspecified(), true); ok {
		out.Default = &hop
	}
	for _, a := range addrs {
		if hop, ok := t.hopOf(a, false); ok {
			out.ByAddr[a] = hop
		}
	}
	return out, nil
}

func readFIBTables(nl *netlink.Handle) (*fibTables, error) {
	t := &fibTables{links: map[int]netlink.Link{}, neighs: map[neighKey]net.HardwareAddr{}}
	routes, err := nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	for _, r := range routes {
		switch r.Table {
		case unix.RT_TABLE_MAIN:
			t.main = append(t.main, r)
		case unix.RT_TABLE_LOCAL:
			if p, ok := routePrefix(r); ok {
				t.local = append(t.local, p)
			}
		case unix.RT_TABLE_DEFAULT:
			// The default table is consulted after main: a route there could answer a
			// destination main has none for. Treat it as specific.
			if p, ok := routePrefix(r); ok {
				t.local = append(t.local, p)
			}
		}
	}
	links, err := nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("read links: %w", err)
	}
	for _, l := range links {
		t.links[l.Attrs().Index] = l
	}
	neighs, err := nl.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("read neighbours: %w", err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&nudValid == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		t.neighs[neighKey{n.LinkIndex, a.Unmap()}] = n.HardwareAddr
	}
	return t, nil
}

// routePrefix is a route's destination (0.0.0.0/0 for a default route).
func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	}
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := r.Dst.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// hopOf is the hop to dst as the FIB would find it (the default route's own when
// defaultRoute is set), if it can be cached.
func (t *fibTables) hopOf(dst netip.Addr, defaultRoute bool) (NextHop, bool) {
	for _, p := range t.local {
		if p.Contains(dst) && !defaultRoute {
			return NextHop{}, false // the host's own, or a default-table route
		}
	}
	// Longest prefix, then the lowest metric; two equal best routes are ambiguous.
	var best *netlink.Route
	bestBits, ties := -1, 0
	for i := range t.main {
		r := &t.main[i]
		p, ok := routePrefix(*r)
		if !ok || (defaultRoute && p.Bits() != 0) || !p.Contains(dst) {
			continue
		}
		switch {
		case p.Bits() > bestBits || (p.Bits() == bestBits && r.Priority < best.Priority):
			best, bestBits, ties = r, p.Bits(), 0
		case p.Bits() == bestBits && r.Priority == best.Priority:
			ties++
		}
	}
	if best == nil || ties != 0 || best.Type != unix.RTN_UNICAST || len(best.MultiPath) != 0 {
		return NextHop{}, false
	}
	link, ok := t.links[best.LinkIndex]
	if !ok {
		return NextHop{}, false
	}
	attrs := link.Attrs()
	if attrs.Flags&net.FlagUp == 0 || (attrs.OperState != netlink.OperUp && attrs.OperState != netlink.OperUnknown) ||
		len(attrs.HardwareAddr) != 6 {
		return NextHop{}, false
	}
	via := dst
	if best.Gw != nil {
		gw, ok := netip.AddrFromSlice(best.Gw)
		if !ok {
			return NextHop{}, false
		}
		via = gw.Unmap()
	} else if defaultRoute {
		return NextHop{}, false // a default route without a gateway: each destination is its own neighbour
	}
	mac, ok := t.neighs[neighKey{best.LinkIndex, via}]
	if !ok {
		return NextHop{}, false
	}
	mtu := attrs.MTU
	if best.MTU > 0 && best.MTU < mtu {
		mtu = best.MTU
	}
	return NextHop{IfIndex: attrs.Index, DstMAC: mac, SrcMAC: attrs.HardwareAddr, MTU: mtu}, true
}
