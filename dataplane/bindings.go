package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

var (
	// ErrNotIPv4 means an address given to a binding operation is not IPv4.
	ErrNotIPv4 = errors.New("address is not IPv4")
	// ErrPrivateBound means the private address already has another EIP.
	ErrPrivateBound = errors.New("private address is bound to another EIP")
	// ErrNotBound means the EIP has no binding.
	ErrNotBound = errors.New("EIP is not bound")
	// ErrCutThrough means the EIP is cut-through, or 1:1-bound when cut-through is asked.
	ErrCutThrough = errors.New("EIP is bound in the other mode (1:1 or cut-through)")
	// ErrFull means every binding slot is taken.
	ErrFull = errors.New("binding table is full")
)

// Binding is one 1:1 EIP binding.
type Binding struct {
	EIP     netip.Addr
	Private netip.Addr
}

// beKey turns an IPv4 address into the __be32 the maps hold: its bytes in network
// order, read as a native integer.
func beKey(a netip.Addr) (uint32, error) {
	if !a.Is4() {
		return 0, fmt.Errorf("%v: %w", a, ErrNotIPv4)
	}
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:]), nil
}

func beAddr(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// SetBinding makes eip translate to and from private. If eip is bound to another
// private address, the binding moves (its counters stay). The order of map writes
// means no packet sees half a binding: the outbound half goes in before the inbound
// half that lets traffic in, and a moved binding's old outbound half goes last.
func (d *Dataplane) SetBinding(eip, private netip.Addr) error {
	eipKey, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("set binding: %w", err)
	}
	privKey, err := beKey(private)
	if err != nil {
		return fmt.Errorf("set binding: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set binding %v: %w", eip, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	var cur natBinding
	var old *natBinding
	switch err := d.objs.InboundBindings.Lookup(eipKey, &cur); {
	case err == nil:
		old = &cur
	case !errors.Is(err, ebpf.ErrKeyNotExist):
		return fmt.Errorf("set binding %v: %w", eip, err)
	}
	var other natBinding
	switch err := d.objs.OutboundBindings.Lookup(privKey, &other); {
	case err == nil && other.Addr != eipKey:
		return fmt.Errorf("set binding %v -> %v: %w (%v)", eip, private, ErrPrivateBound, beAddr(other.Addr))
	case err != nil && !errors.Is(err, ebpf.ErrKeyNotExist):
		return fmt.Errorf("set binding %v: %w", eip, err)
	}
	if old != nil && old.Addr == privKey {
		return nil
	}
	if err := d.objs.CutThroughs.Lookup(eipKey, new(natCutThrough)); err == nil {
		return fmt.Errorf("set binding %v: %w", eip, ErrCutThrough)
	}

	slot := uint32(0)
	if old != nil {
		slot = old.CounterSlot
	} else {
		var ok bool
		if slot, ok = d.slots.take(); !ok {
			return fmt.Errorf("set binding %v: %w (%d bindings)", eip, ErrFull, d.cfg.MaxBindings)
		}
		if err := d.zeroCounters(slot); err != nil {
			d.slots.free(slot)
			return fmt.Errorf("set binding %v: %w", eip, err)
		}
	}
	undo := func() {
		if old == nil {
			d.slots.free(slot)
		}
	}
	if err := d.objs.OutboundBindings.Put(privKey, natBinding{Addr: eipKey, CounterSlot: slot, SenderMac: d.senderMAC(privKey)}); err != nil {
		undo()
		return fmt.Errorf("set binding %v: outbound: %w", eip, err)
	}
	if err := d.objs.InboundBindings.Put(eipKey, natBinding{Addr: privKey, CounterSlot: slot, Hop: d.hopOf(privKey)}); err != nil {
		_ = d.objs.OutboundBindings.Delete(privKey)
		undo()
		return fmt.Errorf("set binding %v: inbound: %w", eip, err)
	}
	if old != nil {
		if err := d.objs.OutboundBindings.Delete(old.Addr); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("set binding %v: remove old outbound half: %w", eip, err)
		}
	}
	if _, known := d.hops.byAddr[privKey]; !known {
		d.wantHops()
	}
	return nil
}

// DeleteBinding removes eip's binding: inbound first, so traffic to the EIP stops at
// once, then outbound.
func (d *Dataplane) DeleteBinding(eip netip.Addr) error {
	eipKey, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("delete binding: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete binding %v: %w", eip, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur natBinding
	if err := d.objs.InboundBindings.Lookup(eipKey, &cur); errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete binding %v: %w", eip, ErrNotBound)
	} else if err != nil {
		return fmt.Errorf("delete binding %v: %w", eip, err)
	}
	if err := d.objs.InboundBindings.Delete(eipKey); err != nil {
		return fmt.Errorf("delete binding %v: inbound: %w", eip, err)
	}
	if err := d.objs.OutboundBindings.Delete(cur.Addr); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete binding %v: outbound: %w", eip, err)
	}
	d.slots.free(cur.CounterSlot)
	return nil
}

// Bindings lists the bindings in the maps.
func (d *Dataplane) Bindings() ([]Binding, error) {
	var out []Binding
	var key uint32
	var val natBinding
	it := d.objs.InboundBindings.Iterate()
	for it.Next(&key, &val) {
		out = append(out, Binding{EIP: beAddr(key), Private: beAddr(val.Addr)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	return out, nil
}

// recoverBindings rebuilds the slot allocator from adopted maps, and removes outbound
// halves without their inbound half: what a process that died inside SetBinding left.
// No traffic reached them (the inbound half was never there), so nothing is lost.
func (d *Dataplane) recoverBindings() error {
	d.slots = newSlotAllocator(d.cfg.MaxBindings)
	inbound := map[uint32]natBinding{}
	var key uint32
	var val natBinding
	it := d.objs.InboundBindings.Iterate()
	for it.Next(&key, &val) {
		inbound[key] = val
		d.slots.mark(val.CounterSlot)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("recover bindings: %w", err)
	}
	var ct natCutThrough
	cit := d.objs.CutThroughs.Iterate()
	for cit.Next(&key, &ct) {
		d.slots.mark(ct.CounterSlot)
	}
	if err := cit.Err(); err != nil {
		return fmt.Errorf("recover cut-through EIPs: %w", err)
	}
	var ne natNatEip
	nit := d.objs.NatEips.Iterate()
	for nit.Next(&key, &ne) {
		d.slots.mark(ne.CounterSlot)
	}
	if err := nit.Err(); err != nil {
		return fmt.Errorf("recover NAT EIPs: %w", err)
	}
	var orphans []uint32
	it = d.objs.OutboundBindings.Iterate()
	for it.Next(&key, &val) {
		if in, ok := inbound[val.Addr]; !ok || in.Addr != key {
			orphans = append(orphans, key)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("recover bindings: %w", err)
	}
	for _, k := range orphans {
		if err := d.objs.OutboundBindings.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("recover bindings: remove half-made binding of %v: %w", beAddr(k), err)
		}
	}
	return nil
}

// slotAllocator hands out indexes into counters_by_slot.
type slotAllocator struct {
	used []bool
	next uint32
}

func newSlotAllocator(n uint32) *slotAllocator { return &slotAllocator{used: make([]bool, n)} }

func (s *slotAllocator) mark(slot uint32) {
	if slot < uint32(len(s.used)) {
		s.used[slot] = true
	}
}

func (s *slotAllocator) take() (uint32, bool) {
	n := uint32(len(s.used))
	for i := uint32(0); i < n; i++ {
		slot := (s.next + i) % n
		if !s.used[slot] {
			s.used[slot] = true
			s.next = slot + 1
			return slot, true
		}
	}
	return 0, false
}

func (s *slotAllocator) free(slot uint32) {
	if slot < uint32(len(s.used)) {
		s.used[slot] = false
	}
}
