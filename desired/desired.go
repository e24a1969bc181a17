// Package desired defines what the control plane wants the dataplane to carry: the
// 1:1 bindings, cut-through EIPs, registered sources, SNAT rules and forward ports,
// and the limits they live within. The model computes them from the store, the
// reconciler compares them with the dataplane's, and the dataplane takes them as they
// are: one definition for all three, with no BPF in it.
package desired

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
)

// Binding is a 1:1 translation between an EIP and a private address.
type Binding struct {
	EIP, Private netip.Addr
}

// Limit is an EIP's bandwidth in each direction, in bits per second. Shared names a
// bandwidth the EIP shares (a bandwidth package): the EIPs with the same Shared draw
// on one bucket at Bits together; empty, the EIP has Bits to itself. Cap holds an EIP
// of a shared bandwidth to at most Cap of it (0: no cap; ignored unshared).
type Limit struct {
	EIP    netip.Addr
	Bits   uint64
	Shared string
	Cap    uint64
}

// CutThrough is an EIP forwarded untranslated to the ENI with ENIMAC, and accepted as
// a source only from that MAC.
type CutThrough struct {
	EIP    netip.Addr
	ENIMAC net.HardwareAddr
}

// Source is an address an instance sends from, with the MAC it is registered with.
type Source struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
}

func (s Source) String() string { return s.Addr.String() + "@" + s.MAC.String() }

// Compare orders sources by address, then MAC.
func (s Source) Compare(o Source) int {
	if c := s.Addr.Compare(o.Addr); c != 0 {
		return c
	}
	return bytes.Compare(s.MAC, o.MAC)
}

// SnatRule sends traffic from Source out through one of the Pool's EIPs.
type SnatRule struct {
	Source netip.Prefix
	Pool   []netip.Addr
	// Affinity pairs each internal address with one EIP of the pool (EipAffinity).
	Affinity bool
}

// ForwardPort publishes Internal on External for one protocol (ProtoTCP or ProtoUDP):
// one external port of a forward entry, whose ranges are expanded and whose "Any"
// protocol is one port of each.
type ForwardPort struct {
	Protocol uint8
	External netip.AddrPort
	Internal netip.AddrPort
}

// ExternalPort names a forward port by what the internet sees.
type ExternalPort struct {
	Protocol uint8
	External netip.AddrPort
}

// Protocol numbers of what NAT gateways translate.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

// ProtoName is the lower-case name of a protocol number ("tcp"), or the number.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}

// MaxPoolEIPs is how many EIPs one SNAT entry may use (the reference's limit; the
// dataplane's pool layout is checked against it when it is built).
const MaxPoolEIPs = 20

// MaxCutThroughEIPs is how many EIPs one ENI may hold in multi-EIP cut-through mode.
const MaxCutThroughEIPs = 10
