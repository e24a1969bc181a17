package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
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

// zeroCounters makes slots new: their counters zero on every CPU, no bandwidth limit
// and empty buckets (a slot freed by one EIP keeps nothing for the next), a batch of
// slots a syscall.
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
		if _, err := putMany(d.objs.RatesBySlot, chunk, make([]natEipRate, len(chunk)), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("clear the bandwidth of %d slots from %d: %w", len(chunk), chunk[0], err)
		}
		buckets := make([]uint32, 0, 2*len(chunk))
		for _, s := range chunk {
			buckets = append(buckets, 2*s, 2*s+1)
		}
		if _, err := putMany(d.objs.BucketsBySlot, buckets, make([]natEipBucket, len(buckets)), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("empty the buckets of %d slots from %d: %w", len(chunk), chunk[0], err)
		}
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
	if d.cfg.ReadOnly {
		return fmt.Errorf("set bandwidth: %w", ErrReadOnly)
	}
	if bitsPerSecond > MaxBandwidth {
		return fmt.Errorf("set bandwidth of %v: %d bit/s is over %d", eip, bitsPerSecond, uint64(MaxBandwidth))
	}
	key, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("set bandwidth: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	slot, err := d.slotOf(key)
	if err != nil {
		return fmt.Errorf("set bandwidth of %v: %w", eip, err)
	}
	rate := natEipRate{BytesPerSec: bitsPerSecond / 8, BurstBytes: BurstFor(bitsPerSecond)}
	if bitsPerSecond == 0 {
		rate = natEipRate{}
	}
	if err := d.objs.RatesBySlot.Put(slot, rate); err != nil {
		return fmt.Errorf("set bandwidth of %v: %w", eip, err)
	}
	return nil
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

// BurstFor is the depth of an EIP's bucket at a bandwidth, in bytes: 100 ms of
// traffic, and never less than 64 KiB, so that a TCP flow's bursts (a window of
// segments at line rate) are not cut short at low rates.
func BurstFor(bitsPerSecond uint64) uint64 {
	return max(bitsPerSecond/8/10, 64<<10)
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
