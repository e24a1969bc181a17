package model

import (
	"fmt"
	"github.com/eipgw/eipgw/desired"
	"net/netip"
	"strings"
)

// What the dataplane must carry for NAT gateways, derived from the store.

// DesiredNat is the NAT gateways' part of the desired dataplane.
type DesiredNat struct {
	EIPs  []netip.Addr // EIPs associated with NAT gateways, but not IP-mapped ones
	Rules []desired.SnatRule
	Ports []desired.ForwardPort // one a port of each range and protocol ("any": TCP and UDP)
	// IPMappings are Any/Any forward entries: the whole EIP maps to the internal
	// address, carried as a 1:1 binding.
	IPMappings []desired.Binding
	// Gateways names each active NAT gateway EIP's NAT gateway.
	Gateways map[netip.Addr]string
}

// Only is the part of d whose NAT gateways keep says: in a cluster, a gateway carries
// the NAT gateways it owns (control/cluster).
func (d DesiredNat) Only(keep func(natGatewayID string) bool) DesiredNat {
	kept := func(a netip.Addr) bool { return keep(d.Gateways[a]) }
	out := DesiredNat{Gateways: d.Gateways}
	for _, a := range d.EIPs {
		if kept(a) {
			out.EIPs = append(out.EIPs, a)
		}
	}
	for _, r := range d.Rules {
		// A rule's pool is one NAT gateway's EIPs.
		if len(r.Pool) > 0 && kept(r.Pool[0]) {
			out.Rules = append(out.Rules, r)
		}
	}
	for _, p := range d.Ports {
		if kept(p.External.Addr()) {
			out.Ports = append(out.Ports, p)
		}
	}
	for _, b := range d.IPMappings {
		if kept(b.EIP) {
			out.IPMappings = append(out.IPMappings, b)
		}
	}
	return out
}

// DesiredNatState reads the NAT gateways' desired dataplane state.
func DesiredNatState(tx Tx) (DesiredNat, error) {
	var d DesiredNat
	// The NAT gateways' EIPs from the target index: decoding every EIP would cost each
	// full pass at 1,000,000 EIPs seconds.
	var ids []string
	if err := tx.ForEachPrefix(kindEIPByTarget, TypeNat+"|", func(key string, _ []byte) error {
		ids = append(ids, key[strings.LastIndex(key, "|")+1:])
		return nil
	}); err != nil {
		return d, err
	}
	active := map[string]bool{}
	d.Gateways = map[netip.Addr]string{}
	for _, id := range ids {
		e, err := indexedEIP(tx, "target", id)
		if err != nil {
			return d, err
		}
		if e.InstanceType == TypeNat && e.Status != StatusUnassociating && e.Status != StatusAvailable {
			active[e.IPAddress] = true
			if a, err := netip.ParseAddr(e.IPAddress); err == nil {
				d.Gateways[a] = e.InstanceID
			}
		}
	}
	fwds, err := list[ForwardEntry](tx, KindForward)
	if err != nil {
		return d, err
	}
	mapped := map[string]bool{}
	for _, f := range fwds {
		if !active[f.ExternalIP] {
			continue
		}
		ext, err1 := netip.ParseAddr(f.ExternalIP)
		in, err2 := netip.ParseAddr(f.InternalIP)
		if err1 != nil || err2 != nil {
			return d, fmt.Errorf("forward entry %s has damaged addresses", f.ForwardEntryID)
		}
		elo, ehi, eany, ok1 := portRange(f.ExternalPort)
		ilo, _, _, ok2 := portRange(f.InternalPort)
		if !ok1 || !ok2 {
			return d, fmt.Errorf("forward entry %s has damaged ports", f.ForwardEntryID)
		}
		if eany {
			mapped[f.ExternalIP] = true
			d.IPMappings = append(d.IPMappings, desired.Binding{EIP: ext, Private: in})
			continue
		}
		var protos []uint8
		switch f.IPProtocol {
		case "tcp":
			protos = []uint8{desired.ProtoTCP}
		case "udp":
			protos = []uint8{desired.ProtoUDP}
		case "any":
			protos = []uint8{desired.ProtoTCP, desired.ProtoUDP}
		default:
			return d, fmt.Errorf("forward entry %s has a damaged protocol %q", f.ForwardEntryID, f.IPProtocol)
		}
		for p := elo; p <= ehi; p++ {
			for _, proto := range protos {
				d.Ports = append(d.Ports, desired.ForwardPort{Protocol: proto,
					External: netip.AddrPortFrom(ext, uint16(p)), Internal: netip.AddrPortFrom(in, uint16(ilo+p-elo))})
			}
		}
	}
	for ip := range active {
		if !mapped[ip] {
			d.EIPs = append(d.EIPs, netip.MustParseAddr(ip))
		}
	}
	snats, err := list[SnatEntry](tx, KindSnat)
	if err != nil {
		return d, err
	}
	for _, s := range snats {
		src, err := netip.ParsePrefix(s.SourceCIDR)
		if err != nil {
			return d, fmt.Errorf("SNAT entry %s has a damaged source: %w", s.SnatEntryID, err)
		}
		r := desired.SnatRule{Source: src, Affinity: s.EipAffinity == 1}
		for _, ip := range strings.Split(s.SnatIP, ",") {
			if active[ip] && !mapped[ip] {
				r.Pool = append(r.Pool, netip.MustParseAddr(ip))
			}
		}
		if len(r.Pool) > 0 {
			d.Rules = append(d.Rules, r)
		}
	}
	return d, nil
}
