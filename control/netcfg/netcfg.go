// Package netcfg does the instance-side netlink work of cut-through EIPs: the EIP on
// the secondary ENI's interface (replacing its private address in BINDED mode, beside
// it in MULTI_BINDED mode), 100.64.0.0/10 routed through the primary ENI (the range a
// cut-through ENI can no longer reach), and the EIP's own traffic routed out of the
// secondary ENI to the EIP gateway by a source rule. Undo puts the interfaces back
// exactly as they were, from what Apply recorded (saved.go). It touches only the interfaces a Plan names.
package netcfg

import (
	"errors"
	"fmt"
	"github.com/eipgw/eipgw/desired"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// InternalServices is the range reserved for the cloud's internal services.
var InternalServices = netip.MustParsePrefix("100.64.0.0/10")

// Modes, as the API names them.
const (
	ModeBinded = "BINDED"
	ModeMulti  = "MULTI_BINDED"
)

// Plan is the configuration of one cut-through ENI inside its instance.
type Plan struct {
	Interface      string       // the secondary ENI's interface
	Mode           string       // BINDED or MULTI_BINDED
	PrivateAddr    netip.Prefix // the ENI's private address; BINDED mode removes it
	EIPs           []netip.Addr // installed as /32: the pool is not on-link
	EIPGateway     netip.Addr   // next hop of the EIPs' traffic, reached on-link
	Primary        string       // the primary ENI's interface
	PrimaryGateway netip.Addr   // next hop of 100.64.0.0/10 through it
	Table          int          // routing table for the EIPs' traffic
	RulePriority   int          // priority of the source rules
}

func (p Plan) check() error {
	switch {
	case p.Interface == "" || p.Primary == "" || p.Interface == p.Primary:
		return errors.New("netcfg: the plan needs a secondary and a primary interface, not the same")
	case p.Mode != ModeBinded && p.Mode != ModeMulti:
		return fmt.Errorf("netcfg: unknown mode %q", p.Mode)
	case p.Mode == ModeBinded && len(p.EIPs) != 1:
		return errors.New("netcfg: BINDED mode takes exactly one EIP")
	case len(p.EIPs) == 0 || len(p.EIPs) > desired.MaxCutThroughEIPs:
		return fmt.Errorf("netcfg: between 1 and %d EIPs", desired.MaxCutThroughEIPs)
	case !p.EIPGateway.Is4() || !p.PrimaryGateway.Is4() || !p.PrivateAddr.IsValid():
		return errors.New("netcfg: the EIP gateway, the primary gateway and the private address are required")
	case p.Table <= 0 || p.Table >= 252 || p.RulePriority <= 0:
		return errors.New("netcfg: a routing table from 1 to 251 and a rule priority are required")
	}
	return nil
}

// Apply configures the plan and returns what it found before, for Undo to put back
// exactly; applying it again changes nothing. Apply and Undo run in the network
// namespace of the calling thread, which h must work on too.
func Apply(h *netlink.Handle, p Plan) (*Saved, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	sec, _, err := links(h, p)
	if err != nil {
		return nil, err
	}
	saved, err := Save(p, sec.Attrs().Index)
	if err != nil {
		return nil, err
	}
	return saved, apply(h, p)
}

func apply(h *netlink.Handle, p Plan) error {
	sec, prim, err := links(h, p)
	if err != nil {
		return err
	}
	for _, eip := range p.EIPs {
		if err := h.AddrReplace(sec, addr(netip.PrefixFrom(eip, 32))); err != nil {
			return fmt.Errorf("netcfg: add %v to %s: %w", eip, p.Interface, err)
		}
	}
	if p.Mode == ModeBinded {
		if err := h.AddrDel(sec, addr(p.PrivateAddr)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("netcfg: remove %v from %s: %w", p.PrivateAddr, p.Interface, err)
		}
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: prim.Attrs().Index, Dst: ipnet(InternalServices),
		Gw: net.IP(p.PrimaryGateway.AsSlice())}); err != nil {
		return fmt.Errorf("netcfg: route %v via %s: %w", InternalServices, p.Primary, err)
	}
	if err := h.RouteReplace(eipDefault(sec, p)); err != nil {
		return fmt.Errorf("netcfg: default route of table %d: %w", p.Table, err)
	}
	for _, eip := range p.EIPs {
		if err := h.RuleAdd(rule(p, eip)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netcfg: rule from %v: %w", eip, err)
		}
	}
	return nil
}

// Undo removes what Apply added and puts back what saved recorded: the private
// address with all its attributes, and the routes and rules that are gone since.
// Without a record (nil: an agent that lost it), BINDED mode's private address is
// rebuilt from the plan. Removing what is already gone is not an error.
func Undo(h *netlink.Handle, p Plan, saved *Saved) error {
	if err := p.check(); err != nil {
		return err
	}
	sec, prim, err := links(h, p)
	if err != nil {
		return err
	}
	gone := func(err error) bool {
		return err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
	}
	var errs []error
	for _, eip := range p.EIPs {
		if err := h.RuleDel(rule(p, eip)); !gone(err) {
			errs = append(errs, fmt.Errorf("netcfg: remove rule from %v: %w", eip, err))
		}
	}
	if err := h.RouteDel(eipDefault(sec, p)); !gone(err) {
		errs = append(errs, fmt.Errorf("netcfg: remove table %d's default route: %w", p.Table, err))
	}
	if err := h.RouteDel(&netlink.Route{LinkIndex: prim.Attrs().Index, Dst: ipnet(InternalServices),
		Gw: net.IP(p.PrimaryGateway.AsSlice())}); !gone(err) {
		errs = append(errs, fmt.Errorf("netcfg: remove the %v route: %w", InternalServices, err))
	}
	for _, eip := range p.EIPs {
		if err := h.AddrDel(sec, addr(netip.PrefixFrom(eip, 32))); !gone(err) {
			errs = append(errs, fmt.Errorf("netcfg: remove %v from %s: %w", eip, p.Interface, err))
		}
	}
	switch {
	case saved != nil:
		if err := saved.restore(); err != nil {
			errs = append(errs, err)
		}
	case p.Mode == ModeBinded:
		if err := h.AddrReplace(sec, addr(p.PrivateAddr)); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: give %s back %v: %w", p.Interface, p.PrivateAddr, err))
		}
	}
	return errors.Join(errs...)
}

func links(h *netlink.Handle, p Plan) (sec, prim netlink.Link, err error) {
	if sec, err = h.LinkByName(p.Interface); err != nil {
		return nil, nil, fmt.Errorf("netcfg: %s: %w", p.Interface, err)
	}
	if prim, err = h.LinkByName(p.Primary); err != nil {
		return nil, nil, fmt.Errorf("netcfg: %s: %w", p.Primary, err)
	}
	return sec, prim, nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addr(p netip.Prefix) *netlink.Addr { return &netlink.Addr{IPNet: ipnet(p)} }

func eipDefault(sec netlink.Link, p Plan) *netlink.Route {
	return &netlink.Route{LinkIndex: sec.Attrs().Index, Table: p.Table, Dst: ipnet(netip.MustParsePrefix("0.0.0.0/0")),
		Gw: net.IP(p.EIPGateway.AsSlice()), Flags: int(netlink.FLAG_ONLINK)}
}

func rule(p Plan, eip netip.Addr) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Src = ipnet(netip.PrefixFrom(eip, 32))
	r.Table = p.Table
	r.Priority = p.RulePriority
	return r
}
