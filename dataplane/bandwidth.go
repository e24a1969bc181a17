package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
)

// MaxBandwidth is the highest bandwidth SetBandwidth takes, in bits per second: the
// program's bucket arithmetic stays in 64 bits up to 2^34 bytes a second.
const MaxBandwidth = 100_000_000_000

// MaxSharedBandwidths is how many shared bandwidths (bandwidth packages) with EIPs
// the dataplane carries can be policed at once: each has a bucket pair of its own,
// after the slots' (buckets_by_slot, credits_by_slot).
const MaxSharedBandwidths = 1024

// SetBandwidth polices an EIP (a 1:1 binding, a cut-through or a NAT gateway EIP) to
// bitsPerSecond in each direction, from the next packet on; 0 lifts the limit.
// Packets over it are dropped and counted (EIPCounters' Dropped fields,
// ReasonDropOverBandwidth). The bucket holds BurstFor(bitsPerSecond).
func (d *Dataplane) SetBandwidth(eip netip.Addr, bitsPerSecond uint64) error {
	return d.SetBandwidths([]desired.Limit{{EIP: eip, Bits: bitsPerSecond}})
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

// BandwidthChanges compares want (each EIP's limit; an EIP not named has none) with
// the limits of the EIPs the dataplane carries (1:1, cut-through and NAT gateway EIPs),
// and returns what SetBandwidths needs to make them equal: an EIP want names with
// another limit or another sharing, and an EIP it limits that want does not name
// (Bits 0). EIPs it does not carry are left out. want is the whole desired state: a
// shared bandwidth it does not name gives its bucket back. From the owner's copy of
// the slots and one read of the limits through the memory mapping: no map is built
// over every EIP unless one is limited unnamed.
func (d *Dataplane) BandwidthChanges(want []desired.Limit) ([]desired.Limit, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rates, err := d.readRates()
	if err != nil {
		return nil, fmt.Errorf("read bandwidths: %w", err)
	}
	rateAt := func(slot uint32) natEipRate {
		if int(slot) < len(rates) {
			return rates[slot]
		}
		return natEipRate{}
	}
	named := map[string]bool{}
	for _, w := range want {
		if w.Shared != "" {
			named[w.Shared] = true
		}
	}
	for shared := range d.sharedBuckets {
		if !named[shared] {
			delete(d.sharedBuckets, shared)
		}
	}
	d.adoptSharedBuckets(want, rates)
	var changes []desired.Limit
	limitedNamed := 0
	for _, w := range want {
		key, err := beKey(w.EIP)
		if err != nil {
			continue
		}
		slot, carried := d.slotByEIP[key]
		if !carried {
			continue
		}
		have := rateAt(slot)
		if have.BytesPerSec != 0 {
			limitedNamed++
		}
		bucket, known := slot, true
		if w.Shared != "" {
			bucket, known = d.sharedBuckets[w.Shared]
		}
		wantRate, wantCap := d.ratesOf(w, slot, bucket)
		if !known || have != wantRate {
			changes = append(changes, w)
			continue
		}
		if wantRate.Capped != 0 {
			var haveCap natEipRate
			if err := d.objs.CapsBySlot.Lookup(slot, &haveCap); err != nil || haveCap != wantCap {
				changes = append(changes, w)
			}
		}
	}
	// The limited slots counted in slot order (the allocator knows which are
	// carried): a walk of the owner's map costs a start at 100,000 EIPs ten times more.
	limited := 0
	for slot := range rates {
		if rates[slot].BytesPerSec != 0 && d.slots.inUse(uint32(slot)) {
			limited++
		}
	}
	if limited > limitedNamed {
		wanted := make(map[uint32]bool, len(want))
		for _, w := range want {
			if key, err := beKey(w.EIP); err == nil {
				wanted[key] = true
			}
		}
		for key, slot := range d.slotByEIP {
			if rateAt(slot).BytesPerSec != 0 && !wanted[key] {
				changes = append(changes, desired.Limit{EIP: beAddr(key)})
			}
		}
	}
	return changes, nil
}

// adoptSharedBuckets takes back, after a restart, the bucket each shared bandwidth of
// want had: the one its carried EIPs' limits name, when that is a shared bucket no
// other shared bandwidth has. Under d.mu.
func (d *Dataplane) adoptSharedBuckets(want []desired.Limit, rates []natEipRate) {
	taken := map[uint32]bool{}
	for _, b := range d.sharedBuckets {
		taken[b] = true
	}
	for _, w := range want {
		if w.Shared == "" {
			continue
		}
		if _, ok := d.sharedBuckets[w.Shared]; ok {
			continue
		}
		key, err := beKey(w.EIP)
		if err != nil {
			continue
		}
		slot, carried := d.slotByEIP[key]
		if !carried || int(slot) >= len(rates) || rates[slot].BytesPerSec == 0 {
			continue
		}
		if b := rates[slot].Bucket; d.isSharedBucket(b) && !taken[b] {
			d.sharedBuckets[w.Shared] = b
			taken[b] = true
		}
	}
}

// isSharedBucket tells a shared bandwidth's bucket pair from a slot's own.
func (d *Dataplane) isSharedBucket(b uint32) bool {
	return b >= d.cfg.MaxBindings && b < d.cfg.MaxBindings+MaxSharedBandwidths
}

// SetBandwidths is SetBandwidth for many EIPs at once (a start, a full pass), written
// through the map's memory mapping: no syscall each. The EIPs of a shared bandwidth
// draw on its bucket, which starts full the first time one of them is limited.
func (d *Dataplane) SetBandwidths(limits []desired.Limit) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("set bandwidths: %w", ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	slots := make([]uint32, 0, len(limits))
	rates := make([]natEipRate, 0, len(limits))
	for _, l := range limits {
		key, err := beKey(l.EIP)
		if err != nil {
			errs = append(errs, fmt.Errorf("set bandwidth: %w", err))
			continue
		}
		slot, ok := d.slotByEIP[key]
		if !ok {
			errs = append(errs, fmt.Errorf("set bandwidth of %v: %w", l.EIP, ErrNotBound))
			continue
		}
		if l.Bits > MaxBandwidth {
			errs = append(errs, fmt.Errorf("set bandwidth of %v: %d bit/s is over %d", l.EIP, l.Bits, uint64(MaxBandwidth)))
			continue
		}
		if l.Cap > MaxBandwidth {
			errs = append(errs, fmt.Errorf("set bandwidth of %v: a cap of %d bit/s is over %d", l.EIP, l.Cap, uint64(MaxBandwidth)))
			continue
		}
		bucket := slot
		if l.Shared != "" && l.Bits != 0 {
			if bucket, err = d.sharedBucket(l.Shared); err != nil {
				errs = append(errs, fmt.Errorf("set bandwidth of %v: %w", l.EIP, err))
				continue
			}
		}
		rate, capRate := d.ratesOf(l, slot, bucket)
		if rate.Capped != 0 {
			if err := d.setCap(slot, capRate); err != nil {
				errs = append(errs, fmt.Errorf("set bandwidth of %v: %w", l.EIP, err))
				continue
			}
		}
		slots = append(slots, slot)
		rates = append(rates, rate)
	}
	if err := d.writeRates(slots, rates); err != nil {
		errs = append(errs, fmt.Errorf("set bandwidths: %w", err))
	}
	return errors.Join(errs...)
}

// sharedBucket is the bucket pair of a shared bandwidth: the one it has, or a free one,
// emptied of what a shared bandwidth that had it before left. Under d.mu.
func (d *Dataplane) sharedBucket(shared string) (uint32, error) {
	if b, ok := d.sharedBuckets[shared]; ok {
		return b, nil
	}
	rates, err := d.readRates()
	if err != nil {
		return 0, fmt.Errorf("find a bucket for shared bandwidth %s: %w", shared, err)
	}
	used := map[uint32]bool{}
	for _, b := range d.sharedBuckets {
		used[b] = true
	}
	for _, slot := range d.slotByEIP {
		if int(slot) < len(rates) && rates[slot].BytesPerSec != 0 {
			used[rates[slot].Bucket] = true
		}
	}
	for b := d.cfg.MaxBindings; b < d.cfg.MaxBindings+MaxSharedBandwidths; b++ {
		if used[b] {
			continue
		}
		if err := d.resetBuckets(b); err != nil {
			return 0, fmt.Errorf("shared bandwidth %s: %w", shared, err)
		}
		d.sharedBuckets[shared] = b
		return b, nil
	}
	return 0, fmt.Errorf("shared bandwidth %s: all %d shared buckets are in use", shared, MaxSharedBandwidths)
}

// resetBuckets empties bucket pair b: no stamp (its first packet finds it full) and no
// credit left on any CPU.
func (d *Dataplane) resetBuckets(b uint32) error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("reset bucket %d: %w", b, err)
	}
	noCredit := make([]uint64, cpus)
	for _, key := range []uint32{2 * b, 2*b + 1} {
		if err := d.objs.BucketsBySlot.Update(key, natEipBucket{}, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("reset bucket %d: %w", key, err)
		}
		if err := d.objs.CreditsBySlot.Update(key, noCredit, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("reset credit %d: %w", key, err)
		}
	}
	return nil
}

// ratesOf is the program's form of limit l of the EIP in slot, drawing on bucket pair
// bucket: its rate, and, for a capped EIP of a shared bandwidth, its cap, drawn from
// the slot's own pair (which the shared bandwidth leaves unused).
func (d *Dataplane) ratesOf(l desired.Limit, slot, bucket uint32) (rate, capRate natEipRate) {
	rate = rateOf(l.Bits, bucket)
	if l.Shared == "" || l.Bits == 0 || l.Cap == 0 {
		return rate, natEipRate{}
	}
	rate.Capped = 1
	return rate, rateOf(l.Cap, slot)
}

// setCap writes the cap of the EIP in slot, before its rate says it has one, so that
// the program never reads an old cap as this one. A cap it did not have (or another)
// starts from a full bucket and no credit left from the slot's time before its shared
// bandwidth. Under d.mu.
func (d *Dataplane) setCap(slot uint32, capRate natEipRate) error {
	var have natEipRate
	if err := d.objs.CapsBySlot.Lookup(slot, &have); err != nil {
		return fmt.Errorf("read cap: %w", err)
	}
	if have == capRate {
		return nil
	}
	if err := d.resetBuckets(slot); err != nil {
		return err
	}
	if err := d.objs.CapsBySlot.Update(slot, capRate, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write cap: %w", err)
	}
	return nil
}

// rateOf is the program's form of a bandwidth drawn from bucket pair bucket.
func rateOf(bitsPerSecond uint64, bucket uint32) natEipRate {
	if bitsPerSecond == 0 {
		return natEipRate{}
	}
	return natEipRate{BytesPerSec: bitsPerSecond / 8, BurstBytes: BurstFor(bitsPerSecond), Bucket: bucket}
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
// meet the new rate with the old burst or bucket once: each is a limit the EIP had.
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
