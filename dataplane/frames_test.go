package dataplane

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Golden frames come from gopacket with FixLengths and ComputeChecksums; no checksum
// is typed by hand.

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		if ip, ok := l.(*layers.IPv4); ok {
			for _, l4 := range ls {
				switch v := l4.(type) {
				case *layers.TCP:
					v.SetNetworkLayerForChecksum(ip)
				case *layers.UDP:
					v.SetNetworkLayerForChecksum(ip)
				}
			}
			break
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func eth(src, dst net.HardwareAddr) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
}

func ip4(src, dst netip.Addr, proto layers.IPProtocol, ttl uint8) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: proto, Id: 0x1234,
		Flags: layers.IPv4DontFragment, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func tcpSyn(sport, dport uint16) *layers.TCP {
	return &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, SYN: true, Window: 64240}
}

func udp(sport, dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
}

func payload(n int) gopacket.Payload {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

// ipPacket serializes the IP packet alone (no Ethernet), e.g. to quote it in an ICMP
// error or to cut it into fragments.
func ipPacket(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	return serialize(t, ls...)
}

// fragments cuts a serialized IPv4 packet (20-byte header) into two fragments at
// byte `at` of its payload (a multiple of 8) and frames them.
func fragments(t testing.TB, e *layers.Ethernet, packet []byte, at int) (first, second []byte) {
	t.Helper()
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(packet, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	body := packet[ip.IHL*4:]
	mk := func(off int, data []byte, more bool) []byte {
		h := ip4(netip.AddrFrom4([4]byte(ip.SrcIP.To4())), netip.AddrFrom4([4]byte(ip.DstIP.To4())), ip.Protocol, ip.TTL)
		h.Flags = 0
		if more {
			h.Flags = layers.IPv4MoreFragments
		}
		h.FragOffset = uint16(off / 8)
		return serialize(t, e, h, gopacket.Payload(data))
	}
	return mk(0, body[:at], true), mk(at, body[at:], false)
}

// icmpError builds an ICMP error from `from` to `to` quoting `quoted` (an IP packet,
// already cut to what the error carries).
func icmpError(t testing.TB, e *layers.Ethernet, from, to netip.Addr, ttl uint8, typ, code uint8, quoted []byte) []byte {
	return serialize(t, e, ip4(from, to, layers.IPProtocolICMPv4, ttl),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, gopacket.Payload(quoted))
}
