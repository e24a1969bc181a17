package dataplane

import (
	"github.com/eipgw/eipgw/desired"

	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// NAT gateways in the dataplane: the EIPs of gateways, SNAT rules (source prefix ->
// EIP pool), forward ports (external endpoint -> internal endpoint), the settings
// (timeouts, port range, quotas) and the sessions the BPF programs track.

var (
	// ErrNotNatEIP means an SNAT rule or forward port names an EIP that is not a NAT
	// gateway's in the dataplane.
	ErrNotNatEIP = errors.New("EIP is not a NAT gateway EIP in the dataplane")
	// ErrBadNatConfig means NatConfig has a value the dataplane cannot use.
	ErrBadNatConfig = errors.New("invalid NAT configuration")
	// ErrPoolSize means an SNAT rule has no EIP or more than MaxPoolEIPs.
	ErrPoolSize = errors.New("SNAT pool must have 1 to 20 EIPs")
)

// MaxPoolEIPs is how many EIPs one SNAT rule may use.
const MaxPoolEIPs = desired.MaxPoolEIPs

// The C pool (MAX_POOL_EIPS) holds exactly that many: this fails to compile otherwise.
var _ [MaxPoolEIPs]uint32 = natSnatPool{}.Eips

// Protocol numbers of what NAT gateways translate.
const (
	ProtoICMP = desired.ProtoICMP
	ProtoTCP  = desired.ProtoTCP
	ProtoUDP  = desired.ProtoUDP
)

// NatConfig holds the NAT gateways' timeouts, external port range and per-source
// quotas (RFC 6888). The defaults follow RFC 4787, 5382 and 5508.
type NatConfig struct {
	TCPEstablished time.Duration // RFC 5382: at least 2 h 4 min
	TCPTransitory  time.Duration // RFC 5382: at least 4 min
	UDP            time.Duration // RFC 4787: at least 2 min, 5 min recommended
	ICMP           time.Duration // RFC 5508: at least 60 s
	PortMin        uint16        // external ports are taken from [PortMin, PortMax]
	PortMax        uint16
	// MaxSessionsPerSource and MaxPortsPerSource bound what one internal address
	// holds; past them its new sessions are refused (ICMP 3/13).
	MaxSessionsPerSource uint32
	MaxPortsPerSource    uint32
	// MaxPortProbes bounds the port search of one new mapping.
	MaxPortProbes uint32
	// ICMPSource is the gateway's own VPC-side address, the source of its ICMP 3/13
	// refusals; the zero Addr means refusals are counted and dropped silently.
	ICMPSource netip.Addr
	// UDPInboundRefresh lets packets from the remote side keep a UDP session alive
	// too. RFC 4787 REQ-6 requires outbound refresh and allows inbound, but then a
	// remote host alone can hold a mapping open for ever (section 4.3): off by default.
	UDPInboundRefresh bool
}

// DefaultNatConfig is what the dataplane uses until told otherwise.
func DefaultNatConfig() NatConfig {
	return NatConfig{
		TCPEstablished:       7440 * time.Second,
		TCPTransitory:        240 * time.Second,
		UDP:                  300 * time.Second,
		ICMP:                 60 * time.Second,
		PortMin:              1024,
		PortMax:              65535,
		MaxSessionsPerSource: 65536,
		MaxPortsPerSource:    16384,
		MaxPortProbes:        512,
	}
}

func (c NatConfig) validate() error {
	switch {
	case c.TCPEstablished <= 0 || c.TCPTransitory <= 0 || c.UDP <= 0 || c.ICMP <= 0:
		return fmt.Errorf("%w: every timeout must be positive", ErrBadNatConfig)
	case c.PortMin == 0 || c.PortMax < c.PortMin:
		return fmt.Errorf("%w: port range %d-%d", ErrBadNatConfig, c.PortMin, c.PortMax)
	case c.MaxSessionsPerSource == 0 || c.MaxPortsPerSource == 0:
		return fmt.Errorf("%w: quotas must be at least 1", ErrBadNatConfig)
	case c.MaxPortProbes == 0:
		return fmt.Errorf("%w: the port search needs at least one probe", ErrBadNatConfig)
	case c.ICMPSource.IsValid() && !c.ICMPSource.Is4():
		return fmt.Errorf("%w: ICMP source %v is not IPv4", ErrBadNatConfig, c.ICMPSource)
	}
	return nil
}

// SetNatConfig replaces the NAT settings. New timeouts apply to every session at its
// next expiry check; a new port range applies to new mappings only.
func (d *Dataplane) SetNatConfig(c NatConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set NAT config: %w", ErrReadOnly)
	}
	v := natNatConfig{
		TcpEstablishedNs:     uint64(c.TCPEstablished),
		TcpTransitoryNs:      uint64(c.TCPTransitory),
		UdpNs:                uint64(c.UDP),
		IcmpNs:               uint64(c.ICMP),
		MaxSessionsPerSource: c.MaxSessionsPerSource,
		MaxPortsPerSource:    c.MaxPortsPerSource,
		MaxPortProbes:        c.MaxPortProbes,
		PortMin:              c.PortMin,
		PortMax:              c.PortMax,
	}
	if c.UDPInboundRefresh {
		v.UdpInboundRefresh = 1
	}
	if c.ICMPSource.IsValid() {
		v.IcmpSource, _ = beKey(c.ICMPSource)
	}
	// The session table's seed and size are the table's, and a frozen clock (tests)
	// stays frozen.
	var cur natNatConfig
	if err := d.objs.NatSettings.Lookup(uint32(0), &cur); err != nil {
		return fmt.Errorf("set NAT config: %w", err)
	}
	v.FrozenNowNs, v.SessionSeed, v.SessionBuckets = cur.FrozenNowNs, cur.SessionSeed, cur.SessionBuckets
	if err := d.objs.NatSettings.Put(uint32(0), v); err != nil {
		return fmt.Errorf("set NAT config: %w", err)
	}
	return nil
}

// freezeSessionClock makes the sessions' clock stand still at now (0: run again),
// for the packet path and for the collector alike: tests expire sessions by moving
// it, never by sleeping.
func (d *Dataplane) freezeSessionClock(now time.Duration) error {
	var v natNatConfig
	if err := d.objs.NatSettings.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("freeze the session clock: %w", err)
	}
	v.FrozenNowNs = uint64(now)
	if err := d.objs.NatSettings.Put(uint32(0), v); err != nil {
		return fmt.Errorf("freeze the session clock: %w", err)
	}
	return nil
}

// NatConfig reads the NAT settings in force.
func (d *Dataplane) NatConfig() (NatConfig, error) {
	var v natNatConfig
	if err := d.objs.NatSettings.Lookup(uint32(0), &v); err != nil {
		return NatConfig{}, fmt.Errorf("read NAT config: %w", err)
	}
	c := NatConfig{
		TCPEstablished:       time.Duration(v.TcpEstablishedNs),
		TCPTransitory:        time.Duration(v.TcpTransitoryNs),
		UDP:                  time.Duration(v.UdpNs),
		ICMP:                 time.Duration(v.IcmpNs),
		PortMin:              v.PortMin,
		PortMax:              v.PortMax,
		MaxSessionsPerSource: v.MaxSessionsPerSource,
		MaxPortsPerSource:    v.MaxPortsPerSource,
		MaxPortProbes:        v.MaxPortProbes,
		UDPInboundRefresh:    v.UdpInboundRefresh != 0,
	}
	if v.IcmpSource != 0 {
		c.ICMPSource = beAddr(v.IcmpSource)
	}
	return c, nil
}

// ensureNatConfig writes the defaults into a dataplane that has none yet (a fresh
// one); an adopted dataplane keeps what it had until SetNatConfig.
func (d *Dataplane) ensureNatConfig() error {
	var v natNatConfig
	if err := d.objs.NatSettings.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("read NAT config: %w", err)
	}
	// A new session table gets its secret seed and its size once: its records sit
	// where they put them, for as long as the pins live.
	if v.SessionBuckets == 0 {
		var seed [4]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return fmt.Errorf("seed the session table: %w", err)
		}
		v.SessionSeed = binary.NativeEndian.Uint32(seed[:])
		v.SessionBuckets = d.objs.SessionTable.MaxEntries()
		if err := d.objs.NatSettings.Put(uint32(0), v); err != nil {
			return fmt.Errorf("seed the session table: %w", err)
		}
	}
	if v.PortMax != 0 {
		return nil
	}
	return d.SetNatConfig(DefaultNatConfig())
}

// SetNatEIP makes eip an EIP of a NAT gateway: it gets per-EIP counters and may be
// used by SNAT rules and forward ports. Setting it again changes nothing.
func (d *Dataplane) SetNatEIP(eip netip.Addr) error {
	key, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("set NAT EIP: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set NAT EIP %v: %w", eip, ErrReadOnly)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur natNatEip
	if err := d.objs.NatEips.Lookup(key, &cur); err == nil {
		return nil
	} else if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("set NAT EIP %v: %w", eip, err)
	}
	if err := d.objs.InboundBindings.Lookup(key, new(natBinding)); err == nil {
		return fmt.Errorf("set NAT EIP %v: %w", eip, ErrCutThrough)
	}
	slot, ok := d.slots.take()
	if !ok {
		return fmt.Errorf("set NAT EIP %v: %w", eip, ErrFull)
	}
	block, ok := d.portBlocks.take()
	if !ok {
		d.slots.free(slot)
		return fmt.Errorf("set NAT EIP %v: %w", eip, ErrFull)
	}
	err = d.zeroCounters(slot)
	if err == nil {
		err = d.clearPortBlock(block)
	}
	if err == nil {
		err = d.objs.NatEips.Put(key, natNatEip{CounterSlot: slot, PortBlock: block})
	}
	if err != nil {
		d.slots.free(slot)
		d.portBlocks.free(block)
		return fmt.Errorf("set NAT EIP %v: %w", eip, err)
	}
	d.slotByEIP[key] = slot
	return nil
}

// DeleteNatEIP removes eip from the NAT gateways: its SNAT rules and forward ports
// must be gone already; its sessions are purged.
func (d *Dataplane) DeleteNatEIP(eip netip.Addr) error {
	key, err := beKey(eip)
	if err != nil {
		return fmt.Errorf("delete NAT EIP: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete NAT EIP %v: %w", eip, ErrReadOnly)
	}
	if _, err := d.PurgeSessions(func(s Session) bool { return s.External.Addr() == eip }); err != nil {
		return fmt.Errorf("delete NAT EIP %v: %w", eip, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur natNatEip
	if err := d.objs.NatEips.Lookup(key, &cur); errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete NAT EIP %v: %w", eip, ErrNotBound)
	} else if err != nil {
		return fmt.Errorf("delete NAT EIP %v: %w", eip, err)
	}
	if err := d.objs.NatEips.Delete(key); err != nil {
		return fmt.Errorf("delete NAT EIP %v: %w", eip, err)
	}
	d.slots.free(cur.CounterSlot)
	d.portBlocks.free(cur.PortBlock)
	delete(d.slotByEIP, key)
	return nil
}

// NatEIPs lists the NAT gateway EIPs in the dataplane.
func (d *Dataplane) NatEIPs() ([]netip.Addr, error) {
	var out []netip.Addr
	if err := eachEntry(d.objs.NatEips, func(key uint32, _ natNatEip) { out = append(out, beAddr(key)) }); err != nil {
		return nil, fmt.Errorf("list NAT EIPs: %w", err)
	}
	return out, nil
}

func (d *Dataplane) natEIP(eip netip.Addr) (natNatEip, error) {
	key, err := beKey(eip)
	if err != nil {
		return natNatEip{}, err
	}
	var v natNatEip
	if err := d.objs.NatEips.Lookup(key, &v); errors.Is(err, ebpf.ErrKeyNotExist) {
		return natNatEip{}, fmt.Errorf("%v: %w", eip, ErrNotNatEIP)
	} else if err != nil {
		return natNatEip{}, err
	}
	return v, nil
}

// SnatRule sends traffic from Source out through one of the Pool's EIPs.
type SnatRule = desired.SnatRule

func ruleKey(p netip.Prefix) (natSnatRuleKey, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return natSnatRuleKey{}, fmt.Errorf("source %v: %w", p, ErrNotIPv4)
	}
	a, _ := beKey(p.Masked().Addr())
	return natSnatRuleKey{Prefixlen: uint32(p.Bits()), Addr: a}, nil
}

// SetSnatRule adds or replaces the rule for r.Source. A replaced rule's existing
// sessions keep their EIPs; new mappings use the new pool.
func (d *Dataplane) SetSnatRule(r SnatRule) error {
	key, err := ruleKey(r.Source)
	if err != nil {
		return fmt.Errorf("set SNAT rule: %w", err)
	}
	if len(r.Pool) == 0 || len(r.Pool) > MaxPoolEIPs {
		return fmt.Errorf("set SNAT rule %v: %w (%d)", r.Source, ErrPoolSize, len(r.Pool))
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set SNAT rule %v: %w", r.Source, ErrReadOnly)
	}
	var pool natSnatPool
	for i, eip := range r.Pool {
		e, err := d.natEIP(eip)
		if err != nil {
			return fmt.Errorf("set SNAT rule %v: %w", r.Source, err)
		}
		pool.Eips[i], _ = beKey(eip)
		pool.CounterSlots[i] = e.CounterSlot
		pool.PortBlocks[i] = e.PortBlock
	}
	pool.EipCount = uint32(len(r.Pool))
	if r.Affinity {
		pool.Affinity = 1
	}
	if err := d.objs.SnatRules.Put(key, pool); err != nil {
		return fmt.Errorf("set SNAT rule %v: %w", r.Source, err)
	}
	return nil
}

// DeleteSnatRule removes the rule for source and purges the SNAT sessions of the
// addresses it covered.
func (d *Dataplane) DeleteSnatRule(source netip.Prefix) error {
	key, err := ruleKey(source)
	if err != nil {
		return fmt.Errorf("delete SNAT rule: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete SNAT rule %v: %w", source, ErrReadOnly)
	}
	if err := d.objs.SnatRules.Delete(key); err != nil {
		return fmt.Errorf("delete SNAT rule %v: %w", source, err)
	}
	if _, err := d.PurgeSessions(func(s Session) bool { return s.Kind == KindSNAT && source.Contains(s.Inside.Addr()) }); err != nil {
		return fmt.Errorf("delete SNAT rule %v: %w", source, err)
	}
	return nil
}

// SnatRules lists the SNAT rules in the dataplane.
func (d *Dataplane) SnatRules() ([]SnatRule, error) {
	var out []SnatRule
	var key natSnatRuleKey
	var pool natSnatPool
	it := d.objs.SnatRules.Iterate()
	for it.Next(&key, &pool) {
		r := SnatRule{Source: netip.PrefixFrom(beAddr(key.Addr), int(key.Prefixlen)), Affinity: pool.Affinity == 1}
		for i := 0; i < int(pool.EipCount) && i < MaxPoolEIPs; i++ {
			r.Pool = append(r.Pool, beAddr(pool.Eips[i]))
		}
		out = append(out, r)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list SNAT rules: %w", err)
	}
	return out, nil
}

// ForwardPort publishes Internal on External for one protocol (ProtoTCP or ProtoUDP).
type ForwardPort = desired.ForwardPort

func endpointKey(proto uint8, ap netip.AddrPort) (natEndpoint, error) {
	a, err := beKey(ap.Addr())
	if err != nil {
		return natEndpoint{}, err
	}
	return natEndpoint{Addr: a, Port: htons(ap.Port()), Protocol: proto}, nil
}

// SetForwardPort adds or replaces a forward port; sessions already open keep their
// old target until they end.
func (d *Dataplane) SetForwardPort(f ForwardPort) error {
	if f.Protocol != ProtoTCP && f.Protocol != ProtoUDP {
		return fmt.Errorf("set forward port %v: protocol %d is neither TCP nor UDP", f.External, f.Protocol)
	}
	ext, err := endpointKey(f.Protocol, f.External)
	if err != nil {
		return fmt.Errorf("set forward port: %w", err)
	}
	in, err := beKey(f.Internal.Addr())
	if err != nil {
		return fmt.Errorf("set forward port: %w", err)
	}
	if d.cfg.ReadOnly {
		return fmt.Errorf("set forward port %v: %w", f.External, ErrReadOnly)
	}
	e, err := d.natEIP(f.External.Addr())
	if err != nil {
		return fmt.Errorf("set forward port: %w", err)
	}
	target := natForwardTarget{Addr: in, Port: htons(f.Internal.Port()), CounterSlot: e.CounterSlot}
	d.fwdMu.Lock()
	defer d.fwdMu.Unlock()
	if err := d.objs.ForwardPorts.Put(ext, target); err != nil {
		return fmt.Errorf("set forward port %v: %w", f.External, err)
	}
	d.fwd[ext] = target
	return nil
}

// ExternalPort names a forward port by its protocol and external endpoint.
type ExternalPort = desired.ExternalPort

// DeleteForwardPort removes a forward port and purges the sessions it opened.
func (d *Dataplane) DeleteForwardPort(proto uint8, external netip.AddrPort) error {
	return d.DeleteForwardPorts([]ExternalPort{{Protocol: proto, External: external}})
}

// DeleteForwardPorts removes forward ports (an entry's whole port range, say), then
// purges the sessions they opened in one pass over the sessions, whatever their
// number: new sessions stop first, and no session of theirs is left.
func (d *Dataplane) DeleteForwardPorts(ports []ExternalPort) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("delete forward ports: %w", ErrReadOnly)
	}
	gone := make(map[ExternalPort]bool, len(ports))
	d.fwdMu.Lock()
	for _, p := range ports {
		ext, err := endpointKey(p.Protocol, p.External)
		if err != nil {
			d.fwdMu.Unlock()
			return fmt.Errorf("delete forward port: %w", err)
		}
		if err := d.objs.ForwardPorts.Delete(ext); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			d.fwdMu.Unlock()
			return fmt.Errorf("delete forward port %v/%d: %w", p.External, p.Protocol, err)
		}
		delete(d.fwd, ext)
		gone[p] = true
	}
	d.fwdMu.Unlock()
	if _, err := d.PurgeSessions(func(s Session) bool {
		return s.Kind == KindDNAT && gone[ExternalPort{Protocol: s.Protocol, External: s.External}]
	}); err != nil {
		return fmt.Errorf("delete forward ports: purge their sessions: %w", err)
	}
	return nil
}

// ForwardPorts lists the forward ports in the dataplane: the owner's copy, or
// (read-only) a walk.
func (d *Dataplane) ForwardPorts() ([]ForwardPort, error) {
	var out []ForwardPort
	add := func(key natEndpoint, t natForwardTarget) {
		out = append(out, ForwardPort{
			Protocol: key.Protocol,
			External: netip.AddrPortFrom(beAddr(key.Addr), ntohs(key.Port)),
			Internal: netip.AddrPortFrom(beAddr(t.Addr), ntohs(t.Port)),
		})
	}
	if !d.cfg.ReadOnly {
		d.fwdMu.Lock()
		defer d.fwdMu.Unlock()
		for k, t := range d.fwd {
			add(k, t)
		}
		return out, nil
	}
	if err := eachEntry(d.objs.ForwardPorts, add); err != nil {
		return nil, fmt.Errorf("list forward ports: %w", err)
	}
	return out, nil
}

// htons and ntohs convert between host order and the __be16 the maps hold (the
// dataplane is built for little-endian hosts only: bpfel).
func htons(v uint16) uint16 { return v<<8 | v>>8 }
func ntohs(v uint16) uint16 { return htons(v) }
