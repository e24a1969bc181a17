package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
	"github.com/eipgw/eipgw/internal/intsort"
	"golang.org/x/sys/unix"
)

// The edge: which VPC sources may be translated (an address with the MAC of the
// instance registered with it), which internet sources are refused (special-purpose
// prefixes) and which VPC sources are nobody's to send (the EIP pools).

var (
	// ErrTooManyPrefixes means a prefix set has more than MaxEdgePrefixes entries.
	ErrTooManyPrefixes = errors.New("too many prefixes")
)

// MaxEdgePrefixes is how many prefixes each edge set holds (the C MAX_EDGE_PREFIXES).
const MaxEdgePrefixes = len(natPrefixSet{}.Prefixes)

// DefaultSpecialPurpose are the RFC 6890 prefixes that are never a valid source on the
// internet and are refused from the uplink by default: private-use, shared address
// space, loopback, link-local, "this network", multicast and reserved. The
// documentation prefixes (TEST-NET-1..3) and the benchmarking prefix are left out: labs
// route them as if they were public.
var DefaultSpecialPurpose = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// EdgeConfig is what the edge refuses.
type EdgeConfig struct {
	// SpecialPurpose sources are dropped from the internet; untranslated VPC traffic
	// may be forwarded only to these destinations (the VPC's other subnets, internal
	// services), never to a global address.
	SpecialPurpose []netip.Prefix
	// EIPPools may be a source from the VPC only as a cut-through EIP from its ENI.
	EIPPools []netip.Prefix
}

// DefaultEdgeConfig refuses DefaultSpecialPurpose and knows no pools.
func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{SpecialPurpose: slices.Clone(DefaultSpecialPurpose)}
}

func prefixSet(name string, prefixes []netip.Prefix) (natPrefixSet, error) {
	var s natPrefixSet
	if len(prefixes) > MaxEdgePrefixes {
		return s, fmt.Errorf("%s: %w (%d, at most %d)", name, ErrTooManyPrefixes, len(prefixes), MaxEdgePrefixes)
	}
	for i, p := range prefixes {
		if !p.Addr().Is4() {
			return s, fmt.Errorf("%s: %v: %w", name, p, ErrNotIPv4)
		}
		p = p.Masked()
		addr, _ := beKey(p.Addr())
		mask, _ := beKey(netip.AddrFrom4([4]byte(net.CIDRMask(p.Bits(), 32))))
		s.Prefixes[i] = natPrefix4{Addr: addr, Mask: mask}
		// Every first octet the prefix covers gets its bit: the program scans the
		// prefixes only for an address whose first octet has one.
		first := int(p.Addr().As4()[0])
		span := 1
		if p.Bits() < 8 {
			span = 1 << (8 - p.Bits())
		}
		for o := first; o < first+span; o++ {
			s.FirstOctets[o/32] |= 1 << (o % 32)
		}
	}
	s.Count = uint32(len(prefixes))
	return s, nil
}

func prefixesOf(s natPrefixSet) []netip.Prefix {
	out := make([]netip.Prefix, 0, s.Count)
	for _, p := range s.Prefixes[:min(int(s.Count), MaxEdgePrefixes)] {
		ones, _ := net.IPMask(beAddr(p.Mask).AsSlice()).Size()
		out = append(out, netip.PrefixFrom(beAddr(p.Addr), ones))
	}
	return out
}

// SetEdgeConfig replaces the edge's prefix sets.
func (d *Dataplane) SetEdgeConfig(c EdgeConfig) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("set edge config: %w", ErrReadOnly)
	}
	special, err := prefixSet("special-purpose prefixes", c.SpecialPurpose)
	if err != nil {
		return fmt.Errorf("set edge config: %w", err)
	}
	pools, err := prefixSet("EIP pools", c.EIPPools)
	if err != nil {
		return fmt.Errorf("set edge config: %w", err)
	}
	if err := d.objs.EdgeSettings.Put(uint32(0), natEdgeConfig{SpecialPurpose: special, EipPools: pools}); err != nil {
		return fmt.Errorf("set edge config: %w", err)
	}
	return nil
}

// EdgeConfig reads the edge's prefix sets in force.
func (d *Dataplane) EdgeConfig() (EdgeConfig, error) {
	var v natEdgeConfig
	if err := d.objs.EdgeSettings.Lookup(uint32(0), &v); err != nil {
		return EdgeConfig{}, fmt.Errorf("read edge config: %w", err)
	}
	return EdgeConfig{SpecialPurpose: prefixesOf(v.SpecialPurpose), EIPPools: prefixesOf(v.EipPools)}, nil
}

// Source is a VPC address and the MAC it may be sent from.
type Source = desired.Source

func sourceKey(s Source) (natSourceKey, error) {
	addr, err := beKey(s.Addr)
	if err != nil {
		return natSourceKey{}, err
	}
	if len(s.MAC) != 6 {
		return natSourceKey{}, fmt.Errorf("MAC %v is not 6 bytes", s.MAC)
	}
	k := natSourceKey{Addr: addr}
	copy(k.Mac[:], s.MAC)
	return k, nil
}

// SetSource lets frames from s.MAC with source s.Addr be translated.
func (d *Dataplane) SetSource(s Source) error {
	key, err := sourceKey(s)
	if err != nil {
		return fmt.Errorf("set source: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set source %v: %w", s, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.objs.VpcSources.Put(key, uint32(1)); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("set source %v: %w (%d sources)", s, ErrFull, d.cfg.MaxSources)
		}
		return fmt.Errorf("set source %v: %w", s, err)
	}
	d.sources.add(key)
	if err := d.refreshSender(key.Addr); err != nil {
		return fmt.Errorf("set source %v: %w", s, err)
	}
	if _, known := d.hops.byAddr[key.Addr]; !known {
		d.wantHops()
	}
	return nil
}

// AddSources lets many sources be translated at once (a start-up reconcile), a batch
// of them a syscall; sources already registered are left as they are. On an error,
// the sources of the batch that failed and after it may not be in; those before are.
func (d *Dataplane) AddSources(ss []Source) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("add sources: %w", ErrReadOnly)
	}
	keys := make([]natSourceKey, 0, len(ss))
	for _, s := range ss {
		key, err := sourceKey(s)
		if err != nil {
			return fmt.Errorf("add sources: %w", err)
		}
		keys = append(keys, key)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	privates := make(map[uint32]bool, len(d.bound))
	for _, priv := range d.bound {
		privates[priv] = true
	}
	ones := make([]uint32, min(len(keys), batchSize))
	for i := range ones {
		ones[i] = 1
	}
	for start := 0; start < len(keys); start += batchSize {
		chunk := keys[start:min(start+batchSize, len(keys))]
		n, err := putMany(d.objs.VpcSources, chunk, ones[:len(chunk)], ebpf.UpdateAny)
		for _, key := range chunk[:n] {
			d.sources.add(key)
		}
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("add sources: %w (%d sources)", ErrFull, d.cfg.MaxSources)
		} else if err != nil {
			return fmt.Errorf("add sources: %w", err)
		}
		for _, key := range chunk {
			// Only a bound private address has a binding whose sender may change.
			if privates[key.Addr] {
				if err := d.refreshSender(key.Addr); err != nil {
					return fmt.Errorf("add source %v: %w", sourcesOf([]natSourceKey{key})[0], err)
				}
			}
		}
	}
	if len(keys) > 0 {
		d.wantHops()
	}
	return nil
}

// sourceSet is the owner's copy of vpc_sources: the MACs of each address (almost
// always one; a slice, as 100,000 maps of one entry cost a start more to walk).
type sourceSet map[uint32][][6]uint8

func (s sourceSet) add(k natSourceKey) {
	if !slices.Contains(s[k.Addr], k.Mac) {
		s[k.Addr] = append(s[k.Addr], k.Mac)
	}
}

func (s sourceSet) remove(k natSourceKey) {
	macs := slices.DeleteFunc(s[k.Addr], func(m [6]uint8) bool { return m == k.Mac })
	if len(macs) == 0 {
		delete(s, k.Addr)
	} else {
		s[k.Addr] = macs
	}
}

// keys are the entries, by address (in host order) and then MAC: the order the
// reconciler compares them in.
func (s sourceSet) keys() []natSourceKey {
	// Sorted as integers (the address in host order above the entry's position in
	// macs), with no comparison function: at 100,000 sources a start spends more
	// sorting them than comparing them. Only an address with several MACs needs its
	// run sorted again, by MAC.
	packed := make([]uint64, 0, len(s))
	macs := make([][6]uint8, 0, len(s))
	for addr, ms := range s {
		for _, mac := range ms {
			packed = append(packed, uint64(addrOrder(addr))<<32|uint64(len(macs)))
			macs = append(macs, mac)
		}
	}
	intsort.ByHigh32(packed)
	for i := 0; i < len(packed); {
		j := i + 1
		for j < len(packed) && packed[j]>>32 == packed[i]>>32 {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(packed[i:j], func(a, b uint64) int {
				return bytes.Compare(macs[uint32(a)][:], macs[uint32(b)][:])
			})
		}
		i = j
	}
	out := make([]natSourceKey, len(packed))
	for i, p := range packed {
		out[i] = natSourceKey{Addr: addrOrder(uint32(p >> 32)), Mac: macs[uint32(p)]}
	}
	return out
}

// senderMAC is a MAC registered with the private address, for its binding's outbound
// half (the lowest, so the choice is stable); all zero when none is.
func (d *Dataplane) senderMAC(addr uint32) [6]uint8 {
	var best [6]uint8
	found := false
	for _, mac := range d.sources[addr] {
		if !found || bytes.Compare(mac[:], best[:]) < 0 {
			best, found = mac, true
		}
	}
	return best
}

// refreshSender keeps the outbound binding of addr, if any, carrying a MAC that is
// registered with it. Called with d.mu held.
func (d *Dataplane) refreshSender(addr uint32) error {
	var b natBinding
	if err := d.objs.OutboundBindings.Lookup(addr, &b); errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read outbound binding: %w", err)
	}
	mac := d.senderMAC(addr)
	if b.SenderMac == mac {
		return nil
	}
	b.SenderMac = mac
	if err := d.objs.OutboundBindings.Update(addr, b, ebpf.UpdateExist); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("update outbound binding: %w", err)
	}
	return nil
}

// DeleteSource stops translating frames from s.MAC with source s.Addr. Deleting an
// absent source is not an error.
func (d *Dataplane) DeleteSource(s Source) error {
	key, err := sourceKey(s)
	if err != nil {
		return fmt.Errorf("delete source: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete source %v: %w", s, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// The binding stops naming the MAC before the source goes, so that no packet is
	// translated from it in between.
	d.sources.remove(key)
	if err := d.refreshSender(key.Addr); err != nil {
		d.sources.add(key)
		return fmt.Errorf("delete source %v: %w", s, err)
	}
	if err := d.objs.VpcSources.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete source %v: %w", s, err)
	}
	return nil
}

// sourcesOf are the sources of keys, their MACs in one allocation.
func sourcesOf(keys []natSourceKey) []Source {
	out := make([]Source, len(keys))
	macs := make([]byte, 6*len(keys))
	for i, key := range keys {
		mac := macs[6*i : 6*i+6 : 6*i+6]
		copy(mac, key.Mac[:])
		out[i] = Source{Addr: beAddr(key.Addr), MAC: mac}
	}
	return out
}

// Sources lists the registered VPC sources, sorted (desired.Source.Compare). The
// owner answers from its copy, which only it changes (a reconcile pass reads it
// whole, and a map of 100,000 entries is 200,000 system calls to walk); a reader walks
// the map.
func (d *Dataplane) Sources() ([]Source, error) {
	if !d.cfg.ReadOnly {
		d.mu.Lock()
		defer d.mu.Unlock()
		return sourcesOf(d.sources.keys()), nil
	}
	keys, err := d.sourceKeys()
	if err != nil {
		return nil, err
	}
	return sourcesOf(keys.keys()), nil
}

func (d *Dataplane) sourceKeys() (sourceSet, error) {
	keys := sourceSet{}
	if err := eachEntry(d.objs.VpcSources, func(key natSourceKey, _ uint32) { keys.add(key) }); err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return keys, nil
}
