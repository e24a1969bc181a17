package dataplane

import (
	"github.com/eipgw/eipgw/desired"

	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

// CutThrough is a cut-through EIP and the MAC of the ENI that holds it.
type CutThrough = desired.CutThrough

// SetCutThrough makes eip a cut-through EIP of the ENI with mac: forwarded
// untranslated, and accepted as a source only from that MAC. Changing the MAC keeps
// the EIP's counters.
func (d *Dataplane) SetCutThrough(eip netip.Addr, mac net.HardwareAddr) error {
	key, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("set cut-through: %w", err)
	}
	if len(mac) != 6 {
		return fmt.Errorf("set cut-through %v: MAC %v is not 6 bytes", eip, mac)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set cut-through %v: %w", eip, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.objs.InboundBindings.Lookup(key, new(natBinding)); err == nil {
		return fmt.Errorf("set cut-through %v: %w", eip, ErrCutThrough)
	}
	var cur natCutThrough
	fresh := false
	switch err := d.objs.CutThroughs.Lookup(key, &cur); {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		slot, ok := d.slots.take()
		if !ok {
			return fmt.Errorf("set cut-through %v: %w (%d bindings)", eip, ErrFull, d.cfg.MaxBindings)
		}
		if err := d.zeroCounters(slot); err != nil {
			d.slots.free(slot)
			return fmt.Errorf("set cut-through %v: %w", eip, err)
		}
		cur.CounterSlot, fresh = slot, true
	case err != nil:
		return fmt.Errorf("set cut-through %v: %w", eip, err)
	}
	copy(cur.EniMac[:], mac)
	if err := d.objs.CutThroughs.Put(key, cur); err != nil {
		if fresh {
			d.slots.free(cur.CounterSlot)
		}
		return fmt.Errorf("set cut-through %v: %w", eip, err)
	}
	d.cuts[key] = cur.EniMac
	d.slotByEIP[key] = cur.CounterSlot
	if _, known := d.hops.byAddr[key]; !known {
		d.wantHops()
	}
	return nil
}

// DeleteCutThrough stops forwarding eip.
func (d *Dataplane) DeleteCutThrough(eip netip.Addr) error {
	key, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("delete cut-through: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete cut-through %v: %w", eip, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur natCutThrough
	if err := d.objs.CutThroughs.Lookup(key, &cur); errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete cut-through %v: %w", eip, ErrNotBound)
	} else if err != nil {
		return fmt.Errorf("delete cut-through %v: %w", eip, err)
	}
	if err := d.objs.CutThroughs.Delete(key); err != nil {
		return fmt.Errorf("delete cut-through %v: %w", eip, err)
	}
	delete(d.cuts, key)
	delete(d.slotByEIP, key)
	d.slots.free(cur.CounterSlot)
	return nil
}

// CutThroughs lists the cut-through EIPs: the owner's copy, or (read-only) a walk.
func (d *Dataplane) CutThroughs() ([]CutThrough, error) {
	if !d.cfg.ReadOnly {
		d.mu.Lock()
		defer d.mu.Unlock()
		out := make([]CutThrough, 0, len(d.cuts))
		for eip, mac := range d.cuts {
			out = append(out, CutThrough{EIP: beAddr(eip), ENIMAC: append(net.HardwareAddr(nil), mac[:]...)})
		}
		return out, nil
	}
	var out []CutThrough
	if err := eachEntry(d.objs.CutThroughs, func(key uint32, val natCutThrough) {
		out = append(out, CutThrough{EIP: beAddr(key), ENIMAC: append(net.HardwareAddr(nil), val.EniMac[:]...)})
	}); err != nil {
		return nil, fmt.Errorf("list cut-through EIPs: %w", err)
	}
	return out, nil
}
