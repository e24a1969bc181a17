package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

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

// decodeSession describes a session from its outbound record and, when it has one,
// its inbound record.
func (d *Dataplane) decodeSession(k natFlowKey, v natSession, in *natSessionIn, cfg NatConfig, now uint64) Session {
	s := Session{
		Protocol: k.Protocol,
		Inside:   netip.AddrPortFrom(beAddr(k.InsideAddr), ntohs(k.InsidePort)),
		Remote:   netip.AddrPortFrom(beAddr(k.RemoteAddr), ntohs(k.RemotePort)),
		External: netip.AddrPortFrom(beAddr(v.Eip), ntohs(v.EipPort)),
		Kind:     KindSNAT,
		Hairpin:  v.Flags&uint8(natSessionFlagsSESSION_HAIRPIN) != 0,
		State:    "active",
	}
	if v.Flags&uint8(natSessionFlagsSESSION_DNAT) != 0 {
		s.Kind = KindDNAT
	}
	lastSeen, tcp := v.LastSeenNs, v.Tcp
	if in != nil {
		lastSeen = max(lastSeen, in.LastSeenNs)
		tcp |= in.Tcp
	}
	if now > lastSeen {
		s.Idle = time.Duration(now - lastSeen)
	}
	switch k.Protocol {
	case ProtoTCP:
		var established bool
		s.State, established = tcpState(natTcpSeen(tcp))
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

func (d *Dataplane) eachSession(fn func(natFlowKey, Session) error) error {
	cfg, err := d.NatConfig()
	if err != nil {
		return err
	}
	now, err := d.sessionNow()
	if err != nil {
		return err
	}
	// One pass over each record table, a batch of entries a syscall.
	inbound := map[natReplyKey]natSessionIn{}
	if err := eachEntry(d.objs.SessionsIn, func(k natReplyKey, v natSessionIn) { inbound[k] = v }); err != nil {
		return fmt.Errorf("list sessions' inbound records: %w", err)
	}
	var fnErr error
	if err := eachEntry(d.objs.Sessions, func(k natFlowKey, v natSession) {
		if fnErr != nil {
			return
		}
		var in *natSessionIn
		if r, ok := inbound[natReplyKey{RemoteAddr: k.RemoteAddr, Eip: v.Eip, RemotePort: k.RemotePort,
			EipPort: v.EipPort, Protocol: k.Protocol}]; ok {
			in = &r
		}
		fnErr = fn(k, d.decodeSession(k, v, in, cfg, now))
	}); err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	return fnErr
}

// expire runs the expire_session program on one session: it removes the session, its
// reply entry, its quota share and its mapping reference in the kernel, atomically
// with the packet path. Unless force, a session refreshed meanwhile is kept.
func (d *Dataplane) expire(k natFlowKey, force bool) (bool, error) {
	now, err := d.sessionNow()
	if err != nil {
		return false, fmt.Errorf("expire session: %w", err)
	}
	req := natExpireRequest{Key: k, NowNs: now}
	if force {
		req.Force = 1
	}
	if _, err := d.objs.ExpireSession.Run(&ebpf.RunOptions{Context: &req, ContextOut: &req}); err != nil {
		return false, fmt.Errorf("expire session: %w", err)
	}
	return req.Expired == 1, nil
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
	for _, k := range idle {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		gone, err := d.expire(k, false)
		if err != nil {
			return res, err
		}
		if gone {
			res.Expired++
		} else {
			res.Live++
		}
	}
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
	n := 0
	for _, k := range doomed {
		gone, err := d.expire(k, true)
		if err != nil {
			return n, err
		}
		if gone {
			n++
		}
	}
	return n, nil
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
	eips, err := d.NatEIPs()
	if err != nil {
		return nil, err
	}
	by := map[netip.Addr]*PortUsage{}
	for _, e := range eips {
		by[e] = &PortUsage{EIP: e,
			PortRangeCapacity: int(cfg.PortMax) - int(cfg.PortMin) + 1}
	}
	if err := eachEntry(d.objs.PortsInUse, func(k, _ natEndpoint) {
		u := by[beAddr(k.Addr)]
		if u == nil {
			return
		}
		switch k.Protocol {
		case ProtoTCP:
			u.TCP++
		case ProtoUDP:
			u.UDP++
		default:
			u.ICMP++
		}
	}); err != nil {
		return nil, fmt.Errorf("list ports in use: %w", err)
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
