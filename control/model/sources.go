package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/eipgw/eipgw/desired"
)

// DesiredSources are the sources of every registered interface (the gateway translates
// a frame from the VPC only when its source address and MAC are one of these,
// docs/security.md): each ENI's addresses
// with its MAC (an ENI eipgw is told of is one some host holds, attached here or not), each HaVip's address with the MAC of every instance it is
// associated with (whichever holds it sends), and each load balancer's VIP with its
// MAC. Interfaces registered without a MAC have none.
//
// They come from the snapshot SaveSourcesSnapshot stored when it is of the current
// inventory generation: decoding every interface at each start costs far more.
func DesiredSources(tx Tx) ([]desired.Source, error) {
	if current, err := SourcesSnapshotCurrent(tx); err != nil {
		return nil, err
	} else if current {
		raw, _ := tx.Get(kindInventoryGen, sourcesSnapshotKey)
		out, err := decodeSources(raw[8:])
		if err != nil {
			return nil, fmt.Errorf("sources snapshot: %w", err)
		}
		return out, nil
	}
	return sourcesOfInventory(tx)
}

// SourcesSnapshotCurrent says whether the snapshot of sources is of the current
// inventory generation.
func SourcesSnapshotCurrent(tx Tx) (bool, error) {
	gen, err := InventoryGeneration(tx)
	if err != nil {
		return false, err
	}
	raw, err := tx.Get(kindInventoryGen, sourcesSnapshotKey)
	return len(raw) >= 8 && binary.BigEndian.Uint64(raw) == gen, err
}

// SaveSourcesSnapshot stores sources, read by DesiredSources at generation gen, for
// the DesiredSources calls after it, unless the inventory has changed since gen or
// the snapshot is of gen already.
func SaveSourcesSnapshot(tx Tx, gen uint64, sources []desired.Source) error {
	now, err := InventoryGeneration(tx)
	if err != nil || now != gen {
		return err
	}
	if current, err := SourcesSnapshotCurrent(tx); err != nil || current {
		return err
	}
	buf := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sources)*(1+4+1+6)), gen)
	for _, s := range sources {
		a := s.Addr.AsSlice()
		if len(s.MAC) > 255 {
			return fmt.Errorf("sources snapshot: MAC %s is too long", s.MAC)
		}
		buf = append(append(buf, byte(len(a))), a...)
		buf = append(append(buf, byte(len(s.MAC))), s.MAC...)
	}
	return tx.Put(kindInventoryGen, sourcesSnapshotKey, buf)
}

const sourcesSnapshotKey = "sources"

var errDamagedSnapshot = errors.New("damaged")

// decodeSources reads a snapshot's entries: an address and a MAC, each after its
// length in one byte.
func decodeSources(raw []byte) ([]desired.Source, error) {
	// Room for IPv4 sources with 6-byte MACs, the MACs in one allocation.
	out := make([]desired.Source, 0, len(raw)/12)
	macs := make([]byte, 0, len(raw)/2)
	field := func() ([]byte, error) {
		if len(raw) == 0 || len(raw) < 1+int(raw[0]) {
			return nil, errDamagedSnapshot
		}
		f := raw[1 : 1+int(raw[0])]
		raw = raw[1+int(raw[0]):]
		return f, nil
	}
	for len(raw) > 0 {
		a, err := field()
		if err != nil {
			return nil, err
		}
		mac, err := field()
		if err != nil {
			return nil, err
		}
		addr, ok := netip.AddrFromSlice(a)
		if !ok {
			return nil, errDamagedSnapshot
		}
		macs = append(macs, mac...)
		out = append(out, desired.Source{Addr: addr, MAC: net.HardwareAddr(macs[len(macs)-len(mac) : len(macs) : len(macs)])})
	}
	return out, nil
}

// sourcesOfInventory are DesiredSources as the interfaces say.
func sourcesOfInventory(tx Tx) ([]desired.Source, error) {
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
	slices.SortFunc(out, desired.Source.Compare)
	return slices.CompactFunc(out, func(a, b desired.Source) bool { return a.Compare(b) == 0 }), nil
}
