package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// SessionKind tells how a NAT gateway session began.
type SessionKind string

const (
	KindSNAT SessionKind = "snat" // an instance opened it through an SNAT rule
	KindDNAT SessionKind = "dnat" // it arrived through a forward port
)

// Session is one tracked NAT gateway session.
type Session struct {
	Protocol uint8
	Inside   netip.AddrPort // the instance's endpoint (ICMP echo: the identifier as port)
	Remote   netip.AddrPort // the peer's endpoint as the instance sees it
	External netip.AddrPort // the EIP endpoint the internet sees
	Kind     SessionKind
	Hairpin  bool   // the peer is an EIP of this gateway
	State    string // TCP: syn, established, closing; others: active
	Idle     time.Duration
	Timeout  time.Duration // idle time after which it expires
}

// Expired tells whether the collector may remove it.
func (s Session) Expired() bool { return s.Idle >= s.Timeout }

// sessionNow reads the sessions' clock as the packet path does (conntrack.h's
// session_now): the coarse monotonic clock, unless a test froze it.
func (d *Dataplane) sessionNow() (uint64, error) {
	var v natNatConfig
	if err := d.objs.NatSettings.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read the session clock: %w", err)
	}
	if v.FrozenNowNs != 0 {
		return v.FrozenNowNs, nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts); err != nil {
		return 0, fmt.Errorf("read the coarse monotonic clock: %w", err)
	}
	return uint64(ts.Nano()), nil
}

// tcpState names a session's TCP bits the way conntrack.h times them out.
func tcpState(bits natTcpSeen) (state string, established bool) {
	both := natTcpSeenTCP_SEEN_INSIDE | natTcpSeenTCP_SEEN_REMOTE
	fins := natTcpSeenTCP_FIN_INSIDE | natTcpSeenTCP_FIN_REMOTE
	switch {
	case bits&natTcpSeenTCP_SEEN_RST != 0:
		return "reset", false
	case bits&fins == fins:
		return "closing", false
	case bits&both != both:
		return "syn", false
	case bits&fins != 0:
		return "half-closed", true
	}
	return "established", true
}

// sessionBuckets is the session table's size for maxSessions sessions: 2.25 buckets of
// two records a session, so a full table of SNAT sessions each with its own mapping
// (three records) fills two thirds of it and every probe window keeps room.
// sessionCapacity is its inverse (exact for every maxSessions up to 2^32/9).
func sessionBuckets(maxSessions uint32) uint32 {
	return uint32(max(1, (9*uint64(maxSessions)+3)/4))
}

func sessionCapacity(buckets uint32) uint32 {
	return uint32(4 * uint64(buckets) / 9)
}

// recordTCP is the enum tcp_seen bits a record's state carries.
// recordTCP and recordKind read a record's state word as the program lays it out
// (enum record_state_layout).
func recordTCP(r natSessionRecord) natTcpSeen {
	return natTcpSeen((r.State & uint32(natRecordStateLayoutRECORD_TCP_MASK)) >> natRecordStateLayoutRECORD_TCP_SHIFT)
}

func recordKind(r natSessionRecord) natRecordKind {
	return natRecordKind(r.State & uint32(natRecordStateLayoutRECORD_KIND_MASK))
}

// SessionClockUnit is the resolution of session idle times (the packet path's clock,
// SESSION_CLOCK_SHIFT): a session expires once idle for its timeout, reckoned in whole
// units, so up to one unit before or after the exact time.
const SessionClockUnit = time.Duration(1) << natSessionClockSESSION_CLOCK_SHIFT

// clockUnits is the sessions' clock in last_seen's units.
func clockUnits(ns uint64) uint32 { return uint32(ns >> natSessionClockSESSION_CLOCK_SHIFT) }

// decodeSession describes a session from its outbound record and, when it has one,
// its inbound record.
func (d *Dataplane) decodeSession(out natSessionRecord, in *natSessionRecord, cfg NatConfig, now uint64) Session {
	s := Session{
		Protocol: out.Protocol,
		Inside:   netip.AddrPortFrom(beAddr(out.AddrA), ntohs(out.PortA)),
		Remote:   netip.AddrPortFrom(beAddr(out.AddrB), ntohs(out.PortB)),
		External: netip.AddrPortFrom(beAddr(out.ToAddr), ntohs(out.ToPort)),
		Kind:     KindSNAT,
		Hairpin:  out.Flags&uint8(natSessionFlagsSESSION_HAIRPIN) != 0,
		State:    "active",
	}
	if out.Flags&uint8(natSessionFlagsSESSION_DNAT) != 0 {
		s.Kind = KindDNAT
	}
	// Idle since either direction's last packet, modulo 2^32 units as the program
	// takes it.
	idle := clockUnits(now) - out.LastSeen
	tcp := recordTCP(out)
	if in != nil {
		idle = min(idle, clockUnits(now)-in.LastSeen)
		tcp |= recordTCP(*in)
	}
	s.Idle = time.Duration(idle) * SessionClockUnit
	switch out.Protocol {
	case ProtoTCP:
		var established bool
		s.State, established = tcpState(tcp)
		s.Timeout = cfg.TCPTransitory
		if established {
			s.Timeout = cfg.TCPEstablished
		}
	case ProtoUDP:
		s.Timeout = cfg.UDP
	default:
		s.Timeout = cfg.ICMP
	}
	return s
}

// Sessions lists the sessions for which keep returns true (nil: all), ordered by
// external endpoint.
func (d *Dataplane) Sessions(keep func(Session) bool) ([]Session, error) {
	var out []Session
	err := d.eachSession(func(_ natFlowKey, s Session) error {
		if keep == nil || keep(s) {
			out = append(out, s)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].External != out[j].External {
			return out[i].External.Compare(out[j].External) < 0
		}
		return out[i].Remote.Compare(out[j].Remote) < 0
	})
	return out, err
}

// inboundTuple is an inbound record's key.
type inboundTuple struct {
	remote, eip         uint32
	remotePort, eipPort uint16
	protocol            uint8
}

// eachSession calls fn for every session: its outbound record, with the inbound one
// found by its tuple, read in one pass over the table.
func (d *Dataplane) eachSession(fn func(natFlowKey, Session) error) error {
	cfg, err := d.NatConfig()
	if err != nil {
		return err
	}
	now, err := d.sessionNow()
	if err != nil {
		return err
	}
	// Each outbound record's inbound twin is looked up in the mapped table where the
	// programs would find it; a reader that cannot map the table pairs them through a
	// map of every inbound record instead.
	var table *mappedTable
	var inbound map[inboundTuple]natSessionRecord
	if mem, err := d.objs.SessionTable.Memory(); err == nil {
		var raw natNatConfig
		if err := d.objs.NatSettings.Lookup(uint32(0), &raw); err != nil {
			return fmt.Errorf("read NAT config: %w", err)
		}
		table = newMappedTable(mem, raw)
	} else {
		inbound = map[inboundTuple]natSessionRecord{}
	}
	var outbound []natSessionRecord
	if err := d.eachRecord(func(r natSessionRecord) {
		switch recordKind(r) {
		case natRecordKindRECORD_OUTBOUND:
			outbound = append(outbound, r)
		case natRecordKindRECORD_INBOUND:
			if inbound != nil {
				inbound[inboundTuple{r.AddrA, r.AddrB, r.PortA, r.PortB, r.Protocol}] = r
			}
		}
	}); err != nil {
		return err
	}
	for _, out := range outbound {
		var in *natSessionRecord
		if table != nil {
			r, ok, err := table.inboundOf(out)
			if err != nil {
				return fmt.Errorf("read the session table: %w", err)
			}
			if ok {
				in = &r
			}
		} else if r, ok := inbound[inboundTuple{out.AddrB, out.ToAddr, out.PortB, out.ToPort, out.Protocol}]; ok {
			in = &r
		}
		k := natFlowKey{InsideAddr: out.AddrA, RemoteAddr: out.AddrB, InsidePort: out.PortA,
			RemotePort: out.PortB, Protocol: out.Protocol}
		if err := fn(k, d.decodeSession(out, in, cfg, now)); err != nil {
			return err
		}
	}
	return nil
}

// eachRecord calls fn for every session record (outbound or inbound) the session
// table holds.
func (d *Dataplane) eachRecord(fn func(natSessionRecord)) error {
	return d.eachBucket(func(b natSessionBucket) {
		for _, r := range b.Records {
			if k := recordKind(r); k == natRecordKindRECORD_OUTBOUND || k == natRecordKindRECORD_INBOUND {
				fn(r)
			}
		}
	})
}

// eachBucket calls fn for every bucket of the session table, read through its memory
// mapping: one pass, no syscall per bucket (a reader without write access to the map
// iterates it instead).
func (d *Dataplane) eachBucket(fn func(natSessionBucket)) error {
	table := d.objs.SessionTable
	if mem, err := table.Memory(); err == nil {
		// Read straight into bpf2go's own struct (its layout is the C one), a chunk
		// of buckets at a time.
		chunk := make([]natSessionBucket, 4096)
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&chunk[0])), len(chunk)*int(unsafe.Sizeof(chunk[0])))
		size := int(unsafe.Sizeof(chunk[0]))
		if size != int(table.ValueSize()) {
			return fmt.Errorf("read the session table: buckets of %d bytes, the Go struct has %d", table.ValueSize(), size)
		}
		total := int(table.MaxEntries())
		for first := 0; first < total; first += len(chunk) {
			n := min(len(chunk), total-first)
			if _, err := mem.ReadAt(raw[:n*size], int64(first*size)); err != nil {
				return fmt.Errorf("read the session table: %w", err)
			}
			for _, b := range chunk[:n] {
				fn(b)
			}
		}
		return nil
	}
	var key uint32
	var bucket natSessionBucket
	it := table.Iterate()
	for it.Next(&key, &bucket) {
		fn(bucket)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list the session table: %w", err)
	}
	return nil
}

// expireKeys removes the sessions of keys (with force, all of them; otherwise those
// still idle when the program looks), a batch of them a run of expire_sessions, and
// returns how many went. It stops between two batches, with ctx's error, when ctx
// ends.
func (d *Dataplane) expireKeys(ctx context.Context, keys []natFlowKey, force bool) (int, error) {
	d.expireMu.Lock()
	defer d.expireMu.Unlock()
	batch := int(d.objs.ExpireQueue.MaxEntries())
	indexes := make([]uint32, min(batch, len(keys)))
	for i := range indexes {
		indexes[i] = uint32(i)
	}
	items := make([]natExpireItem, len(indexes))
	removed := 0
	for start := 0; start < len(keys); start += batch {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		chunk := keys[start:min(start+batch, len(keys))]
		for i, k := range chunk {
			items[i] = natExpireItem{Key: k}
		}
		if _, err := putMany(d.objs.ExpireQueue, indexes[:len(chunk)], items[:len(chunk)], ebpf.UpdateAny); err != nil {
			return removed, fmt.Errorf("expire sessions: queue them: %w", err)
		}
		now, err := d.sessionNow()
		if err != nil {
			return removed, fmt.Errorf("expire sessions: %w", err)
		}
		req := natExpireRequest{NowNs: now, Count: uint32(len(chunk))}
		if force {
			req.Force = 1
		}
		prog, err := d.expireProgram()
		if err != nil {
			return removed, fmt.Errorf("expire sessions: %w", err)
		}
		if _, err := prog.Run(&ebpf.RunOptions{Context: &req, ContextOut: &req}); err != nil {
			return removed, fmt.Errorf("expire sessions: %w", err)
		}
		removed += int(req.Expired)
	}
	return removed, nil
}

// CollectResult counts what one collector pass saw and did.
type CollectResult struct {
	Live, Expired int
}

// ExpireIdle removes every session idle past its timeout. Live sessions are never
// removed to make room (RFC 6888): a full table refuses new sessions instead. It stops
// early, with ctx's error, when ctx ends.
func (d *Dataplane) ExpireIdle(ctx context.Context) (CollectResult, error) {
	if d.cfg.ReadOnly {
		return CollectResult{}, fmt.Errorf("expire sessions: %w", ErrReadOnly)
	}
	var idle []natFlowKey
	var res CollectResult
	if err := d.eachSession(func(k natFlowKey, s Session) error {
		if s.Expired() {
			idle = append(idle, k)
		} else {
			res.Live++
		}
		return nil
	}); err != nil {
		return res, err
	}
	expired, err := d.expireKeys(ctx, idle, false)
	res.Expired = expired
	if err != nil {
		return res, err
	}
	// Refreshed since the walk saw them idle.
	res.Live += len(idle) - expired
	return res, nil
}

// PurgeSessions removes every session for which match returns true, alive or not:
// what disassociating an EIP or deleting an entry does to its sessions.
func (d *Dataplane) PurgeSessions(match func(Session) bool) (int, error) {
	if d.cfg.ReadOnly {
		return 0, fmt.Errorf("purge sessions: %w", ErrReadOnly)
	}
	var doomed []natFlowKey
	if err := d.eachSession(func(k natFlowKey, s Session) error {
		if match(s) {
			doomed = append(doomed, k)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	return d.expireKeys(context.Background(), doomed, true)
}

// PortUsage is how many external ports of an EIP are mapped, per protocol.
type PortUsage struct {
	EIP               netip.Addr
	TCP, UDP, ICMP    int // mapped external ports (ICMP: identifiers)
	Sessions          int
	PortRangeCapacity int // ports per protocol the range offers
}

// PortUsages reports external port use per NAT EIP.
func (d *Dataplane) PortUsages() ([]PortUsage, error) {
	cfg, err := d.NatConfig()
	if err != nil {
		return nil, err
	}
	blocks, err := d.natEIPPortBlocks()
	if err != nil {
		return nil, err
	}
	by := map[netip.Addr]*PortUsage{}
	for key, block := range blocks {
		b, err := d.readPortBlock(block)
		if err != nil {
			return nil, fmt.Errorf("list ports in use: %w", err)
		}
		eip := beAddr(key)
		by[eip] = &PortUsage{EIP: eip,
			TCP:               b.inUse(natPortBitmapLayoutPORT_BITMAP_TCP),
			UDP:               b.inUse(natPortBitmapLayoutPORT_BITMAP_UDP),
			ICMP:              b.inUse(natPortBitmapLayoutPORT_BITMAP_ICMP),
			PortRangeCapacity: int(cfg.PortMax) - int(cfg.PortMin) + 1}
	}
	if err := d.eachSession(func(_ natFlowKey, s Session) error {
		if u := by[s.External.Addr()]; u != nil {
			u.Sessions++
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]PortUsage, 0, len(by))
	for _, u := range by {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EIP.Less(out[j].EIP) })
	return out, nil
}

// SourceUsage is what one internal address holds against its quotas.
type SourceUsage struct {
	Source          netip.Addr
	Sessions, Ports uint32
}

// SourceUsages lists the per-source quota counts.
func (d *Dataplane) SourceUsages() ([]SourceUsage, error) {
	var out []SourceUsage
	var k uint32
	var v natSourceUsage
	it := d.objs.UsageBySource.Iterate()
	for it.Next(&k, &v) {
		out = append(out, SourceUsage{Source: beAddr(k), Sessions: v.Sessions, Ports: v.Ports})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list source usage: %w", err)
	}
	return out, nil
}
