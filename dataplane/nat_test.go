package dataplane

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

type verdict int

const (
	verdictRedirect verdict = iota
	verdictPass
	verdictDrop
)

func (v verdict) String() string { return [...]string{"redirect", "pass", "drop"}[v] }

// hookVerdict is the return code each hook uses for a verdict.
func hookVerdict(hook Hook, v verdict) uint32 {
	if hook == HookXDP {
		return [...]uint32{4 /* XDP_REDIRECT */, 2 /* XDP_PASS */, 1 /* XDP_DROP */}[v]
	}
	return [...]uint32{7 /* TC_ACT_REDIRECT */, 0 /* TC_ACT_OK */, 2 /* TC_ACT_SHOT */}[v]
}

type natCase struct {
	name    string
	role    Role
	in      []byte
	verdict verdict
	out     []byte // nil: the frame must come out exactly as it went in
	reasons map[Reason]uint64
	eips    map[netip.Addr]EIPCounters
	// notAtTC says why the kernel cannot run this case at TC, so the table leaves
	// it out there; the XDP run covers the same C code.
	notAtTC string
}

// natCases is the table of every path and every reason. Frames need the lab's MACs.
func natCases(t testing.TB, l *lab) []natCase {
	uplinkMAC, vpcMAC := l.uplink.HardwareAddr, l.vpc.HardwareAddr
	fromInet := func() *layers.Ethernet { return eth(macRemote, uplinkMAC) }
	toVM := func(mac net.HardwareAddr) *layers.Ethernet { return eth(vpcMAC, mac) }
	fromVM := func() *layers.Ethernet { return eth(macVM1, vpcMAC) }
	toRouter := func() *layers.Ethernet { return eth(uplinkMAC, macRouter) }
	in1 := func(n uint64) map[netip.Addr]EIPCounters {
		return map[netip.Addr]EIPCounters{eipVM1: {InPackets: 1, InBytes: n}}
	}
	out1 := func(n uint64) map[netip.Addr]EIPCounters {
		return map[netip.Addr]EIPCounters{eipVM1: {OutPackets: 1, OutBytes: n}}
	}
	pass := func(r Reason) map[Reason]uint64 { return map[Reason]uint64{r: 1} }

	// Inbound and outbound frames of one shape, before and after translation.
	type shape func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer
	inbound := func(e *layers.Ethernet, s shape, src, dst netip.Addr, ttl uint8) []byte {
		return serialize(t, append([]gopacket.SerializableLayer{e}, s(src, dst, ttl)...)...)
	}
	tcp := func(n int) shape {
		return func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
			return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolTCP, ttl), tcpSyn(40000, 80), payload(n)}
		}
	}
	udpShape := func(n int) shape {
		return func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
			return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolUDP, ttl), udp(40000, 53), payload(n)}
		}
	}
	echo := func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolICMPv4, ttl),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 77, Seq: 1}, payload(56)}
	}
	withOptions := func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
		ip := ip4(src, dst, layers.IPProtocolTCP, ttl)
		ip.Options = []layers.IPv4Option{{OptionType: 0x94, OptionLength: 4, OptionData: []byte{0, 0}}} // router alert
		return []gopacket.SerializableLayer{ip, tcpSyn(40000, 443), payload(8)}
	}

	var cases []natCase
	fwdIn := func(name string, s shape, ipLen uint64) {
		cases = append(cases, natCase{name: name, role: RoleUplink,
			in:  inbound(fromInet(), s, labInet, eipVM1, 64),
			out: inbound(toVM(macVM1), s, labInet, privVM1, 63), verdict: verdictRedirect, eips: in1(ipLen)})
	}
	fwdOut := func(name string, s shape, ipLen uint64) {
		cases = append(cases, natCase{name: name, role: RoleVPC,
			in:  inbound(fromVM(), s, privVM1, labInet, 64),
			out: inbound(toRouter(), s, eipVM1, labInet, 63), verdict: verdictRedirect, eips: out1(ipLen)})
	}
	fwdIn("inbound tcp", tcp(0), 40)
	fwdIn("inbound udp", udpShape(32), 60)
	fwdIn("inbound icmp echo", echo, 84)
	fwdIn("inbound ip options", withOptions, 52)
	fwdOut("outbound tcp", tcp(100), 140)
	fwdOut("outbound udp", udpShape(32), 60)
	fwdOut("outbound icmp echo", echo, 84)
	fwdOut("outbound ip options", withOptions, 52)

	cases = append(cases, natCase{name: "inbound ttl 2 leaves with ttl 1", role: RoleUplink,
		in:  inbound(fromInet(), udpShape(8), labInet, eipVM1, 2),
		out: inbound(toVM(macVM1), udpShape(8), labInet, privVM1, 1), verdict: verdictRedirect, eips: in1(36)})

	// UDP checksum rules (RFC 768): zero stays zero; a computed zero is sent as 0xffff.
	zeroUDP := func(frame []byte) []byte {
		binary.BigEndian.PutUint16(frame[14+20+6:], 0)
		return frame
	}
	cases = append(cases, natCase{name: "inbound udp without checksum keeps it zero", role: RoleUplink,
		in:  zeroUDP(inbound(fromInet(), udpShape(32), labInet, eipVM1, 64)),
		out: zeroUDP(inbound(toVM(macVM1), udpShape(32), labInet, privVM1, 63)), verdict: verdictRedirect, eips: in1(60)})
	for p := 0; p < 1<<16; p++ {
		s := func(src, dst netip.Addr, ttl uint8) []gopacket.SerializableLayer {
			return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolUDP, ttl), udp(40000, 53),
				gopacket.Payload{byte(p >> 8), byte(p)}}
		}
		out := inbound(toVM(macVM1), s, labInet, privVM1, 63)
		if binary.BigEndian.Uint16(out[14+20+6:]) != 0 {
			continue
		}
		binary.BigEndian.PutUint16(out[14+20+6:], 0xffff)
		cases = append(cases, natCase{name: "inbound udp whose checksum becomes zero is sent as 0xffff", role: RoleUplink,
			in: inbound(fromInet(), s, labInet, eipVM1, 64), out: out, verdict: verdictRedirect, eips: in1(30)})
		break
	}

	// Ethernet padding is not part of the packet and is left alone.
	pad := func(frame []byte) []byte { return append(frame, make([]byte, 60-len(frame))...) }
	cases = append(cases, natCase{name: "inbound padded frame", role: RoleUplink,
		in:  pad(inbound(fromInet(), udpShape(4), labInet, eipVM1, 64)),
		out: pad(inbound(toVM(macVM1), udpShape(4), labInet, privVM1, 63)), verdict: verdictRedirect, eips: in1(32)})

	// Fragments: the first carries the L4 header, whose checksum covers the whole
	// datagram; the others carry none and only their IP header changes.
	datagram := func(src, dst netip.Addr, ttl uint8) []byte {
		ip := ip4(src, dst, layers.IPProtocolUDP, ttl)
		ip.Flags = 0
		return ipPacket(t, ip, udp(40000, 5000), payload(100))
	}
	inFirst, inSecond := fragments(t, fromInet(), datagram(labInet, eipVM1, 64), 48)
	outFirst, outSecond := fragments(t, toVM(macVM1), datagram(labInet, privVM1, 63), 48)
	cases = append(cases,
		natCase{name: "inbound first fragment", role: RoleUplink, in: inFirst, out: outFirst,
			verdict: verdictRedirect, eips: in1(68)},
		natCase{name: "inbound non-first fragment", role: RoleUplink, in: inSecond, out: outSecond,
			verdict: verdictRedirect, eips: in1(80)})
	oFirst, oSecond := fragments(t, fromVM(), datagram(privVM1, labInet, 64), 48)
	wFirst, wSecond := fragments(t, toRouter(), datagram(eipVM1, labInet, 63), 48)
	cases = append(cases,
		natCase{name: "outbound first fragment", role: RoleVPC, in: oFirst, out: wFirst,
			verdict: verdictRedirect, eips: out1(68)},
		natCase{name: "outbound non-first fragment", role: RoleVPC, in: oSecond, out: wSecond,
			verdict: verdictRedirect, eips: out1(80)})

	// ICMP errors: the quoted packet is reverted, every checksum stays valid.
	quote := func(ls []gopacket.SerializableLayer, n int) []byte {
		p := ipPacket(t, ls...)
		if n > 0 && n < len(p) {
			p = p[:n]
		}
		return p
	}
	quotedUDP := func(src, dst netip.Addr) []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolUDP, 1), udp(5000, 33434), payload(24)}
	}
	quotedTCP := func(src, dst netip.Addr) []gopacket.SerializableLayer {
		return []gopacket.SerializableLayer{ip4(src, dst, layers.IPProtocolTCP, 1), tcpSyn(5000, 80), payload(10)}
	}
	icmpIn := func(name string, typ, code uint8, q func(src, dst netip.Addr) []gopacket.SerializableLayer, n int) {
		in := icmpError(t, fromInet(), labHop, eipVM1, 64, typ, code, quote(q(eipVM1, labInet), n))
		out := icmpError(t, toVM(macVM1), labHop, privVM1, 63, typ, code, quote(q(privVM1, labInet), n))
		cases = append(cases, natCase{name: name, role: RoleUplink, in: in, out: out,
			verdict: verdictRedirect, eips: in1(uint64(len(in) - 14))})
	}
	icmpIn("inbound time exceeded quoting udp", 11, 0, quotedUDP, 28)
	icmpIn("inbound port unreachable quoting a whole udp datagram", 3, 3, quotedUDP, 0)
	icmpIn("inbound unreachable quoting 8 bytes of tcp", 3, 1, quotedTCP, 28)
	icmpIn("inbound unreachable quoting the tcp checksum", 3, 1, quotedTCP, 0)
	icmpIn("inbound fragmentation needed quoting udp", 3, 4, quotedUDP, 28)
	{
		in := icmpError(t, fromVM(), privVM1, labInet, 64, 3, 3, quote(quotedUDP(labInet, privVM1), 0))
		out := icmpError(t, toRouter(), eipVM1, labInet, 63, 3, 3, quote(quotedUDP(labInet, eipVM1), 0))
		cases = append(cases, natCase{name: "outbound port unreachable", role: RoleVPC, in: in, out: out,
			verdict: verdictRedirect, eips: out1(uint64(len(in) - 14))})
	}

	// Cut-through: forwarded untranslated, and only from its ENI's MAC.
	cutIn := map[netip.Addr]EIPCounters{eipCut: {InPackets: 1, InBytes: 60}}
	cutOut := map[netip.Addr]EIPCounters{eipCut: {OutPackets: 1, OutBytes: 60}}
	cases = append(cases,
		natCase{name: "inbound to a cut-through EIP goes untranslated", role: RoleUplink,
			in:  inbound(fromInet(), udpShape(32), labInet, eipCut, 64),
			out: inbound(toVM(macCut), udpShape(32), labInet, eipCut, 63), verdict: verdictRedirect, eips: cutIn},
		natCase{name: "outbound from a cut-through ENI goes untranslated", role: RoleVPC,
			in:  inbound(eth(macCut, vpcMAC), udpShape(32), eipCut, labInet, 64),
			out: inbound(toRouter(), udpShape(32), eipCut, labInet, 63), verdict: verdictRedirect, eips: cutOut},
		natCase{name: "a cut-through EIP as source from another MAC is dropped", role: RoleVPC,
			in: inbound(fromVM(), udpShape(32), eipCut, labInet, 64), verdict: verdictDrop,
			reasons: pass(ReasonDropCutThroughSpoof)},
	)

	// Handed to the kernel untouched.
	passUntouched := func(name string, role Role, frame []byte, r Reason) {
		cases = append(cases, natCase{name: name, role: role, in: frame, verdict: verdictPass, reasons: pass(r)})
	}
	passUntouched("inbound ttl 1", RoleUplink, inbound(fromInet(), udpShape(8), labInet, eipVM1, 1), ReasonPassTTLExpiring)
	passUntouched("inbound ttl 0", RoleUplink, inbound(fromInet(), udpShape(8), labInet, eipVM1, 0), ReasonPassTTLExpiring)
	passUntouched("outbound ttl 1", RoleVPC, inbound(fromVM(), udpShape(8), privVM1, labInet, 1), ReasonPassTTLExpiring)
	passUntouched("inbound to the gateway itself", RoleUplink,
		inbound(fromInet(), tcp(0), labInet, netip.MustParseAddr("198.51.100.254"), 64), ReasonPassNotBound)
	passUntouched("outbound to the gateway itself", RoleVPC,
		inbound(fromVM(), tcp(0), netip.MustParseAddr("10.0.1.77"), netip.MustParseAddr("10.0.0.1"), 64), ReasonPassNotBound)
	passUntouched("outbound untranslated to a special-purpose destination", RoleVPC,
		inbound(fromVM(), tcp(0), netip.MustParseAddr("10.0.1.77"), netip.MustParseAddr("100.64.0.2"), 64), ReasonPassNotBound)
	passUntouched("outbound to the limited broadcast address", RoleVPC,
		inbound(fromVM(), udpShape(8), privVM1, netip.MustParseAddr("255.255.255.255"), 64), ReasonPassBroadcastMulticast)
	passUntouched("outbound to link-local multicast", RoleVPC,
		inbound(fromVM(), udpShape(8), privVM1, netip.MustParseAddr("224.0.0.251"), 64), ReasonPassBroadcastMulticast)
	passUntouched("outbound to global multicast", RoleVPC,
		inbound(fromVM(), udpShape(8), privVM1, netip.MustParseAddr("239.1.2.3"), 64), ReasonPassBroadcastMulticast)
	// Sent to another host (flooded to the gateway by a bridge) or to an Ethernet group
	// address: not the gateway's to forward, even when it would translate it.
	passUntouched("inbound to another host's MAC", RoleUplink,
		inbound(eth(macRemote, macVM9), udpShape(8), labInet, eipVM1, 64), ReasonPassOtherHost)
	passUntouched("inbound to the Ethernet broadcast address", RoleUplink,
		inbound(eth(macRemote, layers.EthernetBroadcast), udpShape(8), labInet, eipVM1, 64), ReasonPassOtherHost)
	passUntouched("outbound to another host's MAC", RoleVPC,
		inbound(eth(macVM1, macRouter), udpShape(8), privVM1, labInet, 64), ReasonPassOtherHost)
	passUntouched("outbound to an Ethernet multicast address", RoleVPC,
		inbound(eth(macVM1, net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 0xfb}), udpShape(8), privVM1, labInet, 64), ReasonPassOtherHost)
	{
		malformed := inbound(eth(macRemote, macVM9), udpShape(0), labInet, eipVM1, 64)
		malformed[14] = 0x44 // IHL 4: dropped when sent to us, the kernel's when not
		passUntouched("a malformed frame to another host's MAC", RoleUplink, malformed, ReasonPassOtherHost)
	}
	{
		tagged := inbound(fromVM(), udpShape(8), privVM1, labInet, 64)
		tagged = append(tagged[:12:12], append([]byte{0x81, 0x00, 0x00, 0x0a}, tagged[12:]...)...)
		passUntouched("outbound with a VLAN tag in the frame", RoleVPC, tagged, ReasonPassVLANTagged)
		qinq := inbound(fromInet(), udpShape(8), labInet, eipVM1, 64)
		qinq = append(qinq[:12:12], append([]byte{0x88, 0xa8, 0x00, 0x0a}, qinq[12:]...)...)
		passUntouched("inbound with an 802.1ad tag in the frame", RoleUplink, qinq, ReasonPassVLANTagged)
	}

	// The edge: what a tenant or the internet may not send.
	dropped := func(name string, role Role, frame []byte, r Reason) {
		cases = append(cases, natCase{name: name, role: role, in: frame, verdict: verdictDrop, reasons: pass(r)})
	}
	dropped("inbound to an unbound EIP", RoleUplink,
		inbound(fromInet(), tcp(0), labInet, netip.MustParseAddr("203.0.113.99"), 64), ReasonDropUnpublished)
	dropped("inbound straight to an instance's private address", RoleUplink,
		inbound(fromInet(), tcp(0), labInet, privVM1, 64), ReasonDropUnpublished)
	for _, bogon := range []string{"10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.7", "127.0.0.1",
		"169.254.1.1", "0.1.2.3", "224.0.0.5", "240.0.0.1"} {
		dropped("inbound from special-purpose source "+bogon, RoleUplink,
			inbound(fromInet(), udpShape(8), netip.MustParseAddr(bogon), eipVM1, 64), ReasonDropBogonSource)
	}
	passUntouched("inbound from a special-purpose source to the gateway itself", RoleUplink,
		inbound(fromInet(), tcp(0), netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("198.51.100.254"), 64), ReasonPassNotBound)
	dropped("inbound from a special-purpose source to an unbound address", RoleUplink,
		inbound(fromInet(), tcp(0), netip.MustParseAddr("192.168.7.7"), netip.MustParseAddr("203.0.113.99"), 64), ReasonDropBogonSource)
	dropped("outbound from an unregistered source to the internet", RoleVPC,
		inbound(fromVM(), tcp(0), netip.MustParseAddr("172.16.99.99"), labInet, 64), ReasonDropUntranslated)
	dropped("outbound from a registered instance without an EIP to the internet", RoleVPC,
		inbound(eth(macVM9, vpcMAC), tcp(0), privNoEIP, labInet, 64), ReasonDropUntranslated)
	dropped("outbound with a bound address from another MAC", RoleVPC,
		inbound(eth(macVM9, vpcMAC), tcp(0), privVM1, labInet, 64), ReasonDropSpoofedSource)
	dropped("outbound with a bound EIP as source", RoleVPC,
		inbound(fromVM(), tcp(0), eipVM1, labInet, 64), ReasonDropSpoofedSource)
	dropped("outbound with an unallocated pool address as source", RoleVPC,
		inbound(fromVM(), tcp(0), netip.MustParseAddr("203.0.113.250"), labInet, 64), ReasonDropSpoofedSource)
	passUntouched("arp", RoleUplink, serialize(t,
		&layers.Ethernet{SrcMAC: macRemote, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: macRemote, SourceProtAddress: labRouterIP.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: eipVM1.AsSlice()}), ReasonPassNotIPv4)
	passUntouched("ipv6", RoleUplink, serialize(t,
		&layers.Ethernet{SrcMAC: macRemote, DstMAC: uplinkMAC, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolNoNextHeader,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}), ReasonPassNotIPv4)

	// Translated, then handed to the kernel to finish: no TTL change, no MAC change.
	passTranslated := func(name string, eip, priv netip.Addr, s shape, r Reason, ipLen uint64) {
		cases = append(cases, natCase{name: name, role: RoleUplink,
			in:  inbound(fromInet(), s, labInet, eip, 64),
			out: inbound(fromInet(), s, labInet, priv, 64), verdict: verdictPass, reasons: pass(r),
			eips: map[netip.Addr]EIPCounters{eip: {InPackets: 1, InBytes: ipLen}}})
	}
	passTranslated("inbound with an unresolved neighbour", eipNoNeigh, privNoNeigh, udpShape(8), ReasonPassNoNeigh, 36)
	passTranslated("inbound bigger than the route's MTU", eipSmallMTU, privSmallMTU, udpShape(1100), ReasonPassMTUExceeded, 1128)
	passTranslated("inbound to an unreachable route", eipUnreachable, privUnreachable, udpShape(8), ReasonPassFIBOther, 36)

	// Malformed input: a good frame with one field broken.
	good := func() []byte { return inbound(fromInet(), udpShape(0), labInet, eipVM1, 64) }
	broken := func(name string, frame []byte, r Reason) {
		cases = append(cases, natCase{name: name, role: RoleUplink, in: frame, verdict: verdictDrop, reasons: pass(r)})
	}
	set := func(frame []byte, off int, b ...byte) []byte { copy(frame[off:], b); return frame }
	broken("ip header cut short", good()[:14+12], ReasonDropBadIPHeader)
	cases[len(cases)-1].notAtTC = "BPF_PROG_TEST_RUN for skbs refuses an IPv4 frame shorter than an IP header"
	broken("ihl 4", set(good(), 14, 0x44), ReasonDropBadIPHeader)
	broken("ihl 15 beyond the frame", set(good(), 14, 0x4f), ReasonDropBadIPHeader)
	broken("version 6 in an IPv4 frame", set(good(), 14, 0x65), ReasonDropBadIPHeader)
	broken("total length beyond the frame", set(good(), 16, 0, 200), ReasonDropBadIPLength)
	broken("total length shorter than the header", set(good(), 16, 0, 16), ReasonDropBadIPLength)
	for _, p := range []struct {
		name  string
		proto layers.IPProtocol
		n     int
	}{{"tcp header cut short", layers.IPProtocolTCP, 10}, {"udp header cut short", layers.IPProtocolUDP, 4},
		{"icmp header cut short", layers.IPProtocolICMPv4, 4}} {
		broken(p.name, serialize(t, fromInet(), ip4(labInet, eipVM1, p.proto, 64), payload(p.n)), ReasonDropTruncatedL4)
	}
	goodTCP := func() []byte { return inbound(fromInet(), tcp(8), labInet, eipVM1, 64) }
	broken("tcp data offset 4", set(goodTCP(), 14+20+12, 0x40), ReasonDropBadTCPHeader)
	broken("tcp data offset past the segment", set(goodTCP(), 14+20+12, 0x80), ReasonDropBadTCPHeader)
	broken("udp length 7", set(good(), 14+20+4, 0, 7), ReasonDropBadUDPLength)
	broken("udp length beyond the ip payload", set(good(), 14+20+4, 0, 9), ReasonDropBadUDPLength)
	broken("icmp error quoting a cut ip header",
		icmpError(t, fromInet(), labHop, eipVM1, 64, 11, 0, quote(quotedUDP(eipVM1, labInet), 12)), ReasonDropBadICMPError)
	broken("icmp error quoting ihl 3",
		icmpError(t, fromInet(), labHop, eipVM1, 64, 11, 0, set(quote(quotedUDP(eipVM1, labInet), 28), 0, 0x43)), ReasonDropBadICMPError)
	broken("icmp error quoting a packet the EIP did not send",
		icmpError(t, fromInet(), labHop, eipVM1, 64, 11, 0, quote(quotedUDP(netip.MustParseAddr("203.0.113.77"), labInet), 28)),
		ReasonDropICMPMismatch)
	return cases
}

func TestNATPaths(t *testing.T) {
	l := newLab(t)
	cases := natCases(t, l)
	for _, hook := range []Hook{HookXDP, HookTC} {
		for _, c := range cases {
			if hook != HookXDP && c.notAtTC != "" {
				continue
			}
			t.Run(string(hook)+"/"+c.name, func(t *testing.T) {
				before := l.snapshot(t)
				ret, out := l.run(t, l.program(t, c.role, hook), hook, l.ingress(c.role), c.in)
				after := l.snapshot(t)

				if want := hookVerdict(hook, c.verdict); ret != want {
					t.Errorf("verdict %d, want %d (%s); reasons moved: %v", ret, want, c.verdict, diffReasons(before, after))
				}
				want := c.out
				if want == nil {
					want = c.in
				}
				if !bytes.Equal(out, want) {
					t.Errorf("frame out differs\n got: %s\nwant: %s", dump(out), dump(want))
				}
				for r := Reason(0); r < ReasonMax; r++ {
					if got := after.reasons[r] - before.reasons[r]; got != c.reasons[r] {
						t.Errorf("reason %s moved by %d, want %d", r, got, c.reasons[r])
					}
				}
				for eip, b := range before.eips {
					a := after.eips[eip]
					got := EIPCounters{InPackets: a.InPackets - b.InPackets, InBytes: a.InBytes - b.InBytes,
						OutPackets: a.OutPackets - b.OutPackets, OutBytes: a.OutBytes - b.OutBytes,
						InDroppedPackets: a.InDroppedPackets - b.InDroppedPackets, InDroppedBytes: a.InDroppedBytes - b.InDroppedBytes,
						OutDroppedPackets: a.OutDroppedPackets - b.OutDroppedPackets, OutDroppedBytes: a.OutDroppedBytes - b.OutDroppedBytes}
					if got != c.eips[eip] {
						t.Errorf("counters of %v moved by %+v, want %+v", eip, got, c.eips[eip])
					}
				}
			})
		}
	}
}

func diffReasons(before, after countersSnapshot) map[string]uint64 {
	var d ReasonCounts
	for r := range d {
		d[r] = after.reasons[r] - before.reasons[r]
	}
	return d.NonZero()
}

func dump(frame []byte) string {
	return gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default).String()
}
