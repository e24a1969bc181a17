package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The next-hop cache: what bpf_fib_lookup would answer, computed from the kernel's
// routes, neighbours and links (ReadNextHops) and kept current by WatchNextHops, so
// that a packet whose next hop is known skips the FIB lookup (bpf/lib/forward.h).
// A 1:1 binding's inbound half carries its private address's hop; other VPC
// addresses (instances behind NAT gateways, cut-through ENIs) have theirs in
// next_hops; every destination beyond the specific routes takes the default
// route's. A packet whose hop is missing, stale or too small asks the FIB, counted
// by NextHopFallbacks.

// NextHop is where a packet to some destination goes.
type NextHop struct {
	IfIndex int
	DstMAC  net.HardwareAddr
	SrcMAC  net.HardwareAddr
	MTU     int // the largest IP packet it takes
}

func (h NextHop) String() string {
	return fmt.Sprintf("if%d %v->%v mtu %d", h.IfIndex, h.SrcMAC, h.DstMAC, h.MTU)
}

// NextHops is the cache's content.
type NextHops struct {
	// Enabled is false when the kernel's routing cannot be cached (policy rules,
	// routes by TOS, a default table in use): every packet asks the FIB.
	Enabled bool
	// Default is the default route's hop, for destinations beyond every Specific
	// prefix; nil when there is none or it cannot be cached (multipath).
	Default *NextHop
	// Specific covers the prefix of every other route, local ones included: a
	// destination inside asks ByAddr or the FIB, never Default.
	Specific []netip.Prefix
	// ByAddr are the hops of VPC addresses.
	ByAddr map[netip.Addr]NextHop
}

// NextHopFallbacks counts packets whose next hop came from the FIB, by why.
type NextHopFallbacks struct {
	Off, Miss, Stale, Size uint64
}

func encodeNextHop(h NextHop, generation uint32) (natNextHop, error) {
	var v natNextHop
	if h.IfIndex <= 0 || len(h.DstMAC) != 6 || len(h.SrcMAC) != 6 || h.MTU <= 0 {
		return v, fmt.Errorf("next hop %v is incomplete", h)
	}
	v.Ifindex = uint32(h.IfIndex)
	copy(v.Dmac[:], h.DstMAC)
	copy(v.Smac[:], h.SrcMAC)
	v.Mtu = uint16(min(h.MTU, 0xffff))
	v.Generation = generation
	return v, nil
}

func sameHop(a, b NextHop) bool {
	return a.IfIndex == b.IfIndex && a.MTU == b.MTU && bytes.Equal(a.DstMAC, b.DstMAC) && bytes.Equal(a.SrcMAC, b.SrcMAC)
}

// nextHopState is the owner's copy of what the cache holds (under Dataplane.mu).
type nextHopState struct {
	generation uint32 // of the entries written; 0 before the first SetNextHops
	byAddr     map[uint32]NextHop
}

// hopOf is the encoded hop of a private address for a binding's inbound half, or
// none (all zero).
func (d *Dataplane) hopOf(privKey uint32) natNextHop {
	h, ok := d.hops.byAddr[privKey]
	if !ok || d.hops.generation == 0 {
		return natNextHop{}
	}
	v, err := encodeNextHop(h, d.hops.generation)
	if err != nil {
		return natNextHop{}
	}
	return v
}

// DisableNextHops makes every packet ask the FIB, at once: what a change the cache
// has not caught up with yet needs. SetNextHops enables it again.
func (d *Dataplane) DisableNextHops() error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("disable next hops: %w", ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cfg natNextHopConfig
	if err := d.objs.NextHopSettings.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("disable next hops: %w", err)
	}
	cfg.Generation = 0
	if err := d.objs.NextHopSettings.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("disable next hops: %w", err)
	}
	return nil
}

// SetNextHops makes the cache hold hops, writing only what changed. Entries are
// written before the settings that make them current, and the old ones go after; a
// packet in between finds a hop of the old or the new table, or asks the FIB.
func (d *Dataplane) SetNextHops(hops NextHops) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("set next hops: %w", ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	// A new generation when the owner's copy may not be what the maps hold (the
	// first call of this process, after adopting pins): every entry is rewritten and
	// anything left behind is stale, never used.
	gen := d.hops.generation
	full := gen == 0
	if full {
		var cur natNextHopConfig
		if err := d.objs.NextHopSettings.Lookup(uint32(0), &cur); err != nil {
			return fmt.Errorf("set next hops: %w", err)
		}
		gen = cur.Generation + 1
		if gen == 0 {
			gen = 1
		}
	}
	want := map[uint32]NextHop{}
	for a, h := range hops.ByAddr {
		k, err := beKey(a)
		if err != nil {
			return fmt.Errorf("set next hops: %w", err)
		}
		want[k] = h
	}
	changed := map[uint32]bool{}
	var keys []uint32
	var vals []natNextHop
	for k, h := range want {
		if old, ok := d.hops.byAddr[k]; ok && !full && sameHop(old, h) {
			continue
		}
		v, err := encodeNextHop(h, gen)
		if err != nil {
			return fmt.Errorf("set next hops: %v: %w", beAddr(k), err)
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	if err := d.putNextHops(keys, vals, changed); err != nil {
		return fmt.Errorf("set next hops: %w", err)
	}
	// What the maps may hold beyond want: what this process wrote before, or, on
	// the first call (adopted pins), whatever is there.
	var stale []uint32
	if full {
		if err := eachEntry(d.objs.NextHops, func(k uint32, _ natNextHop) {
			if _, ok := want[k]; !ok {
				stale = append(stale, k)
			}
		}); err != nil {
			return fmt.Errorf("set next hops: list old entries: %w", err)
		}
	} else {
		for k := range d.hops.byAddr {
			if _, ok := want[k]; !ok {
				stale = append(stale, k)
			}
		}
	}
	for _, k := range stale {
		changed[k] = true
	}
	d.hops.byAddr, d.hops.generation = want, gen
	if full || len(changed) != 0 {
		if err := d.refreshBindingHops(changed, full); err != nil {
			return fmt.Errorf("set next hops: %w", err)
		}
	}

	cfg := natNextHopConfig{}
	if hops.Enabled {
		cfg.Generation = gen
	}
	if hops.Default != nil {
		v, err := encodeNextHop(*hops.Default, gen)
		if err != nil {
			return fmt.Errorf("set next hops: default: %w", err)
		}
		cfg.DefaultHop = v
	}
	specific, err := prefixSet("specific routes", coverPrefixes(hops.Specific, MaxEdgePrefixes))
	if err != nil {
		return fmt.Errorf("set next hops: %w", err)
	}
	cfg.SpecificRoutes = specific
	if err := d.objs.NextHopSettings.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("set next hops: %w", err)
	}

	// Old entries last.
	for _, k := range stale {
		if err := d.objs.NextHops.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("set next hops: remove %v: %w", beAddr(k), err)
		}
	}
	return nil
}

// putNextHops writes next_hops entries, a batch a syscall, and marks each written key
// changed. An entry the full map has no room for is left out: its address asks the
// FIB.
func (d *Dataplane) putNextHops(keys []uint32, vals []natNextHop, changed map[uint32]bool) error {
	for start := 0; start < len(keys); {
		chunk := min(len(keys)-start, batchSize)
		n, err := putMany(d.objs.NextHops, keys[start:start+chunk], vals[start:start+chunk], ebpf.UpdateAny)
		for _, k := range keys[start : start+n] {
			changed[k] = true
		}
		start += n
		switch {
		case err == nil:
		case errors.Is(err, unix.E2BIG):
			start++ // full: this address asks the FIB; the rest may still fit (replacements)
		default:
			return fmt.Errorf("%v: %w", beAddr(keys[start]), err)
		}
	}
	return nil
}

// refreshBindingHops rewrites the inbound halves whose private address's hop changed
// (all of them when all is set: read and written a batch a syscall). The caller
// holds d.mu.
func (d *Dataplane) refreshBindingHops(changed map[uint32]bool, all bool) error {
	if all {
		var keys []uint32
		var vals []natBinding
		if err := eachEntry(d.objs.InboundBindings, func(eip uint32, b natBinding) {
			b.Hop = d.hopOf(b.Addr)
			keys, vals = append(keys, eip), append(vals, b)
		}); err != nil {
			return fmt.Errorf("read bindings: %w", err)
		}
		// d.mu is held: no binding comes or goes between the read and the write.
		for start := 0; start < len(keys); start += batchSize {
			end := min(start+batchSize, len(keys))
			if _, err := putMany(d.objs.InboundBindings, keys[start:end], vals[start:end], ebpf.UpdateExist); err != nil {
				return fmt.Errorf("rewrite bindings' hops: %w", err)
			}
		}
		return nil
	}
	for eip, priv := range d.bound {
		if !all && !changed[priv] {
			continue
		}
		var b natBinding
		if err := d.objs.InboundBindings.Lookup(eip, &b); err != nil {
			return fmt.Errorf("binding %v: %w", beAddr(eip), err)
		}
		b.Hop = d.hopOf(b.Addr)
		// d.mu is held: the binding is there, as its copy says.
		if err := d.objs.InboundBindings.Update(eip, b, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("binding %v: %w", beAddr(eip), err)
		}
	}
	return nil
}

// NextHopsInForce reads the cache's settings: whether it is on, and its default hop.
func (d *Dataplane) NextHopsInForce() (enabled bool, def *NextHop, err error) {
	var cfg natNextHopConfig
	if err := d.objs.NextHopSettings.Lookup(uint32(0), &cfg); err != nil {
		return false, nil, fmt.Errorf("read next hops: %w", err)
	}
	if cfg.DefaultHop.Ifindex != 0 && cfg.DefaultHop.Generation == cfg.Generation {
		h := cfg.DefaultHop
		def = &NextHop{IfIndex: int(h.Ifindex), DstMAC: net.HardwareAddr(h.Dmac[:]), SrcMAC: net.HardwareAddr(h.Smac[:]), MTU: int(h.Mtu)}
	}
	return cfg.Generation != 0, def, nil
}

// NextHopFallbacks sums the fallback counters over CPUs.
func (d *Dataplane) NextHopFallbacks() (NextHopFallbacks, error) {
	var out NextHopFallbacks
	for why, dst := range map[natNextHopFallback]*uint64{
		natNextHopFallbackNEXT_HOP_FALLBACK_OFF:   &out.Off,
		natNextHopFallbackNEXT_HOP_FALLBACK_MISS:  &out.Miss,
		natNextHopFallbackNEXT_HOP_FALLBACK_STALE: &out.Stale,
		natNextHopFallbackNEXT_HOP_FALLBACK_SIZE:  &out.Size,
	} {
		var perCPU []uint64
		if err := d.objs.NextHopFallbacks.Lookup(uint32(why), &perCPU); err != nil {
			return out, fmt.Errorf("read next-hop fallbacks: %w", err)
		}
		for _, n := range perCPU {
			*dst += n
		}
	}
	return out, nil
}

// coverPrefixes returns at most limit prefixes that cover every one of ps: ps itself
// when it fits, else coarser ones. Covering more than the specific routes is safe
// (those destinations ask ByAddr or the FIB); covering less never happens.
func coverPrefixes(ps []netip.Prefix, limit int) []netip.Prefix {
	set := map[netip.Prefix]bool{}
	for _, p := range ps {
		set[p.Masked()] = true
	}
	for bits := 32; len(set) > limit; bits-- {
		next := map[netip.Prefix]bool{}
		for p := range set {
			if p.Bits() > bits {
				p = netip.PrefixFrom(p.Addr(), bits).Masked()
			}
			next[p] = true
		}
		set = next
		if bits == 0 {
			break
		}
	}
	// A prefix inside another adds nothing.
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		covered := false
		for q := range set {
			if q != p && q.Bits() < p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, p)
		}
	}
	return out
}
