package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/internal/progrun"
	"golang.org/x/sys/unix"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// NAT gateway paths, step by step: each step feeds a frame built with gopacket and
// expects the exact frame (or verdict) and reason counts out, with the sessions the
// earlier steps opened.
var (
	natEIP1   = netip.MustParseAddr("203.0.113.100") // SNAT pool of 10.0.1.16/28
	natEIP2   = netip.MustParseAddr("203.0.113.101") // forward ports
	natEIP3   = netip.MustParseAddr("203.0.113.102") // second EIP of the affinity pool
	natVM1    = netip.MustParseAddr("10.0.1.21")     // runs the published servers
	natVM2    = netip.MustParseAddr("10.0.1.22")
	natSubnet = netip.MustParsePrefix("10.0.1.16/28")
	affSubnet = netip.MustParsePrefix("10.0.3.0/24") // pooled over two EIPs with affinity
	labInet2  = netip.MustParseAddr("198.51.100.20")
	gwVPCAddr = netip.MustParseAddr("10.0.0.1")
	macNatVM1 = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x21}
	macNatVM2 = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x22}
)

const (
	fwdTCPPort = 8080 // natEIP2:8080/tcp -> natVM1:80
	fwdUDPPort = 5353 // natEIP2:5353/udp -> natVM1:53
)

func newNatLab(t testing.TB) *lab {
	t.Helper()
	return newNatLabWith(t, Config{MaxBindings: 1024})
}

// newNatLabWith is newNatLab with the dataplane's capacities from cfg.
func newNatLabWith(t testing.TB, cfg Config) *lab {
	t.Helper()
	l := newLabWith(t, cfg)
	for _, n := range []struct {
		ip  netip.Addr
		mac net.HardwareAddr
	}{{natVM1, macNatVM1}, {natVM2, macNatVM2}} {
		if err := l.host.Neigh("vpc", n.ip, n.mac); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.host.Route("10.0.3.0/24", "", "vpc"); err != nil {
		t.Fatal(err)
	}
	// The two instances send from their own MACs; the other hosts of the SNAT
	// subnets the tests and benchmarks make up send from macRemote.
	must(t, l.dp.SetSource(Source{Addr: natVM1, MAC: macNatVM1}))
	must(t, l.dp.SetSource(Source{Addr: natVM2, MAC: macNatVM2}))
	for _, subnet := range []netip.Prefix{natSubnet, affSubnet} {
		for a := subnet.Addr(); subnet.Contains(a); a = a.Next() {
			if a != natVM1 && a != natVM2 {
				must(t, l.dp.SetSource(Source{Addr: a, MAC: macRemote}))
			}
		}
	}
	natCfg := DefaultNatConfig()
	natCfg.ICMPSource = gwVPCAddr
	must(t, l.dp.SetNatConfig(natCfg))
	for _, e := range []netip.Addr{natEIP1, natEIP2, natEIP3} {
		must(t, l.dp.SetNatEIP(e))
	}
	must(t, l.dp.SetSnatRule(SnatRule{Source: natSubnet, Pool: []netip.Addr{natEIP1}}))
	must(t, l.dp.SetSnatRule(SnatRule{Source: affSubnet, Pool: []netip.Addr{natEIP1, natEIP3}, Affinity: true}))
	must(t, l.dp.SetForwardPort(ForwardPort{Protocol: ProtoTCP, External: netip.AddrPortFrom(natEIP2, fwdTCPPort),
		Internal: netip.AddrPortFrom(natVM1, 80)}))
	must(t, l.dp.SetForwardPort(ForwardPort{Protocol: ProtoUDP, External: netip.AddrPortFrom(natEIP2, fwdUDPPort),
		Internal: netip.AddrPortFrom(natVM1, 53)}))
	return l
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// natFrames builds the frames of the NAT gateway tests for one lab.
type natFrames struct {
	t           testing.TB
	uplinkMAC   net.HardwareAddr
	vpcMAC      net.HardwareAddr
	macOfInside map[netip.Addr]net.HardwareAddr
}

func newNatFrames(t testing.TB, l *lab) natFrames {
	return natFrames{t: t, uplinkMAC: l.uplink.HardwareAddr, vpcMAC: l.vpc.HardwareAddr,
		macOfInside: map[netip.Addr]net.HardwareAddr{natVM1: macNatVM1, natVM2: macNatVM2}}
}

type l4spec struct {
	proto layers.IPProtocol
	sport uint16
	dport uint16
	flags string // TCP: any of "S", "A", "F", "R"
	echo  uint8  // ICMP: 8 request, 0 reply
	id    uint16 // ICMP echo identifier
}

func tcpSeg(sport, dport uint16, flags string) l4spec {
	return l4spec{proto: layers.IPProtocolTCP, sport: sport, dport: dport, flags: flags}
}

func udpDgram(sport, dport uint16) l4spec {
	return l4spec{proto: layers.IPProtocolUDP, sport: sport, dport: dport}
}

func (s l4spec) layers(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
	ip := ip4(src, dst, s.proto, ttl)
	switch s.proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(s.sport), DstPort: layers.TCPPort(s.dport), Seq: 1000, Ack: 7, Window: 64240}
		for _, f := range s.flags {
			switch f {
			case 'S':
				tcp.SYN = true
			case 'A':
				tcp.ACK = true
			case 'F':
				tcp.FIN = true
			case 'R':
				tcp.RST = true
			}
		}
		return []gopacket.SerializableLayer{ip, tcp, payload(24)}
	case layers.IPProtocolUDP:
		return []gopacket.SerializableLayer{ip, udp(s.sport, s.dport), payload(24)}
	}
	return []gopacket.SerializableLayer{ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(s.echo, 0), Id: s.id, Seq: 1}, payload(32)}
}

// fromInside is a frame an instance sends to the gateway; fromInet one the router
// delivers on the uplink.
func (f natFrames) fromInside(src, dst netip.Addr, s l4spec) []byte {
	mac := f.macOfInside[src]
	if mac == nil {
		mac = macRemote
	}
	return serialize(f.t, append([]gopacket.SerializableLayer{eth(mac, f.vpcMAC)}, s.layers(src, dst, 64)...)...)
}

func (f natFrames) fromInet(src, dst netip.Addr, s l4spec) []byte {
	return serialize(f.t, append([]gopacket.SerializableLayer{eth(macRemote, f.uplinkMAC)}, s.layers(src, dst, 64)...)...)
}

// toInet is what the gateway sends to the router; toInside what it sends to an instance.
func (f natFrames) toInet(src, dst netip.Addr, s l4spec) []byte {
	return serialize(f.t, append([]gopacket.SerializableLayer{eth(f.uplinkMAC, macRouter)}, s.layers(src, dst, 63)...)...)
}

func (f natFrames) toInside(src, dst netip.Addr, s l4spec) []byte {
	return serialize(f.t, append([]gopacket.SerializableLayer{eth(f.vpcMAC, f.macOfInside[dst])}, s.layers(src, dst, 63)...)...)
}

// step sends one frame and checks what comes out.
type natStep struct {
	name    string
	role    Role
	in      []byte
	verdict uint32 // hookVerdict of the expected outcome
	// out is the frame a redirect sends; expect builds it after the run instead, for
	// a frame with a port the program chose (read from its sessions). A redirect
	// needs one of them.
	out     []byte
	expect  func() []byte
	reasons map[Reason]uint64
	// eips are the per-EIP counter changes; nil means what a plain translation
	// counts: the frame's IP length on the EIP it was translated to or from (none
	// for a pass or a drop).
	eips map[netip.Addr]EIPCounters
	prog *ebpf.Program // nil: the role's program at the hook
}

func (l *lab) check(t *testing.T, hook Hook, s natStep) {
	t.Helper()
	prog := s.prog
	if prog == nil {
		prog = l.program(t, s.role, hook)
	}
	redirect := s.verdict == hookVerdict(hook, verdictRedirect)
	if redirect && s.out == nil && s.expect == nil {
		t.Fatalf("%s: a redirect step must give the frame it expects", s.name)
	}
	before := l.snapshot(t)
	ret, out := l.run(t, prog, hook, l.ingress(s.role), s.in)
	after := l.snapshot(t)
	if ret != s.verdict {
		t.Errorf("%s: verdict %d, want %d; reasons moved: %v", s.name, ret, s.verdict, diffReasons(before, after))
	}
	want := s.out
	if s.expect != nil {
		want = s.expect()
	}
	if redirect && !bytes.Equal(out, want) {
		t.Errorf("%s: frame out differs\n got: %s\nwant: %s", s.name, dump(out), dump(want))
	}
	for r := Reason(0); r < ReasonMax; r++ {
		if got := after.reasons[r] - before.reasons[r]; got != s.reasons[r] {
			t.Errorf("%s: reason %s moved by %d, want %d", s.name, r, got, s.reasons[r])
		}
	}
	eips := s.eips
	if eips == nil {
		eips = map[netip.Addr]EIPCounters{}
		if redirect {
			eips = plainTranslation(t, s.role, s.in, want)
		}
	}
	for eip, a := range after.eips {
		b := before.eips[eip]
		got := EIPCounters{InPackets: a.InPackets - b.InPackets, InBytes: a.InBytes - b.InBytes,
			OutPackets: a.OutPackets - b.OutPackets, OutBytes: a.OutBytes - b.OutBytes}
		if got != eips[eip] {
			t.Errorf("%s: %v counted %+v, want %+v", s.name, eip, got, eips[eip])
		}
	}
}

// plainTranslation is what a translated frame counts: its IP length, inbound on the
// EIP it was sent to, outbound on the EIP it leaves from.
func plainTranslation(t *testing.T, role Role, in, out []byte) map[netip.Addr]EIPCounters {
	t.Helper()
	ipOf := func(frame []byte) *layers.IPv4 {
		p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if !ok {
			t.Fatalf("no IPv4 header in %x", frame)
		}
		return ip
	}
	if role == RoleUplink {
		ip := ipOf(in)
		eip, _ := netip.AddrFromSlice(ip.DstIP.To4())
		return map[netip.Addr]EIPCounters{eip: {InPackets: 1, InBytes: uint64(ip.Length)}}
	}
	ip := ipOf(out)
	eip, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	return map[netip.Addr]EIPCounters{eip: {OutPackets: 1, OutBytes: uint64(ip.Length)}}
}

func (l *lab) session(t *testing.T, match func(Session) bool) Session {
	t.Helper()
	ss, err := l.dp.Sessions(match)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 {
		t.Fatalf("want one matching session, have %d: %+v", len(ss), ss)
	}
	return ss[0]
}

// externalPort is the external port the program chose for an inside endpoint.
func (l *lab) externalPort(t *testing.T, inside netip.Addr, port uint16, proto uint8) uint16 {
	t.Helper()
	ss, err := l.dp.Sessions(func(s Session) bool {
		return s.Inside == netip.AddrPortFrom(inside, port) && s.Protocol == proto
	})
	if err != nil || len(ss) == 0 {
		t.Fatalf("no session of %v:%d/%d (%v)", inside, port, proto, err)
	}
	return ss[0].External.Port()
}

func (l *lab) purgeAll(t *testing.T) {
	t.Helper()
	if _, err := l.dp.PurgeSessions(func(Session) bool { return true }); err != nil {
		t.Fatal(err)
	}
	ss, _ := l.dp.Sessions(nil)
	us, _ := l.dp.SourceUsages()
	for _, u := range us {
		if u.Sessions != 0 || u.Ports != 0 {
			t.Fatalf("after purging every session, %v still holds %d sessions and %d ports", u.Source, u.Sessions, u.Ports)
		}
	}
	if len(ss) != 0 {
		t.Fatalf("%d sessions left after purge", len(ss))
	}
	if n, err := l.dp.portsInUse(); err != nil || n != 0 {
		t.Fatalf("%d ports still in use after purge (%v)", n, err)
	}
	assertTableEmpty(t, l) // session and mapping records
}

func TestNatGatewayPaths(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	for _, hook := range []Hook{HookXDP, HookTC} {
		redirect, drop := hookVerdict(hook, verdictRedirect), hookVerdict(hook, verdictDrop)
		t.Run(string(hook), func(t *testing.T) {
			t.Cleanup(func() { l.purgeAll(t) })
			// SNAT: the first packet opens a mapping that keeps the source port.
			l.check(t, hook, natStep{name: "syn out keeps its port", role: RoleVPC,
				in:  f.fromInside(natVM1, labInet, tcpSeg(40000, 80, "S")),
				out: f.toInet(natEIP1, labInet, tcpSeg(40000, 80, "S")), verdict: redirect})
			l.check(t, hook, natStep{name: "syn-ack back to the instance", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP1, tcpSeg(80, 40000, "SA")),
				out: f.toInside(labInet, natVM1, tcpSeg(80, 40000, "SA")), verdict: redirect})
			if s := l.session(t, func(s Session) bool { return s.Inside.Port() == 40000 && s.Protocol == ProtoTCP }); s.State != "established" || s.Kind != KindSNAT {
				t.Errorf("session after the handshake: %+v", s)
			}
			// Endpoint-independent mapping: another remote sees the same EIP:port.
			l.check(t, hook, natStep{name: "same endpoint to another remote", role: RoleVPC,
				in:  f.fromInside(natVM1, labInet2, tcpSeg(40000, 443, "S")),
				out: f.toInet(natEIP1, labInet2, tcpSeg(40000, 443, "S")), verdict: redirect})
			// Filtering: the mapping does not admit a remote the instance never reached.
			l.check(t, hook, natStep{name: "unsolicited to a mapped port", role: RoleUplink,
				in: f.fromInet(labInet2, natEIP1, tcpSeg(9999, 40000, "S")), verdict: drop,
				reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
			// No port overloading: another instance wanting the same port gets another.
			l.check(t, hook, natStep{name: "second instance, same source port", role: RoleVPC,
				in: f.fromInside(natVM2, labInet, tcpSeg(40000, 80, "S")), verdict: redirect,
				expect: func() []byte {
					return f.toInet(natEIP1, labInet, tcpSeg(l.externalPort(t, natVM2, 40000, ProtoTCP), 80, "S"))
				}})
			s2 := l.session(t, func(s Session) bool { return s.Inside.Addr() == natVM2 && s.Protocol == ProtoTCP })
			if s2.External.Addr() != natEIP1 || s2.External.Port() == 40000 || s2.External.Port() < 1024 {
				t.Errorf("second instance mapped to %v", s2.External)
			}
			l.check(t, hook, natStep{name: "reply to the second instance", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP1, tcpSeg(80, s2.External.Port(), "SA")),
				out: f.toInside(labInet, natVM2, tcpSeg(80, 40000, "SA")), verdict: redirect})

			// UDP and ICMP echo.
			l.check(t, hook, natStep{name: "udp out", role: RoleVPC,
				in:  f.fromInside(natVM1, labInet, udpDgram(5000, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(5000, 53)), verdict: redirect})
			l.check(t, hook, natStep{name: "udp back", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP1, udpDgram(53, 5000)),
				out: f.toInside(labInet, natVM1, udpDgram(53, 5000)), verdict: redirect})
			echo := l4spec{proto: layers.IPProtocolICMPv4, echo: 8, id: 4242}
			reply := l4spec{proto: layers.IPProtocolICMPv4, echo: 0, id: 4242}
			l.check(t, hook, natStep{name: "echo request out", role: RoleVPC,
				in: f.fromInside(natVM1, labInet, echo), out: f.toInet(natEIP1, labInet, echo), verdict: redirect})
			l.check(t, hook, natStep{name: "echo reply back", role: RoleUplink,
				in: f.fromInet(labInet, natEIP1, reply), out: f.toInside(labInet, natVM1, reply), verdict: redirect})
			l.check(t, hook, natStep{name: "echo request to a NAT EIP", role: RoleUplink,
				in: f.fromInet(labInet, natEIP1, echo), verdict: drop,
				reasons: map[Reason]uint64{ReasonDropNatUnsupported: 1}})

			// DNAT through forward ports, and the server's replies.
			l.check(t, hook, natStep{name: "syn to a forward port", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP2, tcpSeg(5555, fwdTCPPort, "S")),
				out: f.toInside(labInet, natVM1, tcpSeg(5555, 80, "S")), verdict: redirect})
			l.check(t, hook, natStep{name: "server replies from the forward port", role: RoleVPC,
				in:  f.fromInside(natVM1, labInet, tcpSeg(80, 5555, "SA")),
				out: f.toInet(natEIP2, labInet, tcpSeg(fwdTCPPort, 5555, "SA")), verdict: redirect})
			l.check(t, hook, natStep{name: "a forward port opens TCP with SYN only", role: RoleUplink,
				in: f.fromInet(labInet2, natEIP2, tcpSeg(5555, fwdTCPPort, "A")), verdict: drop,
				reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
			l.check(t, hook, natStep{name: "udp to a forward port", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP2, udpDgram(6000, fwdUDPPort)),
				out: f.toInside(labInet, natVM1, udpDgram(6000, 53)), verdict: redirect})

			// Hairpinning: natVM2 reaches natVM1's published port through the EIP, and
			// natVM1 sees natVM2's external endpoint.
			hairpinCount := func(ipLen uint64) map[netip.Addr]EIPCounters {
				return map[netip.Addr]EIPCounters{natEIP1: {OutPackets: 1, OutBytes: ipLen}, natEIP2: {InPackets: 1, InBytes: ipLen}}
			}
			l.check(t, hook, natStep{name: "hairpin request", role: RoleVPC,
				in: f.fromInside(natVM2, natEIP2, tcpSeg(41000, fwdTCPPort, "S")), verdict: redirect,
				expect: func() []byte {
					return f.toInside(natEIP1, natVM1, tcpSeg(l.externalPort(t, natVM2, 41000, ProtoTCP), 80, "S"))
				}, eips: hairpinCount(64)})
			hp := l.session(t, func(s Session) bool { return s.Inside.Addr() == natVM2 && s.Inside.Port() == 41000 })
			if !hp.Hairpin || hp.External.Addr() != natEIP1 {
				t.Fatalf("hairpin session %+v", hp)
			}
			l.check(t, hook, natStep{name: "hairpin request, as delivered", role: RoleVPC,
				in:  f.fromInside(natVM2, natEIP2, tcpSeg(41000, fwdTCPPort, "A")),
				out: f.toInside(natEIP1, natVM1, tcpSeg(hp.External.Port(), 80, "A")), verdict: redirect, eips: hairpinCount(64)})
			l.check(t, hook, natStep{name: "hairpin reply", role: RoleVPC,
				in:  f.fromInside(natVM1, natEIP1, tcpSeg(80, hp.External.Port(), "SA")),
				out: f.toInside(natEIP2, natVM2, tcpSeg(fwdTCPPort, 41000, "SA")), verdict: redirect,
				eips: map[netip.Addr]EIPCounters{natEIP2: {OutPackets: 1, OutBytes: 64}, natEIP1: {InPackets: 1, InBytes: 64}}})

			// No SNAT entry covers 10.0.2.0/24: untranslated, it may not reach the internet.
			l.check(t, hook, natStep{name: "source without SNAT entry", role: RoleVPC,
				in: f.fromInside(netip.MustParseAddr("10.0.2.50"), labInet, udpDgram(1, 2)), verdict: drop,
				reasons: map[Reason]uint64{ReasonDropUntranslated: 1}})
			// Another instance's address from natVM2's MAC: not translated, not even
			// into natVM1's established session.
			spoofed := f.fromInside(natVM1, labInet, tcpSeg(40000, 80, "A"))
			copy(spoofed[6:12], macNatVM2)
			l.check(t, hook, natStep{name: "another instance's address as source", role: RoleVPC,
				in: spoofed, verdict: drop, reasons: map[Reason]uint64{ReasonDropSpoofedSource: 1}})
			l.check(t, hook, natStep{name: "rst opens nothing", role: RoleVPC,
				in: f.fromInside(natVM1, labInet, tcpSeg(40999, 80, "R")), verdict: drop,
				reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
		})
	}
}

// noCount says a step counts on no EIP (a refusal is answered, not translated).
var noCount = map[netip.Addr]EIPCounters{}

// refusal is the ICMP 3/13 the gateway answers a refused packet with.
func (f natFrames) refusal(refused []byte) []byte {
	ipStart := 14
	quoted := refused[ipStart : ipStart+28]
	ip := &layers.IPv4{Version: 4, IHL: 5, TOS: 0xc0, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: gwVPCAddr.AsSlice(), DstIP: net.IP(refused[ipStart+12 : ipStart+16])}
	e := eth(net.HardwareAddr(refused[0:6]), net.HardwareAddr(refused[6:12]))
	e.SrcMAC, e.DstMAC = net.HardwareAddr(refused[0:6]), net.HardwareAddr(refused[6:12])
	return serialize(f.t, e, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(3, 13)},
		gopacket.Payload(append([]byte(nil), quoted...)))
}

func TestNatGatewayExhaustionAndQuotas(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	for _, hook := range []Hook{HookXDP, HookTC} {
		redirect := hookVerdict(hook, verdictRedirect)
		t.Run(string(hook), func(t *testing.T) {
			t.Cleanup(func() { l.purgeAll(t) })
			// Three external ports in all; sources outside the range cannot keep theirs.
			cfg := DefaultNatConfig()
			cfg.ICMPSource = gwVPCAddr
			cfg.PortMin, cfg.PortMax = 2000, 2002
			must(t, l.dp.SetNatConfig(cfg))
			t.Cleanup(func() {
				c := DefaultNatConfig()
				c.ICMPSource = gwVPCAddr
				must(t, l.dp.SetNatConfig(c))
			})
			for i := uint16(0); i < 3; i++ {
				l.check(t, hook, natStep{name: "flow within the range", role: RoleVPC,
					in: f.fromInside(natVM1, labInet, udpDgram(100+i, 53)), verdict: redirect,
					expect: func() []byte {
						return f.toInet(natEIP1, labInet, udpDgram(l.externalPort(t, natVM1, 100+i, ProtoUDP), 53))
					}})
			}
			full := f.fromInside(natVM2, labInet, udpDgram(100, 53))
			l.check(t, hook, natStep{name: "fourth flow refused with ICMP 3/13", role: RoleVPC,
				in: full, eips: noCount, out: f.refusal(full), verdict: hookVerdict(hook, verdictRedirect),
				reasons: map[Reason]uint64{ReasonDropNatPortsExhausted: 1}})
			used := map[uint16]bool{}
			for _, s := range mustSessions(t, l) {
				if s.External.Port() < 2000 || s.External.Port() > 2002 || used[s.External.Port()] {
					t.Errorf("session %+v outside the range or sharing a port", s)
				}
				used[s.External.Port()] = true
				// Existing flows keep working.
				l.check(t, hook, natStep{name: "existing flow still translated", role: RoleVPC,
					in:  f.fromInside(natVM1, labInet, udpDgram(s.Inside.Port(), 53)),
					out: f.toInet(natEIP1, labInet, udpDgram(s.External.Port(), 53)), verdict: redirect})
			}
			l.purgeAll(t)

			// Per-source quotas: natVM1 may hold two sessions and two ports.
			cfg.PortMin, cfg.PortMax = 1024, 65535
			cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 3, 2
			must(t, l.dp.SetNatConfig(cfg))
			l.check(t, hook, natStep{name: "port 1", role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(7001, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(7001, 53)), verdict: redirect})
			l.check(t, hook, natStep{name: "port 2", role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(7002, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(7002, 53)), verdict: redirect})
			refused := f.fromInside(natVM1, labInet, udpDgram(7003, 53))
			l.check(t, hook, natStep{name: "third port refused", role: RoleVPC, in: refused, eips: noCount, out: f.refusal(refused),
				verdict: hookVerdict(hook, verdictRedirect), reasons: map[Reason]uint64{ReasonDropNatPortQuota: 1}})
			l.check(t, hook, natStep{name: "a third session on a held port", role: RoleVPC,
				in:  f.fromInside(natVM1, labInet2, udpDgram(7001, 53)),
				out: f.toInet(natEIP1, labInet2, udpDgram(7001, 53)), verdict: redirect})
			refused = f.fromInside(natVM1, labInet2, udpDgram(7002, 53))
			l.check(t, hook, natStep{name: "fourth session refused", role: RoleVPC, in: refused, eips: noCount, out: f.refusal(refused),
				verdict: hookVerdict(hook, verdictRedirect), reasons: map[Reason]uint64{ReasonDropNatSessionQuota: 1}})
			l.check(t, hook, natStep{name: "another source is not held back", role: RoleVPC,
				in: f.fromInside(natVM2, labInet, udpDgram(7001, 53)), verdict: redirect,
				expect: func() []byte {
					return f.toInet(natEIP1, labInet, udpDgram(l.externalPort(t, natVM2, 7001, ProtoUDP), 53))
				}})
			tcpRefused := f.fromInside(natVM1, labInet, tcpSeg(7009, 80, "S"))
			l.check(t, hook, natStep{name: "tcp refused too", role: RoleVPC, in: tcpRefused, eips: noCount, out: f.refusal(tcpRefused),
				verdict: hookVerdict(hook, verdictRedirect), reasons: map[Reason]uint64{ReasonDropNatSessionQuota: 1}})
		})
	}
}

func mustSessions(t *testing.T, l *lab) []Session {
	t.Helper()
	ss, err := l.dp.Sessions(nil)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// TestNatGatewayExpiry: idle sessions go after their protocol's timeout, with their
// mapping and port; TCP follows its state.
func TestNatGatewayExpiry(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	hook := HookXDP
	redirect := hookVerdict(hook, verdictRedirect)
	cfg := DefaultNatConfig()
	cfg.UDP = 300 * time.Millisecond
	cfg.TCPTransitory = 300 * time.Millisecond
	must(t, l.dp.SetNatConfig(cfg))
	start := 1000 * time.Second // any time: the clock is frozen
	must(t, l.dp.freezeSessionClock(start))
	t.Cleanup(func() { _ = l.dp.freezeSessionClock(0) })
	l.check(t, hook, natStep{name: "udp", role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(5000, 53)),
		out: f.toInet(natEIP1, labInet, udpDgram(5000, 53)), verdict: redirect})
	l.check(t, hook, natStep{name: "tcp syn", role: RoleVPC, in: f.fromInside(natVM1, labInet, tcpSeg(5001, 80, "S")),
		out: f.toInet(natEIP1, labInet, tcpSeg(5001, 80, "S")), verdict: redirect})
	l.check(t, hook, natStep{name: "tcp syn-ack", role: RoleUplink, in: f.fromInet(labInet, natEIP1, tcpSeg(80, 5001, "SA")),
		out: f.toInside(labInet, natVM1, tcpSeg(80, 5001, "SA")), verdict: redirect})
	l.check(t, hook, natStep{name: "tcp reset", role: RoleVPC, in: f.fromInside(natVM1, labInet, tcpSeg(5002, 80, "S")),
		out: f.toInet(natEIP1, labInet, tcpSeg(5002, 80, "S")), verdict: redirect})
	l.check(t, hook, natStep{name: "tcp reset", role: RoleUplink, in: f.fromInet(labInet, natEIP1, tcpSeg(80, 5002, "R")),
		out: f.toInside(labInet, natVM1, tcpSeg(80, 5002, "R")), verdict: redirect})
	if s := l.session(t, func(s Session) bool { return s.Inside.Port() == 5002 }); s.State != "reset" || s.Timeout != cfg.TCPTransitory {
		t.Errorf("reset session: %+v", s)
	}
	res, err := l.dp.ExpireIdle(context.Background())
	must(t, err)
	if res.Expired != 0 || res.Live != 3 {
		t.Fatalf("nothing is idle yet: %+v", res)
	}
	// A clock unit before the short timeouts nothing goes.
	must(t, l.dp.freezeSessionClock(start+cfg.UDP-SessionClockUnit))
	res, err = l.dp.ExpireIdle(context.Background())
	must(t, err)
	if res.Expired != 0 || res.Live != 3 {
		t.Fatalf("a clock unit before the timeouts: %+v", res)
	}
	// Idle time is reckoned in clock units (about 1 ms): one unit past the timeouts they
	// are gone.
	must(t, l.dp.freezeSessionClock(start+cfg.UDP+SessionClockUnit))
	res, err = l.dp.ExpireIdle(context.Background())
	must(t, err)
	// UDP and the reset TCP session went; the established one (7440 s) stays.
	if res.Expired != 2 || res.Live != 1 {
		t.Fatalf("after the short timeouts: %+v", res)
	}
	left := mustSessions(t, l)
	if len(left) != 1 || left[0].Inside.Port() != 5001 || left[0].State != "established" {
		t.Fatalf("left: %+v", left)
	}
	l.check(t, hook, natStep{name: "expired udp mapping no longer admits replies", role: RoleUplink,
		in: f.fromInet(labInet, natEIP1, udpDgram(53, 5000)), verdict: hookVerdict(hook, verdictDrop),
		reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
	us, err := l.dp.SourceUsages()
	must(t, err)
	for _, u := range us {
		if u.Source == natVM1 && (u.Sessions != 1 || u.Ports != 1) {
			t.Errorf("natVM1 holds %d sessions, %d ports; want 1 and 1", u.Sessions, u.Ports)
		}
	}
	// Removing the SNAT entry purges its sessions.
	must(t, l.dp.DeleteSnatRule(natSubnet))
	if ss := mustSessions(t, l); len(ss) != 0 {
		t.Fatalf("sessions after the rule went: %+v", ss)
	}
	l.check(t, hook, natStep{name: "no rule, no translation (and no way out untranslated)", role: RoleVPC,
		in: f.fromInside(natVM1, labInet, udpDgram(5000, 53)), verdict: hookVerdict(hook, verdictDrop),
		reasons: map[Reason]uint64{ReasonDropUntranslated: 1}})
}

// TestNatGatewayICMPErrorsAndFragments: errors about sessions are translated with
// their quoted headers reverted; fragments follow their first fragment.
func TestNatGatewayICMPErrorsAndFragments(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	for _, hook := range []Hook{HookXDP, HookTC} {
		redirect, drop := hookVerdict(hook, verdictRedirect), hookVerdict(hook, verdictDrop)
		t.Run(string(hook), func(t *testing.T) {
			t.Cleanup(func() { l.purgeAll(t) })
			l.check(t, hook, natStep{name: "udp out", role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(5000, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(5000, 53)), verdict: redirect})
			l.check(t, hook, natStep{name: "udp out, port taken", role: RoleVPC, in: f.fromInside(natVM2, labInet, udpDgram(5000, 53)),
				verdict: redirect, expect: func() []byte {
					return f.toInet(natEIP1, labInet, udpDgram(l.externalPort(t, natVM2, 5000, ProtoUDP), 53))
				}})
			s2 := l.session(t, func(s Session) bool { return s.Inside.Addr() == natVM2 })
			quoted := func(src, dst netip.Addr, l4 ...gopacket.SerializableLayer) []byte {
				return ipPacket(t, append([]gopacket.SerializableLayer{ip4(src, dst, l4Proto(l4[0]), 1)}, l4...)...)
			}
			errorFrame := func(e *layers.Ethernet, from, to netip.Addr, ttl uint8, typ, code uint8, q []byte) []byte {
				return icmpError(t, e, from, to, ttl, typ, code, q)
			}
			// A router's time exceeded about natVM2's datagram, quoting 8 bytes of UDP.
			inQuote := quoted(natEIP1, labInet, udp(s2.External.Port(), 53), payload(24))[:28]
			wantQuote := quoted(natVM2, labInet, udp(5000, 53), payload(24))[:28]
			l.check(t, hook, natStep{name: "time exceeded, 8 bytes quoted", role: RoleUplink,
				in:      errorFrame(eth(macRemote, f.uplinkMAC), labHop, natEIP1, 64, 11, 0, inQuote),
				out:     errorFrame(eth(f.vpcMAC, macNatVM2), labHop, natVM2, 63, 11, 0, wantQuote),
				verdict: redirect})
			// A TCP session's error quoting the TCP checksum too.
			l.check(t, hook, natStep{name: "tcp out", role: RoleVPC, in: f.fromInside(natVM1, labInet, tcpSeg(6000, 80, "S")),
				out: f.toInet(natEIP1, labInet, tcpSeg(6000, 80, "S")), verdict: redirect})
			tq := &layers.TCP{SrcPort: 6000, DstPort: 80, Seq: 1000, SYN: true, Window: 64240}
			tqOut := &layers.TCP{SrcPort: 6000, DstPort: 80, Seq: 1000, SYN: true, Window: 64240}
			l.check(t, hook, natStep{name: "unreachable quoting the tcp checksum", role: RoleUplink,
				in:      errorFrame(eth(macRemote, f.uplinkMAC), labHop, natEIP1, 64, 3, 1, quoted(natEIP1, labInet, tq, payload(8))[:48]),
				out:     errorFrame(eth(f.vpcMAC, macNatVM1), labHop, natVM1, 63, 3, 1, quoted(natVM1, labInet, tqOut, payload(8))[:48]),
				verdict: redirect})
			l.check(t, hook, natStep{name: "error about no session", role: RoleUplink,
				in:      errorFrame(eth(macRemote, f.uplinkMAC), labHop, natEIP1, 64, 11, 0, quoted(natEIP1, labInet, udp(31000, 53), payload(8))[:28]),
				verdict: drop, reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
			// The published server's port unreachable goes out from the EIP's endpoint.
			l.check(t, hook, natStep{name: "udp to a forward port", role: RoleUplink,
				in:  f.fromInet(labInet, natEIP2, udpDgram(6001, fwdUDPPort)),
				out: f.toInside(labInet, natVM1, udpDgram(6001, 53)), verdict: redirect})
			l.check(t, hook, natStep{name: "server's port unreachable", role: RoleVPC,
				in:      errorFrame(eth(macNatVM1, f.vpcMAC), natVM1, labInet, 64, 3, 3, quoted(labInet, natVM1, udp(6001, 53), payload(24))[:28]),
				out:     errorFrame(eth(f.uplinkMAC, macRouter), natEIP2, labInet, 63, 3, 3, quoted(labInet, natEIP2, udp(6001, fwdUDPPort), payload(24))[:28]),
				verdict: redirect})

			// Fragments: the first opens the session, the second follows its translation.
			big := func(src, dst netip.Addr, sport, dport uint16, ttl uint8) []byte {
				return ipPacket(t, ip4(src, dst, layers.IPProtocolUDP, ttl), udp(sport, dport), payload(100))
			}
			in1, in2 := fragments(t, eth(macNatVM1, f.vpcMAC), big(natVM1, labInet, 7000, 53, 64), 48)
			out1, out2 := fragments(t, eth(f.uplinkMAC, macRouter), big(natEIP1, labInet, 7000, 53, 63), 48)
			l.check(t, hook, natStep{name: "first fragment out", role: RoleVPC, in: in1, out: out1, verdict: redirect})
			l.check(t, hook, natStep{name: "second fragment out", role: RoleVPC, in: in2, out: out2, verdict: redirect})
			back1, back2 := fragments(t, eth(macRemote, f.uplinkMAC), big(labInet, natEIP1, 53, 7000, 64), 48)
			want1, want2 := fragments(t, eth(f.vpcMAC, macNatVM1), big(labInet, natVM1, 53, 7000, 63), 48)
			l.check(t, hook, natStep{name: "first fragment back", role: RoleUplink, in: back1, out: want1, verdict: redirect})
			l.check(t, hook, natStep{name: "second fragment back", role: RoleUplink, in: back2, out: want2, verdict: redirect})
		})
	}
}

// Fragments in the wrong order (RFC 4787 REQ-14): the second fragment comes first and
// is held; when the first comes, the held one is sent back into the interface's
// ingress and leaves translated. At XDP both go up to the TC companion. The programs
// are attached to the lab's vpc interface for the held fragment's second pass, and
// what leaves the uplink is captured at its peer.
func TestNatGatewayOutOfOrderFragments(t *testing.T) {
	for _, hook := range []Hook{HookXDP, HookTC} {
		t.Run(string(hook), func(t *testing.T) {
			l := newNatLab(t)
			f := newNatFrames(t, l)
			must(t, l.host.Do(func() error { _, err := l.dp.Attach("vpc", RoleVPC, hook); return err }))
			capture, err := l.host.CaptureIPv4("uplink-peer")
			must(t, err)
			defer capture.Close()
			companion, err := l.dp.fragmentCompanion(RoleVPC)
			must(t, err)
			tcRedirect, tcDrop := hookVerdict(HookTC, verdictRedirect), hookVerdict(HookTC, verdictDrop)

			big := func(src uint16, from, to netip.Addr, ttl uint8) []byte {
				return ipPacket(t, ip4(from, to, layers.IPProtocolUDP, ttl), udp(src, 53), payload(100))
			}
			in1, in2 := fragments(t, eth(macNatVM1, f.vpcMAC), big(7001, natVM1, labInet2, 64), 48)
			out1, out2 := fragments(t, eth(f.uplinkMAC, macRouter), big(7001, natEIP1, labInet2, 63), 48)
			// Where XDP hands a frame up, the companion's run is the step that matters.
			step := func(s natStep) {
				t.Helper()
				if hook == HookXDP {
					l.check(t, HookXDP, natStep{name: s.name + ", at XDP", role: s.role, in: s.in,
						verdict: hookVerdict(HookXDP, verdictPass), reasons: map[Reason]uint64{ReasonPassFragmentToTC: 1}})
					s.prog, s.name = companion, s.name+", at the TC companion"
				}
				l.check(t, HookTC, s)
			}
			step(natStep{name: "second fragment first", role: RoleVPC, in: in2, verdict: tcDrop,
				reasons: map[Reason]uint64{ReasonHeldFragment: 1}})
			// The first fragment goes, and the held one after it: both count.
			step(natStep{name: "first fragment", role: RoleVPC, in: in1, out: out1, verdict: tcRedirect,
				eips: map[netip.Addr]EIPCounters{natEIP1: {OutPackets: 2, OutBytes: uint64(len(out1) - 14 + len(out2) - 14)}}})
			for {
				got, err := capture.Next(2 * time.Second)
				if err != nil {
					t.Fatalf("the held fragment never left: %v", err)
				}
				if bytes.Equal(got, out2) {
					break
				}
				t.Logf("captured another frame: %s", dump(got))
			}

			// Another datagram whose first fragment never comes: four of its
			// fragments are held, a fifth is not.
			_, early := fragments(t, eth(macNatVM2, f.vpcMAC), big(7100, natVM2, labInet, 64), 48)
			for i := 0; i < 5; i++ {
				want := map[Reason]uint64{ReasonHeldFragment: 1}
				if i == 4 {
					want = map[Reason]uint64{ReasonDropFragmentNoState: 1}
				}
				step(natStep{name: fmt.Sprintf("stray fragment %d", i+1), role: RoleVPC, in: early, verdict: tcDrop, reasons: want})
			}
		})
	}
}

func l4Proto(l gopacket.SerializableLayer) layers.IPProtocol {
	switch l.(type) {
	case *layers.TCP:
		return layers.IPProtocolTCP
	case *layers.UDP:
		return layers.IPProtocolUDP
	}
	return layers.IPProtocolICMPv4
}

// TestNatGatewayAffinity: with EipAffinity each internal address keeps one EIP of
// the pool, and the pool is used.
func TestNatGatewayAffinity(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	for i := 1; i <= 8; i++ {
		src := netip.AddrFrom4([4]byte{10, 0, 3, byte(i)})
		for port := uint16(3000); port < 3004; port++ {
			l.check(t, HookXDP, natStep{name: "affinity flow", role: RoleVPC, in: f.fromInside(src, labInet, udpDgram(port, 53)),
				verdict: hookVerdict(HookXDP, verdictRedirect), expect: func() []byte {
					ext := l.session(t, func(s Session) bool { return s.Inside == netip.AddrPortFrom(src, port) }).External
					return f.toInet(ext.Addr(), labInet, udpDgram(ext.Port(), 53))
				}})
		}
	}
	eipOf := map[netip.Addr]netip.Addr{}
	used := map[netip.Addr]bool{}
	for _, s := range mustSessions(t, l) {
		if e, ok := eipOf[s.Inside.Addr()]; ok && e != s.External.Addr() {
			t.Errorf("%v leaves from %v and %v", s.Inside.Addr(), e, s.External.Addr())
		}
		eipOf[s.Inside.Addr()] = s.External.Addr()
		used[s.External.Addr()] = true
	}
	if len(eipOf) != 8 || !used[natEIP1] || !used[natEIP3] {
		t.Errorf("sources %d, EIPs used %v", len(eipOf), used)
	}
}

// TestNatGatewayPortRace: two CPUs open flows that all want the same external ports
// at once; afterwards no external endpoint belongs to two sessions.
func TestNatGatewayPortRace(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	l := newNatLab(t)
	f := newNatFrames(t, l)
	prog := l.program(t, RoleVPC, HookXDP)
	const flows = 400
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for cpu, src := range []netip.Addr{natVM1, natVM2} {
		frames := make([][]byte, flows)
		for i := range frames {
			frames[i] = f.fromInside(src, labInet, udpDgram(uint16(20000+i), 53))
		}
		ctx, err := progrun.XDPContext(l.types, uint32(l.vpc.Index), len(frames[0]))
		must(t, err)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.host.Do(func() error {
				var set unix.CPUSet
				set.Set(cpu)
				if err := unix.SchedSetaffinity(0, &set); err != nil {
					return err
				}
				for _, fr := range frames {
					ret, err := prog.Run(&ebpf.RunOptions{Data: fr, Context: ctx})
					if err != nil {
						return err
					}
					if ret != hookVerdict(HookXDP, verdictRedirect) {
						return fmt.Errorf("verdict %d", ret)
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	ss := mustSessions(t, l)
	if len(ss) != 2*flows {
		t.Fatalf("%d sessions, want %d", len(ss), 2*flows)
	}
	owner := map[netip.AddrPort]netip.AddrPort{}
	for _, s := range ss {
		if o, dup := owner[s.External]; dup {
			t.Errorf("external %v belongs to %v and %v", s.External, o, s.Inside)
		}
		owner[s.External] = s.Inside
	}
	// Every contested port was taken, by exactly one session (the map above).
	for i := 0; i < flows; i++ {
		if _, ok := owner[netip.AddrPortFrom(natEIP1, uint16(20000+i))]; !ok {
			t.Errorf("contested port %d taken by nobody", 20000+i)
		}
	}
	n, err := l.dp.portsInUse()
	must(t, err)
	if n != 2*flows {
		t.Errorf("%d ports in use, want %d", n, 2*flows)
	}
}

// TestNatGatewayUDPRefreshDirection: by default only the instance's packets keep a UDP
// session alive (RFC 4787 REQ-6; inbound refresh lets an outside host hold a mapping
// for ever); UDPInboundRefresh makes the remote's packets count too.
func TestNatGatewayUDPRefreshDirection(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	hook := HookXDP
	redirect := hookVerdict(hook, verdictRedirect)
	t.Cleanup(func() { _ = l.dp.freezeSessionClock(0) })
	for _, inboundRefresh := range []bool{false, true} {
		cfg := DefaultNatConfig()
		cfg.ICMPSource = gwVPCAddr
		cfg.UDPInboundRefresh = inboundRefresh
		must(t, l.dp.SetNatConfig(cfg))
		start := 1000 * time.Second // any time: the clock is frozen
		must(t, l.dp.freezeSessionClock(start))
		l.check(t, hook, natStep{name: "udp out", role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(5100, 53)),
			out: f.toInet(natEIP1, labInet, udpDgram(5100, 53)), verdict: redirect})
		// Ten seconds later, the instance having gone quiet, the remote answers.
		must(t, l.dp.freezeSessionClock(start+10*time.Second))
		l.check(t, hook, natStep{name: "udp in", role: RoleUplink, in: f.fromInet(labInet, natEIP1, udpDgram(53, 5100)),
			out: f.toInside(labInet, natVM1, udpDgram(53, 5100)), verdict: redirect})
		got := l.session(t, func(s Session) bool { return s.Inside.Port() == 5100 })
		// Refreshed: idle 0. Otherwise 10 s, to the clock's resolution.
		refreshed := got.Idle == 0
		if off := got.Idle - 10*time.Second; refreshed != inboundRefresh || (!refreshed && (off < -SessionClockUnit || off > SessionClockUnit)) {
			t.Errorf("UDPInboundRefresh=%v: after a reply the session is idle %v (refreshed=%v)", inboundRefresh, got.Idle, refreshed)
		}
		l.purgeAll(t)
	}
}

// TestNatGatewayTableFull: a full session table is counted as such, not as exhausted
// ports (more EIPs would not help). A table for 4 sessions takes at least 4 with a
// mapping each, and refuses one before 20.
func TestNatGatewayTableFull(t *testing.T) {
	const capacity = 4
	l := newNatLabWith(t, Config{MaxBindings: 1024, MaxSessions: capacity})
	f := newNatFrames(t, l)
	for _, hook := range []Hook{HookXDP, HookTC} {
		t.Run(string(hook), func(t *testing.T) {
			t.Cleanup(func() { l.purgeAll(t) })
			prog := l.program(t, RoleVPC, hook)
			for p := uint16(0); p < 20; p++ {
				in := f.fromInside(natVM1, labInet, udpDgram(6000+p, 53))
				before := l.snapshot(t)
				_, out := l.run(t, prog, hook, l.ingress(RoleVPC), in)
				moved := diffReasons(before, l.snapshot(t))
				if len(moved) == 0 {
					if p >= 20-1 {
						t.Fatalf("a table for %d sessions took 20", capacity)
					}
					continue
				}
				if p < capacity {
					t.Fatalf("session %d of a table for %d refused: %v", p+1, capacity, moved)
				}
				refusal := f.refusal(in)
				if want := (map[string]uint64{ReasonDropNatTableFull.String(): 1}); !maps.Equal(moved, want) {
					t.Fatalf("session %d refused with %v, want %v", p+1, moved, want)
				}
				if !bytes.Equal(out[:len(refusal)], refusal) {
					t.Fatalf("session %d refused without its ICMP 3/13", p+1)
				}
				t.Logf("a table for %d sessions took %d with a mapping each", capacity, p)
				return
			}
		})
	}
}

func TestNatGatewayDeleteForwardRange(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	hook := HookXDP
	redirect, drop := hookVerdict(hook, verdictRedirect), hookVerdict(hook, verdictDrop)
	var ports []ExternalPort
	for p := uint16(9000); p < 9010; p++ {
		must(t, l.dp.SetForwardPort(ForwardPort{Protocol: ProtoUDP, External: netip.AddrPortFrom(natEIP2, p),
			Internal: netip.AddrPortFrom(natVM1, p)}))
		ports = append(ports, ExternalPort{Protocol: ProtoUDP, External: netip.AddrPortFrom(natEIP2, p)})
		l.check(t, hook, natStep{name: "a session through the range", role: RoleUplink,
			in:  f.fromInet(labInet, natEIP2, udpDgram(5000, p)),
			out: f.toInside(labInet, natVM1, udpDgram(5000, p)), verdict: redirect})
	}
	l.check(t, hook, natStep{name: "a session through another entry", role: RoleUplink,
		in:  f.fromInet(labInet, natEIP2, udpDgram(5000, fwdUDPPort)),
		out: f.toInside(labInet, natVM1, udpDgram(5000, 53)), verdict: redirect})

	must(t, l.dp.DeleteForwardPorts(ports))
	left := mustSessions(t, l)
	if len(left) != 1 || left[0].External != netip.AddrPortFrom(natEIP2, fwdUDPPort) {
		t.Fatalf("sessions after deleting the range: %+v", left)
	}
	fps, err := l.dp.ForwardPorts()
	must(t, err)
	for _, fp := range fps {
		if fp.External.Port() >= 9000 && fp.External.Port() < 9010 {
			t.Errorf("forward port %v survived", fp.External)
		}
	}
	l.check(t, hook, natStep{name: "the range admits nothing", role: RoleUplink,
		in: f.fromInet(labInet, natEIP2, udpDgram(5000, 9003)), verdict: drop,
		reasons: map[Reason]uint64{ReasonDropNatNoSession: 1}})
}
