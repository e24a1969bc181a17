package model

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/eipgw/eipgw/desired"
)

func TestNatGatewayEntries(t *testing.T) {
	w := newWorld(t)
	g := w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	stb := g["SnatTableIds"].(map[string]any)["SnatTableId"].([]any)[0].(string)
	ftb := g["ForwardTableIds"].(map[string]any)["ForwardTableId"].([]any)[0].(string)
	var ips, ids []string
	for i := 0; i < 3; i++ {
		id, ip := w.allocate(acct)
		ids, ips = append(ids, id), append(ips, ip)
	}
	w.ok(acct, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "ngw-1", "InstanceType", TypeNat)
	w.ok(acct, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "ngw-1", "InstanceType", TypeNat)
	w.settle()

	// SNAT entries.
	for _, bad := range []string{"a", "1abc", "https://x", string(make([]byte, 129))} {
		w.wantCode("InvalidParameter", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.9.0/24", "SnatIp", ips[0],
			"SnatEntryName", bad)
		w.wantCode("InvalidParameter", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[1], "ExternalPort", "81",
			"InternalIp", "10.0.1.11", "InternalPort", "81", "IpProtocol", "TCP", "ForwardEntryName", bad)
	}
	w.wantCode("InvalidSnatTableId.NotFound", acct, "CreateSnatEntry", "SnatTableId", "stb-none", "SourceCIDR", "10.0.1.0/24", "SnatIp", ips[0])
	w.wantCode("InvalidSnatIp.Malformed", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.0/24", "SnatIp", "nope")
	w.wantCode("InvalidSnatIp.NotFound", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.0/24", "SnatIp", ips[2])
	w.wantCode("InvalidParameter", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.0/33", "SnatIp", ips[0])
	w.wantCode("InvalidVSwitchId.NotFound", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceVSwitchId", "vsw-1", "SnatIp", ips[0])
	m := w.ok(acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.0/24", "SnatIp", ips[0]+","+ips[1], "EipAffinity", "1")
	snat := m["SnatEntryId"].(string)
	w.wantCode("Forbidden.SourceVSwitchId.Duplicated", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.11/32", "SnatIp", ips[0])
	w.wantCode("Forbidden.SourceVSwitchId.Duplicated", acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.0.0/16", "SnatIp", ips[0])
	w.ok(acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.2.0/24", "SnatIp", ips[1])
	d := w.ok(acct, "DescribeSnatTableEntries", "SnatTableId", stb)
	if d["TotalCount"].(float64) != 2 {
		t.Errorf("SNAT entries: %v", d)
	}
	w.ok(acct, "ModifySnatEntry", "SnatTableId", stb, "SnatEntryId", snat, "SnatIp", ips[1], "SnatEntryName", "web")
	w.wantCode("InvalidSnatEntryId.NotFound", acct, "ModifySnatEntry", "SnatTableId", stb, "SnatEntryId", "snat-none")

	// Forward entries.
	fwd := func(kv ...string) []string {
		return append([]string{"ForwardTableId", ftb, "ExternalIp", ips[0], "InternalIp", "10.0.1.11"}, kv...)
	}
	w.wantCode("InvalidForwardTableId.NotFound", acct, "CreateForwardEntry", "ForwardTableId", "ftb-none", "ExternalIp", ips[0],
		"InternalIp", "10.0.1.11", "ExternalPort", "80", "InternalPort", "80", "IpProtocol", "TCP")
	w.wantCode("InvalidIp.NotInNatgw", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[2],
		"InternalIp", "10.0.1.11", "ExternalPort", "80", "InternalPort", "80", "IpProtocol", "TCP")
	w.wantCode("InvalidExternalIp.Malformed", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", "x",
		"InternalIp", "10.0.1.11", "ExternalPort", "80", "InternalPort", "80", "IpProtocol", "TCP")
	w.wantCode("InvalidInternalIp.Malformed", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[0],
		"InternalIp", "x", "ExternalPort", "80", "InternalPort", "80", "IpProtocol", "TCP")
	w.wantCode("InvalidProtocal.ValueNotSupported", acct, "CreateForwardEntry", fwd("ExternalPort", "80", "InternalPort", "80", "IpProtocol", "SCTP")...)
	w.wantCode("InvalidExternalPort.Malformed", acct, "CreateForwardEntry", fwd("ExternalPort", "0", "InternalPort", "80", "IpProtocol", "TCP")...)
	w.wantCode("InvalidExternalPort.Malformed", acct, "CreateForwardEntry", fwd("ExternalPort", "90/80", "InternalPort", "80", "IpProtocol", "TCP")...)
	w.wantCode("InvalidInternalPort.Malformed", acct, "CreateForwardEntry", fwd("ExternalPort", "1000/1010", "InternalPort", "2000/2005", "IpProtocol", "TCP")...)
	w.wantCode("InvalidExternalPort.Malformed", acct, "CreateForwardEntry", fwd("ExternalPort", "Any", "InternalPort", "Any", "IpProtocol", "TCP")...)
	w.wantCode("MissingParameter", acct, "CreateForwardEntry", fwd("ExternalPort", "80", "InternalPort", "80")...)
	m = w.ok(acct, "CreateForwardEntry", fwd("ExternalPort", "1000/1010", "InternalPort", "2000/2010", "IpProtocol", "TCP")...)
	fwdID := m["ForwardEntryId"].(string)
	w.wantCode("Forbidden.PortOccupied", acct, "CreateForwardEntry", fwd("ExternalPort", "1010", "InternalPort", "80", "IpProtocol", "TCP")...)
	w.ok(acct, "CreateForwardEntry", fwd("ExternalPort", "1010", "InternalPort", "80", "IpProtocol", "UDP")...)
	// Whole-IP mapping owns an address no SNAT entry uses.
	w.wantCode("Forbidden.ExternalIp.UsedInSnatTable", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[1],
		"InternalIp", "10.0.1.12", "ExternalPort", "Any", "InternalPort", "Any", "IpProtocol", "Any")
	d = w.ok(acct, "DescribeForwardTableEntries", "ForwardTableId", ftb)
	if d["TotalCount"].(float64) != 2 {
		t.Errorf("forward entries: %v", d)
	}

	// An EIP an entry uses cannot leave the gateway, nor the gateway go.
	w.wantCode("DependencyViolation.NatEntry", acct, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "ngw-1")
	w.wantCode("DependencyViolation.NatGateway", "admin", "DeleteNatGateway", "NatGatewayId", "ngw-1")
	for _, e := range d["ForwardTableEntries"].(map[string]any)["ForwardTableEntry"].([]any) {
		w.ok(acct, "DeleteForwardEntry", "ForwardTableId", ftb, "ForwardEntryId", e.(map[string]any)["ForwardEntryId"].(string))
	}
	w.wantCode("InvalidForwardEntryId.NotFound", acct, "DeleteForwardEntry", "ForwardTableId", ftb, "ForwardEntryId", fwdID)
	// ips[0] is no longer in any entry after the SNAT entry moved to ips[1].
	w.ok(acct, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "ngw-1")
	w.wantCode("DependencyViolation.NatEntry", acct, "UnassociateEipAddress", "AllocationId", ids[1], "InstanceId", "ngw-1")
	gw := w.ok(acct, "DescribeNatGateways", "NatGatewayId", "ngw-1")
	if gw["TotalCount"].(float64) != 1 {
		t.Errorf("describe gateways: %v", gw)
	}
}

// TestDesiredNatState: what the dataplane is asked to carry for NAT gateways. A port
// range is expanded port by port, an Any/Any entry is a 1:1 binding of the whole EIP
// (and that EIP is no NAT EIP), and an SNAT entry's pool keeps its EIPs in their order,
// with its affinity. (Protocol Any takes only Any/Any ports: the API refuses it with
// a port, as the reference does.)
func TestDesiredNatState(t *testing.T) {
	w := newWorld(t)
	g := w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	stb := g["SnatTableIds"].(map[string]any)["SnatTableId"].([]any)[0].(string)
	ftb := g["ForwardTableIds"].(map[string]any)["ForwardTableId"].([]any)[0].(string)
	var ips []string
	for i := 0; i < 4; i++ {
		id, ip := w.allocate(acct)
		ips = append(ips, ip)
		if i < 3 {
			w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "ngw-1", "InstanceType", TypeNat)
		}
	}
	w.settle()
	w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[0], "ExternalPort", "1000/1002",
		"InternalIp", "10.0.1.11", "InternalPort", "2000/2002", "IpProtocol", "TCP")
	w.wantCode("InvalidExternalPort.Malformed", acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[0],
		"ExternalPort", "53", "InternalIp", "10.0.1.12", "InternalPort", "5353", "IpProtocol", "Any")
	w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[0], "ExternalPort", "53",
		"InternalIp", "10.0.1.12", "InternalPort", "5353", "IpProtocol", "UDP")
	w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ips[2], "ExternalPort", "Any",
		"InternalIp", "10.0.1.13", "InternalPort", "Any", "IpProtocol", "Any")
	w.ok(acct, "CreateSnatEntry", "SnatTableId", stb, "SourceCIDR", "10.0.1.0/24", "SnatIp", ips[1]+","+ips[0], "EipAffinity", "1")

	var d DesiredNat
	if err := func() (err error) { d, err = DesiredNatState(w.tx); return }(); err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr
	var ports []string
	for _, p := range d.Ports {
		ports = append(ports, fmt.Sprintf("%s %v %v", desired.ProtoName(p.Protocol), p.External, p.Internal))
	}
	slices.Sort(ports)
	wantPorts := []string{
		fmt.Sprintf("tcp %s:1000 10.0.1.11:2000", ips[0]), fmt.Sprintf("tcp %s:1001 10.0.1.11:2001", ips[0]),
		fmt.Sprintf("tcp %s:1002 10.0.1.11:2002", ips[0]), fmt.Sprintf("udp %s:53 10.0.1.12:5353", ips[0]),
	}
	slices.Sort(wantPorts)
	if !slices.Equal(ports, wantPorts) {
		t.Errorf("ports\n got %v\nwant %v", ports, wantPorts)
	}
	if len(d.IPMappings) != 1 || d.IPMappings[0] != (desired.Binding{EIP: addr(ips[2]), Private: addr("10.0.1.13")}) {
		t.Errorf("IP mappings %+v", d.IPMappings)
	}
	eips := slices.Clone(d.EIPs)
	slices.SortFunc(eips, netip.Addr.Compare)
	wantEIPs := []netip.Addr{addr(ips[0]), addr(ips[1])}
	slices.SortFunc(wantEIPs, netip.Addr.Compare)
	if !slices.Equal(eips, wantEIPs) {
		t.Errorf("NAT EIPs %v, want %v (not the IP-mapped %s, not the unassociated %s)", eips, wantEIPs, ips[2], ips[3])
	}
	if len(d.Rules) != 1 || d.Rules[0].Source != netip.MustParsePrefix("10.0.1.0/24") || !d.Rules[0].Affinity ||
		!slices.Equal(d.Rules[0].Pool, []netip.Addr{addr(ips[1]), addr(ips[0])}) {
		t.Errorf("SNAT rules %+v", d.Rules)
	}
}

// TestModifyForwardEntry: a forward entry's fields change in place, checked like a new
// entry's (a port another entry holds is refused, a bad range too), and the desired
// dataplane follows.
func TestModifyForwardEntry(t *testing.T) {
	w := newWorld(t)
	g := w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	ftb := g["ForwardTableIds"].(map[string]any)["ForwardTableId"].([]any)[0].(string)
	id, ip := w.allocate(acct)
	w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "ngw-1", "InstanceType", TypeNat)
	w.settle()
	e := w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ip, "ExternalPort", "80",
		"InternalIp", "10.0.1.11", "InternalPort", "8080", "IpProtocol", "TCP")
	fid := e["ForwardEntryId"].(string)
	w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", ip, "ExternalPort", "443",
		"InternalIp", "10.0.1.12", "InternalPort", "443", "IpProtocol", "TCP")

	w.wantCode("InvalidForwardEntryId.NotFound", acct, "ModifyForwardEntry", "ForwardTableId", ftb,
		"ForwardEntryId", "fwd-none", "InternalPort", "81")
	w.wantCode("Forbidden.PortOccupied", acct, "ModifyForwardEntry", "ForwardTableId", ftb,
		"ForwardEntryId", fid, "ExternalPort", "443")
	w.wantCode("InvalidInternalPort.Malformed", acct, "ModifyForwardEntry", "ForwardTableId", ftb,
		"ForwardEntryId", fid, "ExternalPort", "80/81", "InternalPort", "8080")
	w.ok(acct, "ModifyForwardEntry", "ForwardTableId", ftb, "ForwardEntryId", fid,
		"InternalIp", "10.0.1.13", "InternalPort", "9090", "ForwardEntryName", "web")

	d, err := DesiredNatState(w.tx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, p := range d.Ports {
		if p.External == netip.AddrPortFrom(netip.MustParseAddr(ip), 80) {
			found = true
			if p.Internal != netip.MustParseAddrPort("10.0.1.13:9090") || p.Protocol != desired.ProtoTCP {
				t.Errorf("modified port now %+v", p)
			}
		}
	}
	if !found || len(d.Ports) != 2 {
		t.Errorf("desired ports %+v", d.Ports)
	}
	rows := w.ok(acct, "DescribeForwardTableEntries", "ForwardTableId", ftb)["ForwardTableEntries"].(map[string]any)["ForwardTableEntry"].([]any)
	for _, r := range rows {
		m := r.(map[string]any)
		if m["ForwardEntryId"] == fid && (m["ForwardEntryName"] != "web" || m["InternalIp"] != "10.0.1.13") {
			t.Errorf("described after the change: %v", m)
		}
	}
}
