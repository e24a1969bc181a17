package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
)

// EIPCounters is one EIP's traffic, summed over CPUs. In is internet -> instance,
// Out is instance -> internet; bytes are IP bytes.
type EIPCounters struct {
	InPackets, InBytes, OutPackets, OutBytes uint64
	// Dropped for being over the EIP's bandwidth (SetBandwidth), not in the above.
	InDroppedPackets, InDroppedBytes, OutDroppedPackets, OutDroppedBytes uint64
}

// Counters returns the EIP's counters since it was bound.
func (d *Dataplane) Counters(eip netip.Addr) (EIPCounters, error) {
	key, err := beKey(eip)
	if err != nil {
		return EIPCounters{}, fmt.Errorf("read counters: %w", err)
	}
	slot, err := d.slotOf(key)
	if err != nil {
		return EIPCounters{}, fmt.Errorf("read counters of %v: %w", eip, err)
	}
	var perCPU []natEipCounters
	if err := d.objs.CountersBySlot.Lookup(slot, &perCPU); err != nil {
		return EIPCounters{}, fmt.Errorf("read counters of %v: %w", eip, err)
	}
	var sum EIPCounters
	for _, c := range perCPU {
		sum.InPackets += c.InPackets
		sum.InBytes += c.InBytes
		sum.OutPackets += c.OutPackets
		sum.OutBytes += c.OutBytes
		sum.InDroppedPackets += c.InDroppedPackets
		sum.InDroppedBytes += c.InDroppedBytes
		sum.OutDroppedPackets += c.OutDroppedPackets
		sum.OutDroppedBytes += c.OutDroppedBytes
	}
	return sum, nil
}

// slotOf is the counter slot of an EIP (a map key): a 1:1 binding, a cut-through EIP
// and a NAT gateway EIP each own one; ErrNotBound when it is none of them.
func (d *Dataplane) slotOf(key uint32) (uint32, error) {
	var b natBinding
	var ct natCutThrough
	var ne natNatEip
	if err := d.objs.InboundBindings.Lookup(key, &b); err == nil {
		return b.CounterSlot, nil
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, err
	}
	if err := d.objs.CutThroughs.Lookup(key, &ct); err == nil {
		return ct.CounterSlot, nil
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, err
	}
	if err := d.objs.NatEips.Lookup(key, &ne); errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, ErrNotBound
	} else if err != nil {
		return 0, err
	}
	return ne.CounterSlot, nil
}

// zeroCounters makes slots new: their counters zero on every CPU (a batch of slots a
// syscall) and no bandwidth limit (through the memory mapping). Their buckets are
// left as they are: a bucket holds at most one burst, as an idle one does, whatever
// the slot's last EIP left in it.
func (d *Dataplane) zeroCounters(slots ...uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("zero counters: %w", err)
	}
	for start := 0; start < len(slots); start += batchSize {
		chunk := slots[start:min(start+batchSize, len(slots))]
		if _, err := putMany(d.objs.CountersBySlot, chunk, make([]natEipCounters, n*len(chunk)), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("zero counters of %d slots from %d: %w", len(chunk), chunk[0], err)
		}
	}
	if err := d.writeRates(slots, make([]natEipRate, len(slots))); err != nil {
		return fmt.Errorf("clear the bandwidth of %d slots: %w", len(slots), err)
	}
	return nil
}

// MaxBandwidth is the highest bandwidth SetBandwidth takes, in bits per second: the
// program's bucket arithmetic stays in 64 bits up to 2^34 bytes a second.
const MaxBandwidth = 100_000_000_000

// SetBandwidth polices an EIP (a 1:1 binding, a cut-through or a NAT gateway EIP) to
// bitsPerSecond in each direction, from the next packet on; 0 lifts the limit.
// Packets over it are dropped and counted (EIPCounters' Dropped fields,
// ReasonDropOverBandwidth). The bucket holds BurstFor(bitsPerSecond).
func (d *Dataplane) SetBandwidth(eip netip.Addr, bitsPerSecond uint64) error {
	return d.SetBandwidths(map[netip.Addr]uint64{eip: bitsPerSecond})
}

// Bandwidth is what SetBandwidth set for an EIP: bits per second, 0 for no limit.
func (d *Dataplane) Bandwidth(eip netip.Addr) (uint64, error) {
	key, err := beKey(eip)
	if err != nil {
		return 0, fmt.Errorf("read bandwidth: %w", err)
	}
	slot, err := d.slotOf(key)
	if err != nil {
		return 0, fmt.Errorf("read bandwidth of %v: %w", eip, err)
	}
	var rate natEipRate
	if err := d.objs.RatesBySlot.Lookup(slot, &rate); err != nil {
		return 0, fmt.Errorf("read bandwidth of %v: %w", eip, err)
	}
	return rate.BytesPerSec * 8, nil
}

// BandwidthChanges compares want (each EIP's limit, bits per second) with the limits
// of the EIPs the dataplane carries (1:1, cut-through and NAT gateway EIPs), and returns
// what SetBandwidths needs to make them equal: an EIP want names with another limit,
// and an EIP it limits that want does not name (0). EIPs it does not carry are left
// out. From the owner's copy of the slots and one read of the limits through the
// memory mapping: no map is built over every EIP unless one is limited unnamed.
func (d *Dataplane) BandwidthChanges(want []desired.Limit) (map[netip.Addr]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rates, err := d.readRates()
	if err != nil {
		return nil, fmt.Errorf("read bandwidths: %w", err)
	}
	bitsOf := func(slot uint32) uint64 {
		if int(slot) < len(rates) {
			return rates[slot].BytesPerSec * 8
		}
		return 0
	}
	changes := map[netip.Addr]uint64{}
	named := 0
	for _, w := range want {
		key, err := beKey(w.EIP)
		if err != nil {
			continue
		}
		slot, carried := d.slotByEIP[key]
		if !carried {
			continue
		}
		have := bitsOf(slot)
		if have != 0 {
			named++
		}
		if have != w.Bits {
			changes[w.EIP] = w.Bits
		}
	}
	limited := 0
	for _, slot := range d.slotByEIP {
		if bitsOf(slot) != 0 {
			limited++
		}
	}
	if limited > named {
		wanted := make(map[uint32]bool, len(want))
		for _, w := range want {
			if key, err := beKey(w.EIP); err == nil {
				wanted[key] = true
			}
		}
		for key, slot := range d.slotByEIP {
			if bitsOf(slot) != 0 && !wanted[key] {
				changes[beAddr(key)] = 0
			}
		}
	}
	return changes, nil
}

// SetBandwidths is SetBandwidth for many EIPs at once (a start, a full pass), written
// through the map's memory mapping: no syscall each.
func (d *Dataplane) SetBandwidths(limits map[netip.Addr]uint64) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("set bandwidths: %w", ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	slots := make([]uint32, 0, len(limits))
	rates := make([]natEipRate, 0, len(limits))
	for eip, bits := range limits {
		key, err := beKey(eip)
		if err != nil {
			errs = append(errs, fmt.Errorf("set bandwidth: %w", err))
			continue
		}
		slot, ok := d.slotByEIP[key]
		if !ok {
			errs = append(errs, fmt.Errorf("set bandwidth of %v: %w", eip, ErrNotBound))
			continue
		}
		if bits > MaxBandwidth {
			errs = append(errs, fmt.Errorf("set bandwidth of %v: %d bit/s is over %d", eip, bits, uint64(MaxBandwidth)))
			continue
		}
		slots = append(slots, slot)
		rates = append(rates, rateOf(bits))
	}
	if err := d.writeRates(slots, rates); err != nil {
		errs = append(errs, fmt.Errorf("set bandwidths: %w", err))
	}
	return errors.Join(errs...)
}

// rateOf is the program's form of a bandwidth.
func rateOf(bitsPerSecond uint64) natEipRate {
	if bitsPerSecond == 0 {
		return natEipRate{}
	}
	return natEipRate{BytesPerSec: bitsPerSecond / 8, BurstBytes: BurstFor(bitsPerSecond)}
}

// readRates reads every slot's limit, through the memory mapping where this process
// has one, else by a batch lookup.
func (d *Dataplane) readRates() ([]natEipRate, error) {
	m := d.objs.RatesBySlot
	out := make([]natEipRate, m.MaxEntries())
	if mem, err := m.Memory(); err == nil {
		size := int(unsafe.Sizeof(out[0]))
		if size != int(m.ValueSize()) {
			return nil, fmt.Errorf("rates of %d bytes, the Go struct has %d", m.ValueSize(), size)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(out)*size)
		if _, err := mem.ReadAt(raw, 0); err != nil {
			return nil, err
		}
		return out, nil
	}
	err := eachEntry(m, func(slot uint32, r natEipRate) {
		if int(slot) < len(out) {
			out[slot] = r
		}
	})
	return out, err
}

// writeRates sets the limits of slots, through the memory mapping where this process
// has one, else by a batch update. A program reading a limit as it is written may
// meet the new rate with the old burst once: both are limits the EIP had.
func (d *Dataplane) writeRates(slots []uint32, rates []natEipRate) error {
	m := d.objs.RatesBySlot
	if mem, err := m.Memory(); err == nil && !mem.ReadOnly() {
		size := int(m.ValueSize())
		for i, slot := range slots {
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&rates[i])), size)
			if _, err := mem.WriteAt(raw, int64(slot)*int64(size)); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := putMany(m, slots, rates, ebpf.UpdateAny)
	return err
}

// BurstFor is the depth of an EIP's bucket at a bandwidth, in bytes: 250 ms of
// traffic, and never less than 64 KiB. A policer's drops often end in a TCP
// retransmission timeout (200 ms at least) rather than a fast retransmit, and a bucket
// that holds less than that wait wastes it: one TCP flow through a 10 or 50 Mbit/s EIP
// got 46-50% of the rate with 100 ms, 94-95% with 250 ms, and no more with 500 ms or
// 1 s, which only let a burst overshoot further (e2e TestBandwidthLimit; docs/dataplane.md).
func BurstFor(bitsPerSecond uint64) uint64 {
	return max(bitsPerSecond/8/4, 64<<10)
}

// ReasonCounts reads the pass and drop counters, summed over CPUs.
func (d *Dataplane) ReasonCounts() (ReasonCounts, error) {
	var out ReasonCounts
	for r := Reason(0); r < ReasonMax; r++ {
		var perCPU []uint64
		if err := d.objs.ReasonCounters.Lookup(uint32(r), &perCPU); err != nil {
			return out, fmt.Errorf("read reason counter %s: %w", r, err)
		}
		for _, n := range perCPU {
			out[r] += n
		}
	}
	return out, nil
}

// CountedEIPs lists every EIP that has counters: 1:1 bindings and cut-through EIPs.
func (d *Dataplane) CountedEIPs() ([]netip.Addr, error) {
	bs, err := d.Bindings()
	if err != nil {
		return nil, err
	}
	cts, err := d.CutThroughs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(bs)+len(cts))
	for _, b := range bs {
		out = append(out, b.EIP)
	}
	for _, c := range cts {
		out = append(out, c.EIP)
	}
	nat, err := d.NatEIPs()
	if err != nil {
		return nil, err
	}
	return append(out, nat...), nil
}
