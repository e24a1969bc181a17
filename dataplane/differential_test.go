package dataplane

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// The differential test: random sequences of packets (new flows, replies, TCP closes
// and resets, ICMP echo, forward entries, in-order fragments, routers' ICMP errors
// about sessions and about none, expiry on a frozen clock, and two CPUs racing to open
// the same flow) go
// through the BPF program and through natModel, a small Go model of what the NAT
// gateway is documented to do (docs/natgw.md). Every step compares the verdict, the
// whole frame out and the reason counters; every tick compares the sessions and the
// per-EIP counters. The external port of a new mapping is the program's choice: the
// model checks it (kept when free, in the range, not another live mapping's) and
// learns it.
//
//	sudo go test -run Differential ./dataplane                        # 3,000 steps
//	sudo go test -run Differential ./dataplane -nat.steps 200000 -nat.seed 7
var (
	natSteps = flag.Int("nat.steps", 3000, "steps of the NAT differential test")
	natSeed  = flag.Uint64("nat.seed", 0, "seed of the NAT differential test (0: from the clock, logged)")
)

type modelEndpoint struct {
	addr netip.Addr
	port uint16
}

type modelFlow struct { // the VPC-side tuple
	inside, remote modelEndpoint
	proto          uint8
}

type modelSession struct {
	external        modelEndpoint
	dnat            bool
	lastOut, lastIn time.Duration
	tcpOut, tcpIn   uint32 // tcp_seen bits each direction saw
}

type modelMapping struct {
	external modelEndpoint
	sessions int
}

type natModel struct {
	cfg      NatConfig
	now      time.Duration
	sessions map[modelFlow]*modelSession
	mappings map[modelFlow]*modelMapping // keyed by inside endpoint and protocol (remote zero)
	counters map[netip.Addr]EIPCounters
	tally    map[string]int // what the steps exercised, for the log
}

func (m *natModel) mappingKey(f modelFlow) modelFlow {
	return modelFlow{inside: f.inside, proto: f.proto}
}

// byReply finds the session an inbound packet from remote to external belongs to.
func (m *natModel) byReply(remote, external modelEndpoint, proto uint8) (modelFlow, *modelSession) {
	for f, s := range m.sessions {
		if f.proto == proto && f.remote == remote && s.external == external {
			return f, s
		}
	}
	return modelFlow{}, nil
}

func (m *natModel) portTaken(ext modelEndpoint, proto uint8) bool {
	for k, mp := range m.mappings {
		if k.proto == proto && mp.external == ext {
			return true
		}
	}
	for f, s := range m.sessions {
		if f.proto == proto && s.dnat && s.external == ext {
			return true
		}
	}
	return false
}

const (
	seenInside, seenRemote, finInside, finRemote, seenRST = 1, 2, 4, 8, 16
)

func tcpBits(flags string, inside bool) uint32 {
	bits := uint32(seenRemote)
	if inside {
		bits = seenInside
	}
	for _, f := range flags {
		switch f {
		case 'F':
			if inside {
				bits |= finInside
			} else {
				bits |= finRemote
			}
		case 'R':
			bits |= seenRST
		}
	}
	return bits
}

// touch is conntrack.h's session_touch: last_seen moves at most every 100 ms.
func touch(last *time.Duration, now time.Duration) {
	if now-*last > 100*time.Millisecond {
		*last = now
	}
}

func (m *natModel) timeout(f modelFlow, s *modelSession) time.Duration {
	switch f.proto {
	case ProtoTCP:
		bits := s.tcpOut | s.tcpIn
		both, fins := uint32(seenInside|seenRemote), uint32(finInside|finRemote)
		if bits&both == both && bits&fins != fins && bits&seenRST == 0 {
			return m.cfg.TCPEstablished
		}
		return m.cfg.TCPTransitory
	case ProtoUDP:
		return m.cfg.UDP
	}
	return m.cfg.ICMP
}

func (m *natModel) expire() {
	for f, s := range m.sessions {
		if m.now-max(s.lastOut, s.lastIn) < m.timeout(f, s) {
			continue
		}
		delete(m.sessions, f)
		if s.dnat {
			continue
		}
		mk := m.mappingKey(f)
		if mp := m.mappings[mk]; mp != nil {
			if mp.sessions--; mp.sessions == 0 {
				delete(m.mappings, mk)
			}
		}
	}
}

func (m *natModel) count(eip netip.Addr, inbound bool, ipLen int) {
	c := m.counters[eip]
	if inbound {
		c.InPackets++
		c.InBytes += uint64(ipLen)
	} else {
		c.OutPackets++
		c.OutBytes += uint64(ipLen)
	}
	m.counters[eip] = c
}

// diffPacket is one generated packet: its l4 and what the model expects of it.
type diffPacket struct {
	flow    modelFlow
	spec    l4spec
	inbound bool
}

func TestNatDifferential(t *testing.T) {
	seed := *natSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -nat.seed %d), %d steps", seed, seed, *natSteps)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))

	l := newNatLab(t)
	f := newNatFrames(t, l)
	cfg := DefaultNatConfig()
	cfg.ICMPSource = gwVPCAddr
	cfg.PortMin, cfg.PortMax = 20000, 20063 // a small range: collisions and reuse happen
	cfg.UDP, cfg.ICMP = 2*time.Minute, time.Minute
	cfg.TCPTransitory, cfg.TCPEstablished = 4*time.Minute, 2*time.Hour
	cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 1<<20, 1<<20
	must(t, l.dp.SetNatConfig(cfg))
	start := 1000 * time.Second
	must(t, l.dp.freezeSessionClock(start))
	t.Cleanup(func() { _ = l.dp.freezeSessionClock(0) })
	m := &natModel{cfg: cfg, now: start, sessions: map[modelFlow]*modelSession{},
		mappings: map[modelFlow]*modelMapping{}, counters: map[netip.Addr]EIPCounters{}, tally: map[string]int{}}
	for _, e := range []netip.Addr{natEIP1, natEIP2} {
		c, err := l.dp.Counters(e)
		must(t, err)
		m.counters[e] = c
	}

	insides := []netip.Addr{natVM1, natVM2}
	insidePorts := []uint16{20001, 20002, 40000, 80}
	remotes := []netip.Addr{labInet, labInet2}
	remotePorts := []uint16{53, 443, 5000}
	hook := HookXDP
	if rng.IntN(2) == 1 {
		hook = HookTC
	}
	t.Logf("hook %s", hook)
	vpcProg, upProg := l.program(t, RoleVPC, hook), l.program(t, RoleUplink, hook)

	pick := func(xs []uint16) uint16 { return xs[rng.IntN(len(xs))] }
	tcpFlags := []string{"S", "A", "A", "A", "FA", "R", "SA"}

	outbound := func(p diffPacket) diffOutcome {
		fl := p.flow
		s := m.sessions[fl]
		if s == nil {
			switch {
			case fl.proto == ProtoTCP && bytes.ContainsRune([]byte(p.spec.flags), 'R'):
				return diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}}
			case fl.proto == ProtoICMP && p.spec.echo != 8:
				return diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatUnsupported: 1}}
			}
			mk := m.mappingKey(fl)
			if mp := m.mappings[mk]; mp != nil {
				mp.sessions++
				s = &modelSession{external: mp.external}
				m.sessions[fl] = s
			} else {
				// The program picks the port: check it and learn it from the frame.
				s = &modelSession{}
				m.sessions[fl] = s
				preserve := fl.inside.port >= cfg.PortMin && fl.inside.port <= cfg.PortMax &&
					!m.portTaken(modelEndpoint{natEIP1, fl.inside.port}, fl.proto)
				learn := func(out []byte) error {
					port, err := sourcePort(out, fl.proto)
					if err != nil {
						return err
					}
					ext := modelEndpoint{natEIP1, port}
					switch {
					case preserve && port != fl.inside.port:
						return fmt.Errorf("port %d not kept although free (got %d)", fl.inside.port, port)
					case port < cfg.PortMin || port > cfg.PortMax:
						return fmt.Errorf("external port %d outside %d-%d", port, cfg.PortMin, cfg.PortMax)
					case m.portTaken(ext, fl.proto):
						return fmt.Errorf("external port %d is another live mapping's", port)
					}
					s.external = ext
					m.mappings[mk] = &modelMapping{external: ext, sessions: 1}
					return nil
				}
				s.lastOut, s.lastIn = m.now, m.now
				if fl.proto == ProtoTCP {
					s.tcpOut |= tcpBits(p.spec.flags, true)
				}
				return diffOutcome{verdict: verdictRedirect, learn: learn}
			}
			s.lastOut, s.lastIn = m.now, m.now
		} else {
			touch(&s.lastOut, m.now)
		}
		if fl.proto == ProtoTCP {
			s.tcpOut |= tcpBits(p.spec.flags, true)
		}
		return diffOutcome{verdict: verdictRedirect, frame: f.toInet(s.external.addr, fl.remote.addr, translated(p.spec, s.external.port, true))}
	}
	inbound := func(p diffPacket, external modelEndpoint) diffOutcome {
		fl := p.flow
		reply, s := m.byReply(fl.remote, external, fl.proto)
		if s == nil {
			// A forward entry opens a session: TCP with a SYN alone, UDP with anything.
			fwd := external.addr == natEIP2 && ((fl.proto == ProtoTCP && external.port == fwdTCPPort && p.spec.flags == "S") ||
				(fl.proto == ProtoUDP && external.port == fwdUDPPort))
			if fl.proto == ProtoICMP && p.spec.echo != 0 {
				return diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatUnsupported: 1}}
			}
			if !fwd {
				return diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}}
			}
			inside := modelEndpoint{natVM1, 80}
			if fl.proto == ProtoUDP {
				inside.port = 53
			}
			reply = modelFlow{inside: inside, remote: fl.remote, proto: fl.proto}
			if other := m.sessions[reply]; other != nil {
				// The server's tuple is already another session's (an SNAT one).
				return diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}}
			}
			s = &modelSession{external: external, dnat: true, lastOut: m.now, lastIn: m.now}
			m.sessions[reply] = s
		} else if fl.proto != ProtoUDP || cfg.UDPInboundRefresh {
			touch(&s.lastIn, m.now)
		}
		if fl.proto == ProtoTCP {
			s.tcpIn |= tcpBits(p.spec.flags, false)
		}
		return diffOutcome{verdict: verdictRedirect,
			frame: f.toInside(fl.remote.addr, reply.inside.addr, translated(p.spec, reply.inside.port, false))}
	}

	run := func(step int, what string, role Role, in []byte, want diffOutcome) []byte {
		t.Helper()
		prog := vpcProg
		if role == RoleUplink {
			prog = upProg
		}
		before := l.snapshot(t)
		ret, out := l.run(t, prog, hook, l.ingress(role), in)
		after := l.snapshot(t)
		if ret != hookVerdict(hook, want.verdict) {
			t.Fatalf("step %d, %s: verdict %d, want %v; reasons moved %v", step, what, ret, want.verdict, diffReasons(before, after))
		}
		for r := Reason(0); r < ReasonMax; r++ {
			if got := after.reasons[r] - before.reasons[r]; got != want.reasons[r] {
				t.Fatalf("step %d, %s: reason %s moved by %d, want %d", step, what, r, got, want.reasons[r])
			}
		}
		return out
	}
	finish := func(step int, what string, out []byte, want diffOutcome, fl modelFlow, spec l4spec, external modelEndpoint) {
		t.Helper()
		if want.verdict != verdictRedirect {
			m.tally["dropped"]++
			return
		}
		if want.learn != nil {
			m.tally["new mapping"]++
		} else {
			m.tally["translated"]++
		}
		if want.learn != nil {
			if err := want.learn(out); err != nil {
				t.Fatalf("step %d, %s: %v", step, what, err)
			}
			s := m.sessions[fl]
			want.frame = f.toInet(s.external.addr, fl.remote.addr, translated(spec, s.external.port, true))
		}
		if !bytes.Equal(out[:len(want.frame)], want.frame) {
			t.Fatalf("step %d, %s: frame out\n got: %s\nwant: %s", step, what, dump(out[:len(want.frame)]), dump(want.frame))
		}
		inbound := external.addr.IsValid()
		if !inbound {
			external = m.sessions[fl].external
		}
		m.count(external.addr, inbound, len(want.frame)-14)
	}

	for step := 0; step < *natSteps; step++ {
		switch k := rng.IntN(100); {
		case k < 40: // outbound
			fl := modelFlow{inside: modelEndpoint{insides[rng.IntN(2)], pick(insidePorts)},
				remote: modelEndpoint{remotes[rng.IntN(2)], pick(remotePorts)}}
			var spec l4spec
			switch rng.IntN(4) {
			case 0, 1:
				fl.proto, spec = ProtoTCP, tcpSeg(fl.inside.port, fl.remote.port, tcpFlags[rng.IntN(len(tcpFlags))])
			case 2:
				fl.proto, spec = ProtoUDP, udpDgram(fl.inside.port, fl.remote.port)
			default:
				// The requester's identifier is its "port"; an echo reply from inside
				// carries it as the destination's (and is never translated).
				fl.proto, fl.remote.port = ProtoICMP, 0
				spec = l4spec{proto: layers.IPProtocolICMPv4, echo: 8, id: fl.inside.port}
				if rng.IntN(5) == 0 {
					spec.echo = 0
					fl.inside.port, fl.remote.port = 0, spec.id
				}
			}
			want := outbound(diffPacket{flow: fl, spec: spec})
			what := fmt.Sprintf("out %v %v->%v %+v", fl.proto, fl.inside, fl.remote, spec)
			out := run(step, what, RoleVPC, f.fromInside(fl.inside.addr, fl.remote.addr, spec), want)
			finish(step, what, out, want, fl, spec, modelEndpoint{})
		case k < 75: // inbound: to a live session's external endpoint mostly
			var fl modelFlow
			var external modelEndpoint
			var spec l4spec
			live := make([]modelFlow, 0, len(m.sessions))
			for lf := range m.sessions {
				live = append(live, lf)
			}
			sort.Slice(live, func(i, j int) bool { return fmt.Sprint(live[i]) < fmt.Sprint(live[j]) })
			if len(live) > 0 && rng.IntN(4) != 0 {
				lf := live[rng.IntN(len(live))]
				fl = modelFlow{remote: lf.remote, proto: lf.proto}
				external = m.sessions[lf].external
			} else {
				fl = modelFlow{remote: modelEndpoint{remotes[rng.IntN(2)], pick(remotePorts)}, proto: []uint8{ProtoTCP, ProtoUDP}[rng.IntN(2)]}
				external = modelEndpoint{natEIP2, fwdTCPPort}
				if fl.proto == ProtoUDP {
					external.port = fwdUDPPort
				}
				if rng.IntN(3) == 0 {
					external = modelEndpoint{natEIP1, cfg.PortMin + uint16(rng.IntN(64))}
				}
			}
			switch fl.proto {
			case ProtoTCP:
				spec = tcpSeg(fl.remote.port, external.port, tcpFlags[rng.IntN(len(tcpFlags))])
			case ProtoUDP:
				spec = udpDgram(fl.remote.port, external.port)
			default:
				spec = l4spec{proto: layers.IPProtocolICMPv4, echo: 0, id: external.port}
			}
			want := inbound(diffPacket{flow: fl, spec: spec, inbound: true}, external)
			what := fmt.Sprintf("in %v %v->%v %+v", fl.proto, fl.remote, external, spec)
			out := run(step, what, RoleUplink, f.fromInet(fl.remote.addr, external.addr, spec), want)
			finish(step, what, out, want, fl, spec, external)
		case k < 80: // a router's ICMP error about a packet the gateway sent
			icmpErrorStep(t, step, rng, f, m, run)
		case k < 85: // a fragmented datagram of a live UDP session, in order
			fragmentStep(t, step, rng, f, m, run)
		case k < 93: // time passes; the collector runs
			m.now += []time.Duration{50 * time.Millisecond, time.Second, 70 * time.Second, 3 * time.Minute, 3 * time.Hour}[rng.IntN(5)]
			must(t, l.dp.freezeSessionClock(m.now))
			if _, err := l.dp.ExpireIdle(context.Background()); err != nil {
				t.Fatal(err)
			}
			m.expire()
			compareSessions(t, step, l, m)
		default: // two CPUs open the same new UDP flow at once
			fl := modelFlow{inside: modelEndpoint{insides[rng.IntN(2)], 30000 + uint16(step)},
				remote: modelEndpoint{remotes[rng.IntN(2)], pick(remotePorts)}, proto: ProtoUDP}
			spec := udpDgram(fl.inside.port, fl.remote.port)
			want := outbound(diffPacket{flow: fl, spec: spec})
			in := f.fromInside(fl.inside.addr, fl.remote.addr, spec)
			var wg sync.WaitGroup
			outs := make([][]byte, 2)
			rets := make([]uint32, 2)
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rets[i], outs[i] = l.run(t, vpcProg, hook, l.vpc, in)
				}()
			}
			wg.Wait()
			what := fmt.Sprintf("race %v->%v", fl.inside, fl.remote)
			// Each CPU translates the packet by the flow's one session, or loses the
			// race for it and drops the packet (counted as contended).
			var sent []int
			for i := range 2 {
				switch rets[i] {
				case hookVerdict(hook, verdictRedirect):
					sent = append(sent, i)
				case hookVerdict(hook, verdictDrop):
					m.tally["lost a race"]++
				default:
					t.Fatalf("step %d, %s: CPU %d verdict %d", step, what, i, rets[i])
				}
			}
			switch len(sent) {
			case 0: // both withdrew: no session, and the mapping as it was
				if mp := m.mappings[m.mappingKey(fl)]; mp != nil {
					mp.sessions--
				}
				delete(m.sessions, fl)
			case 1:
				finish(step, what, outs[sent[0]], want, fl, spec, modelEndpoint{})
			case 2:
				if !bytes.Equal(outs[0], outs[1]) {
					t.Fatalf("step %d, %s: the two CPUs translated the flow differently\n%s\n%s", step, what, dump(outs[0]), dump(outs[1]))
				}
				finish(step, what, outs[0], want, fl, spec, modelEndpoint{})
				m.count(m.sessions[fl].external.addr, false, len(in)-14) // the second packet
				s := m.sessions[fl]
				touch(&s.lastOut, m.now)
			}
		}
	}
	compareSessions(t, *natSteps, l, m)
	t.Logf("exercised: %v", m.tally)
}

// translated is the l4 of a packet after the NAT wrote port (the source outbound, the
// destination inbound; the echo identifier for ICMP).
func translated(s l4spec, port uint16, outbound bool) l4spec {
	switch {
	case s.proto == layers.IPProtocolICMPv4:
		s.id = port
	case outbound:
		s.sport = port
	default:
		s.dport = port
	}
	return s
}

// sourcePort reads the source port (or echo identifier) of a frame.
func sourcePort(frame []byte, proto uint8) (uint16, error) {
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	switch proto {
	case ProtoTCP:
		if l, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			return uint16(l.SrcPort), nil
		}
	case ProtoUDP:
		if l, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			return uint16(l.SrcPort), nil
		}
	default:
		if l, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			return l.Id, nil
		}
	}
	return 0, fmt.Errorf("no %d header in the frame out", proto)
}

// compareSessions checks the program's sessions and per-EIP counters against the model's.
func compareSessions(t *testing.T, step int, l *lab, m *natModel) {
	t.Helper()
	got, err := l.dp.Sessions(nil)
	must(t, err)
	var have, want []string
	for _, s := range got {
		have = append(have, fmt.Sprintf("%d %v %v %v dnat=%v", s.Protocol, s.Inside, s.Remote, s.External, s.Kind == KindDNAT))
	}
	for fl, s := range m.sessions {
		want = append(want, fmt.Sprintf("%d %v %v %v dnat=%v", fl.proto, netip.AddrPortFrom(fl.inside.addr, fl.inside.port),
			netip.AddrPortFrom(fl.remote.addr, fl.remote.port), netip.AddrPortFrom(s.external.addr, s.external.port), s.dnat))
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		t.Fatalf("step %d: sessions differ\nprogram: %v\nmodel:   %v", step, have, want)
	}
	for eip, c := range m.counters {
		got, err := l.dp.Counters(eip)
		must(t, err)
		if got != c {
			t.Fatalf("step %d: %v counters %+v, model %+v", step, eip, got, c)
		}
	}
}

// diffOutcome is what the model says a packet becomes; learn is set when the program
// chooses the external port.
type diffOutcome struct {
	verdict verdict
	frame   []byte
	reasons map[Reason]uint64
	learn   func(out []byte) error
}

// diffRun sends one frame through the program and checks the verdict and reasons.
type diffRun func(step int, what string, role Role, in []byte, want diffOutcome) []byte

// liveFlows are the model's sessions of a protocol, in a fixed order.
func (m *natModel) liveFlows(proto uint8) []modelFlow {
	var out []modelFlow
	for fl := range m.sessions {
		if fl.proto == proto {
			out = append(out, fl)
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// icmpErrorStep: a router beyond the uplink reports a UDP or TCP packet the gateway
// sent from an external endpoint (RFC 5508). About a live session it reaches the
// instance with the quote reverted; about no session it is dropped. Errors never
// refresh a session (RFC 4787 REQ-12).
func icmpErrorStep(t *testing.T, step int, rng *rand.Rand, f natFrames, m *natModel, run diffRun) {
	t.Helper()
	proto := []uint8{ProtoUDP, ProtoTCP}[rng.IntN(2)]
	live := m.liveFlows(proto)
	var fl modelFlow
	var external modelEndpoint
	if len(live) > 0 && rng.IntN(4) != 0 {
		fl = live[rng.IntN(len(live))]
		external = m.sessions[fl].external
	} else {
		fl = modelFlow{remote: modelEndpoint{labInet, 53}, proto: proto}
		external = modelEndpoint{natEIP1, m.cfg.PortMin + uint16(rng.IntN(64))}
	}
	l4 := func(sport, dport uint16) gopacket.SerializableLayer {
		if proto == ProtoUDP {
			return udp(sport, dport)
		}
		return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, ACK: true, Window: 64240}
	}
	quote := func(src, dst netip.Addr, sport, dport uint16) []byte {
		return ipPacket(t, ip4(src, dst, layers.IPProtocol(proto), 1), l4(sport, dport), payload(24))[:28]
	}
	in := icmpError(t, eth(macRemote, f.uplinkMAC), labHop, external.addr, 64, 11, 0,
		quote(external.addr, fl.remote.addr, external.port, fl.remote.port))
	what := fmt.Sprintf("time exceeded about %v->%v/%d", external, fl.remote, proto)
	inside, s := m.byReply(fl.remote, external, proto)
	if s == nil {
		run(step, what, RoleUplink, in, diffOutcome{verdict: verdictDrop, reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
		m.tally["icmp error about no session"]++
		return
	}
	m.tally["icmp error translated"]++
	want := icmpError(t, eth(f.vpcMAC, f.macOfInside[inside.inside.addr]), labHop, inside.inside.addr, 63, 11, 0,
		quote(inside.inside.addr, fl.remote.addr, inside.inside.port, fl.remote.port))
	out := run(step, what, RoleUplink, in, diffOutcome{verdict: verdictRedirect})
	if !bytes.Equal(out[:len(want)], want) {
		t.Fatalf("step %d, %s: frame out\n got: %s\nwant: %s", step, what, dump(out[:len(want)]), dump(want))
	}
	m.count(external.addr, true, len(in)-14)
}

// fragmentStep: an instance sends a UDP datagram in two fragments on one of its live
// sessions; the first is translated by the session (and refreshes it), the second
// follows the first's translation.
func fragmentStep(t *testing.T, step int, rng *rand.Rand, f natFrames, m *natModel, run diffRun) {
	t.Helper()
	live := m.liveFlows(ProtoUDP)
	if len(live) == 0 {
		return
	}
	fl := live[rng.IntN(len(live))]
	s := m.sessions[fl]
	big := func(src, dst netip.Addr, sport, dport uint16, ttl uint8) []byte {
		return ipPacket(t, ip4(src, dst, layers.IPProtocolUDP, ttl), udp(sport, dport), payload(100))
	}
	in1, in2 := fragments(t, eth(f.macOfInside[fl.inside.addr], f.vpcMAC),
		big(fl.inside.addr, fl.remote.addr, fl.inside.port, fl.remote.port, 64), 48)
	out1, out2 := fragments(t, eth(f.uplinkMAC, macRouter),
		big(s.external.addr, fl.remote.addr, s.external.port, fl.remote.port, 63), 48)
	what := fmt.Sprintf("fragments %v->%v", fl.inside, fl.remote)
	m.tally["fragmented datagram"]++
	for i, frag := range [][2][]byte{{in1, out1}, {in2, out2}} {
		got := run(step, fmt.Sprintf("%s, fragment %d", what, i+1), RoleVPC, frag[0], diffOutcome{verdict: verdictRedirect})
		if !bytes.Equal(got[:len(frag[1])], frag[1]) {
			t.Fatalf("step %d, %s, fragment %d: frame out\n got: %s\nwant: %s", step, what, i+1, dump(got[:len(frag[1])]), dump(frag[1]))
		}
		m.count(s.external.addr, false, len(frag[0])-14)
	}
	touch(&s.lastOut, m.now)
}
