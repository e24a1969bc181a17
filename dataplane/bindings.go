package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
	"github.com/eipgw/eipgw/internal/intsort"
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
type Binding = desired.Binding

// beKey turns an IPv4 address into the __be32 the maps hold: its bytes in network
// order, read as a native integer.
func beKey(a netip.Addr) (uint32, error) {
	if !a.Is4() {
		return 0, fmt.Errorf("%v: %w", a, ErrNotIPv4)
	}
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:]), nil
}

// addrOrder is a key's address as a number, for sorting keys as addresses sort; it is
// its own inverse (a byte swap, or nothing on a big-endian host).
func addrOrder(v uint32) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
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
	d.bound[eipKey] = privKey
	d.slotByEIP[eipKey] = slot
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
	delete(d.bound, eipKey)
	delete(d.slotByEIP, eipKey)
	if err := d.objs.OutboundBindings.Delete(cur.Addr); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete binding %v: outbound: %w", eip, err)
	}
	d.slots.free(cur.CounterSlot)
	return nil
}

// Bindings lists the bindings in the maps, sorted by EIP: the owner's copy, or
// (read-only) a walk.
func (d *Dataplane) Bindings() ([]Binding, error) {
	// Each binding packed in an integer, the EIP as a number (its address in host
	// order) above the private address, and sorted as integers: cheaper than as
	// addresses, in the same order.
	var keys []uint64
	pack := func(eip, priv uint32) uint64 { return uint64(addrOrder(eip))<<32 | uint64(priv) }
	if !d.cfg.ReadOnly {
		d.mu.Lock()
		keys = make([]uint64, 0, len(d.bound))
		for eip, priv := range d.bound {
			keys = append(keys, pack(eip, priv))
		}
		d.mu.Unlock()
	} else if err := eachEntry(d.objs.InboundBindings, func(key uint32, val natBinding) {
		keys = append(keys, pack(key, val.Addr))
	}); err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	intsort.ByHigh32(keys) // an EIP is bound once: the upper halves differ
	out := make([]Binding, len(keys))
	for i, k := range keys {
		out[i] = Binding{EIP: beAddr(addrOrder(uint32(k >> 32))), Private: beAddr(uint32(k))}
	}
	return out, nil
}

// recoverBindings rebuilds the slot allocator from adopted maps, and removes outbound
// halves without their inbound half: what a process that died inside SetBinding left.
// No traffic reached them (the inbound half was never there), so nothing is lost.
func (d *Dataplane) recoverBindings() error {
	d.slots = newSlotAllocator(d.cfg.MaxBindings)
	d.portBlocks = newSlotAllocator(d.objs.NatEips.MaxEntries())
	d.bound, d.cuts, d.slotByEIP = map[uint32]uint32{}, map[uint32][6]uint8{}, map[uint32]uint32{}
	d.sharedBuckets = map[string]uint32{}
	// A start reads every entry: a batch a syscall (eachEntry), where iterating took
	// two syscalls an entry (600 ms of a start at 100,000 bindings).
	inbound := map[uint32]natBinding{}
	if err := eachEntry(d.objs.InboundBindings, func(key uint32, val natBinding) {
		inbound[key] = val
		d.bound[key] = val.Addr
		d.slotByEIP[key] = val.CounterSlot
		d.slots.mark(val.CounterSlot)
	}); err != nil {
		return fmt.Errorf("recover bindings: %w", err)
	}
	if err := eachEntry(d.objs.CutThroughs, func(key uint32, ct natCutThrough) {
		d.cuts[key] = ct.EniMac
		d.slotByEIP[key] = ct.CounterSlot
		d.slots.mark(ct.CounterSlot)
	}); err != nil {
		return fmt.Errorf("recover cut-through EIPs: %w", err)
	}
	d.fwd = map[natEndpoint]natForwardTarget{}
	if err := eachEntry(d.objs.ForwardPorts, func(k natEndpoint, t natForwardTarget) { d.fwd[k] = t }); err != nil {
		return fmt.Errorf("recover forward ports: %w", err)
	}
	if err := eachEntry(d.objs.NatEips, func(key uint32, ne natNatEip) {
		d.slots.mark(ne.CounterSlot)
		d.slotByEIP[key] = ne.CounterSlot
		d.portBlocks.mark(ne.PortBlock)
	}); err != nil {
		return fmt.Errorf("recover NAT EIPs: %w", err)
	}
	var orphans []uint32
	if err := eachEntry(d.objs.OutboundBindings, func(key uint32, val natBinding) {
		if in, ok := inbound[val.Addr]; !ok || in.Addr != key {
			orphans = append(orphans, key)
		}
	}); err != nil {
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

func (s *slotAllocator) inUse(slot uint32) bool { return slot < uint32(len(s.used)) && s.used[slot] }

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

// AddBindings adds many new bindings at once (the start-up reconcile of an empty
// dataplane): neither an EIP nor a private address may be bound yet, which the
// owner's copy of the bindings says (the kernel's batch update has no BPF_NOEXIST). Each
// binding's counters are zeroed, then the outbound halves go in, then the inbound
// halves, a batch of entries a syscall (BPF_MAP_UPDATE_BATCH), or one at a time where
// the kernel has no batch update. On an error, the bindings of the chunk that failed
// and after it are not in; those before are.
func (d *Dataplane) AddBindings(bs []Binding) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("add bindings: %w", ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Binding changes take d.mu: nothing binds between this check and the inserts.
	boundEIP, boundPriv := make(map[uint32]bool, len(d.bound)), make(map[uint32]bool, len(d.bound))
	for eip, priv := range d.bound {
		boundEIP[eip], boundPriv[priv] = true, true
	}
	for _, b := range bs {
		e, err1 := beKey(b.EIP)
		p, err2 := beKey(b.Private)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("add bindings: %w", err)
		}
		if boundEIP[e] {
			return fmt.Errorf("add bindings: %v is bound already", b.EIP)
		}
		if boundPriv[p] {
			return fmt.Errorf("add bindings %v -> %v: %w", b.EIP, b.Private, ErrPrivateBound)
		}
		boundEIP[e], boundPriv[p] = true, true // twice in bs is refused too
	}
	for start := 0; start < len(bs); start += batchSize {
		chunk := bs[start:min(start+batchSize, len(bs))]
		if err := d.addBindingChunk(chunk); err != nil {
			return fmt.Errorf("add bindings: %w", err)
		}
	}
	if len(bs) > 0 {
		d.wantHops()
	}
	return nil
}

func (d *Dataplane) addBindingChunk(bs []Binding) error {
	eipKeys := make([]uint32, len(bs))
	privKeys := make([]uint32, len(bs))
	slots := make([]uint32, 0, len(bs))
	undo := func() {
		for _, s := range slots {
			d.slots.free(s)
		}
	}
	for i, b := range bs {
		var err error
		if eipKeys[i], err = beKey(b.EIP); err != nil {
			undo()
			return err
		}
		if privKeys[i], err = beKey(b.Private); err != nil {
			undo()
			return err
		}
		slot, ok := d.slots.take()
		if !ok {
			undo()
			return fmt.Errorf("%v: %w (%d bindings)", b.EIP, ErrFull, d.cfg.MaxBindings)
		}
		slots = append(slots, slot)
	}
	if err := d.zeroCounters(slots...); err != nil {
		undo()
		return err
	}
	outbound := make([]natBinding, len(bs))
	inbound := make([]natBinding, len(bs))
	for i := range bs {
		outbound[i] = natBinding{Addr: eipKeys[i], CounterSlot: slots[i], SenderMac: d.senderMAC(privKeys[i])}
		inbound[i] = natBinding{Addr: privKeys[i], CounterSlot: slots[i], Hop: d.hopOf(privKeys[i])}
	}
	if n, err := putNew(d.objs.OutboundBindings, privKeys, outbound); err != nil {
		deleteKeys(d.objs.OutboundBindings, privKeys[:n])
		undo()
		return fmt.Errorf("outbound halves: %w", err)
	}
	if n, err := putNew(d.objs.InboundBindings, eipKeys, inbound); err != nil {
		deleteKeys(d.objs.InboundBindings, eipKeys[:n])
		deleteKeys(d.objs.OutboundBindings, privKeys)
		undo()
		return fmt.Errorf("inbound halves: %w", err)
	}
	for i := range eipKeys {
		d.bound[eipKeys[i]] = privKeys[i]
		d.slotByEIP[eipKeys[i]] = slots[i]
	}
	return nil
}

// putNew inserts entries that do not exist yet (the caller checked), in one batch or
// one at a time, and returns how many went in (the first ones).
func putNew[V any](m *ebpf.Map, keys []uint32, vals []V) (int, error) {
	n, err := putMany(m, keys, vals, ebpf.UpdateNoExist)
	if err != nil && n < len(keys) {
		return n, fmt.Errorf("%v: %w", beAddr(keys[n]), err)
	}
	return n, err
}

// deleteKeys removes what a failed insert put in: keys that were free before it.
func deleteKeys(m *ebpf.Map, keys []uint32) {
	for _, k := range keys {
		_ = m.Delete(k)
	}
}

// BindingOf is the private address eip is bound to, if it is: the owner's copy, or
// (read-only) the map.
func (d *Dataplane) BindingOf(eip netip.Addr) (netip.Addr, bool, error) {
	key, err := beKey(eip)
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("binding of: %w", err)
	}
	if !d.cfg.ReadOnly {
		d.mu.Lock()
		defer d.mu.Unlock()
		priv, ok := d.bound[key]
		if !ok {
			return netip.Addr{}, false, nil
		}
		return beAddr(priv), true, nil
	}
	var cur natBinding
	switch err := d.objs.InboundBindings.Lookup(key, &cur); {
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return netip.Addr{}, false, nil
	case err != nil:
		return netip.Addr{}, false, fmt.Errorf("binding of %v: %w", eip, err)
	}
	return beAddr(cur.Addr), true, nil
}
