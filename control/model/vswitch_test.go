package model

import "testing"

// TestVSwitches: a vSwitch's block rules, its Describe filters, and what is made in
// it: a HaVip (its address from the block: given, or the first free one; not a
// reserved one), a NAT gateway, a SNAT entry for the whole vSwitch; a vSwitch in use
// is not deleted.
func TestVSwitches(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateVSwitch", "VSwitchId", "vsw-1", "VpcId", "vpc-1", "ZoneId", "zone-a", "CidrBlock", "10.0.5.0/24", "VSwitchName", "front")
	for _, bad := range []string{"10.0.5.1/24", "10.0.0.0/8", "10.0.9.0/30", "fd00::/64", "ten"} {
		w.wantCode("InvalidCidrBlock.Malformed", "admin", "CreateVSwitch", "VpcId", "vpc-1", "ZoneId", "zone-a", "CidrBlock", bad)
	}
	w.wantCode("InvalidCidrBlock.Overlapped", "admin", "CreateVSwitch", "VpcId", "vpc-1", "ZoneId", "zone-a", "CidrBlock", "10.0.5.128/25")
	w.ok("admin", "CreateVSwitch", "VSwitchId", "vsw-2", "VpcId", "vpc-2", "ZoneId", "zone-a", "CidrBlock", "10.0.5.0/24")
	w.wantCode("MissingParameter", "admin", "CreateVSwitch", "VpcId", "vpc-1", "CidrBlock", "10.0.6.0/24")
	if got := rowsOf(w.ok("admin", "DescribeVSwitches", "VpcId", "vpc-1"), "VSwitches", "VSwitch"); len(got) != 1 ||
		got[0]["CidrBlock"] != "10.0.5.0/24" || got[0]["VSwitchName"] != "front" || got[0]["ZoneId"] != "zone-a" {
		t.Errorf("DescribeVSwitches VpcId vpc-1: %v", got)
	}

	// HaVips in a vSwitch.
	first := w.ok("admin", "CreateHaVip", "VSwitchId", "vsw-1", "Name", "ha", "Description", "the front's VIP")
	if first["IpAddress"] != "10.0.5.1" {
		t.Errorf("first free address: %v", first)
	}
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-b", "VSwitchId", "vsw-1", "IpAddress", "10.0.5.200")
	w.wantCode("InvalidIpAddress.AlreadyUsed", "admin", "CreateHaVip", "VSwitchId", "vsw-1", "IpAddress", "10.0.5.200")
	for _, bad := range []string{"10.0.6.1", "10.0.5.0", "10.0.5.253", "10.0.5.255"} {
		w.wantCode("InvalidIpAddress.NotInVSwitch", "admin", "CreateHaVip", "VSwitchId", "vsw-1", "IpAddress", bad)
	}
	w.wantCode("InvalidVSwitchId.NotFound", "admin", "CreateHaVip", "VSwitchId", "vsw-none")
	h := rowsOf(w.ok("admin", "DescribeHaVips", "Filter.1.Key", "VSwitchId", "Filter.1.Value.1", "vsw-1"), "HaVips", "HaVip")
	if len(h) != 2 {
		t.Fatalf("HaVips of vsw-1: %v", h)
	}
	id := first["HaVipId"].(string)
	w.ok("admin", "ModifyHaVipAttribute", "HaVipId", id, "Name", "ha2")
	w.wantCode("InvalidParameter", "admin", "ModifyHaVipAttribute", "HaVipId", id, "Description", "https://x")
	for _, row := range rowsOf(w.ok("admin", "DescribeHaVips", "Filter.1.Key", "HaVipId", "Filter.1.Value.1", id), "HaVips", "HaVip") {
		if row["Name"] != "ha2" || row["Description"] != "the front's VIP" || row["VpcId"] != "vpc-1" || row["VSwitchId"] != "vsw-1" || row["CreateTime"] == "" {
			t.Errorf("HaVip after ModifyHaVipAttribute: %v", row)
		}
	}

	// A NAT gateway in the vSwitch, and a SNAT entry for it.
	w.wantCode("InvalidParameter.Mismatch", "admin", "CreateNatGateway", "VpcId", "vpc-1", "VSwitchId", "vsw-2")
	g := w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1", "VSwitchId", "vsw-1")
	if row := rowsOf(w.ok("admin", "DescribeNatGateways", "NatGatewayId", "ngw-1"), "NatGateways", "NatGateway")[0]; row["NatGatewayPrivateInfo"].(map[string]any)["VswitchId"] != "vsw-1" {
		t.Errorf("NAT gateway's vSwitch: %v", row)
	}
	stb := g["SnatTableIds"].(map[string]any)["SnatTableId"].([]any)[0].(string)
	eip, ip := w.allocate(acct)
	w.ok(acct, "AssociateEipAddress", "AllocationId", eip, "InstanceId", "ngw-1", "InstanceType", TypeNat)
	w.settle()
	w.wantCode("InvalidParameter.Mismatch", acct, "CreateSnatEntry", "SnatTableId", stb, "SnatIp", ip, "SourceVSwitchId", "vsw-2")
	w.wantCode("InvalidParameter", acct, "CreateSnatEntry", "SnatTableId", stb, "SnatIp", ip, "SourceVSwitchId", "vsw-1", "SourceCIDR", "10.0.5.0/24")
	snat := w.ok(acct, "CreateSnatEntry", "SnatTableId", stb, "SnatIp", ip, "SourceVSwitchId", "vsw-1")["SnatEntryId"].(string)
	row := rowsOf(w.ok(acct, "DescribeSnatTableEntries", "SnatTableId", stb, "SnatEntryId", snat), "SnatTableEntries", "SnatTableEntry")[0]
	if row["SourceCIDR"] != "10.0.5.0/24" || row["SourceVSwitchId"] != "vsw-1" {
		t.Errorf("SNAT entry for the vSwitch: %v", row)
	}
	w.wantCode("Forbidden.SourceVSwitchId.Duplicated", acct, "CreateSnatEntry", "SnatTableId", stb, "SnatIp", ip, "SourceCIDR", "10.0.5.16/28")

	// In use: not deleted.
	w.wantCode("DependencyViolation", "admin", "DeleteVSwitch", "VSwitchId", "vsw-1")
	w.ok(acct, "DeleteSnatEntry", "SnatTableId", stb, "SnatEntryId", snat)
	w.wantCode("DependencyViolation", "admin", "DeleteVSwitch", "VSwitchId", "vsw-1") // the gateway and HaVips
	w.ok("admin", "DeleteVSwitch", "VSwitchId", "vsw-2")
	w.wantCode("InvalidVSwitchId.NotFound", "admin", "DeleteVSwitch", "VSwitchId", "vsw-2")
}
