package model

import "testing"

// TestHaVipLifecycle: DescribeHaVips with the SDK's Filter (key and values), the
// associated instances and EIPs; UnassociateHaVip; DeleteHaVip only for an Available
// HaVip with no EIP (IncorrectHaVipStatus otherwise).
func TestHaVipLifecycle(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-1", "VpcId", "vpc-1", "IpAddress", "10.0.1.200")
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-2", "VpcId", "vpc-1", "IpAddress", "10.0.1.201")
	w.ok("admin", "AssociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")
	id, ip := w.allocate("admin")
	w.ok("admin", "AssociateEipAddress", "AllocationId", id, "InstanceId", "havip-1", "InstanceType", "HaVip")
	w.settle()

	havips := func(kv ...string) []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, h := range w.ok("admin", "DescribeHaVips", kv...)["HaVips"].(map[string]any)["HaVip"].([]any) {
			out = append(out, h.(map[string]any))
		}
		return out
	}
	if all := havips(); len(all) != 2 {
		t.Fatalf("DescribeHaVips: %v", all)
	}
	got := havips("Filter.1.Key", "Status", "Filter.1.Value.1", "InUse")
	if len(got) != 1 || got[0]["HaVipId"] != "havip-1" || got[0]["MasterInstanceId"] != "i-1" {
		t.Fatalf("InUse HaVips: %v", got)
	}
	if eips := got[0]["AssociatedEipAddresses"].(map[string]any)["associatedEipAddresse"].([]any); len(eips) != 1 || eips[0] != ip {
		t.Errorf("its EIPs: %v", eips)
	}
	if two := havips("Filter.1.Key", "HaVipId", "Filter.1.Value.1", "havip-1", "Filter.1.Value.2", "havip-2"); len(two) != 2 {
		t.Errorf("two values of one filter: %v", two)
	}
	w.wantCode("InvalidParameter", "admin", "DescribeHaVips", "Filter.1.Key", "Colour", "Filter.1.Value.1", "red")
	w.wantCode("MissingParameter", "admin", "DescribeHaVips", "Filter.1.Key", "Status")

	w.wantCode("IncorrectHaVipStatus", "admin", "DeleteHaVip", "HaVipId", "havip-1")
	w.ok("admin", "UnassociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")
	w.wantCode("InvalidParameter", "admin", "UnassociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")
	if h := havips("Filter.1.Key", "HaVipId", "Filter.1.Value.1", "havip-1"); h[0]["Status"] != "Available" {
		t.Errorf("after the last instance left: %v", h[0])
	}
	// Still an EIP on it.
	w.wantCode("IncorrectHaVipStatus", "admin", "DeleteHaVip", "HaVipId", "havip-1")
	w.ok("admin", "UnassociateEipAddress", "AllocationId", id, "InstanceId", "havip-1", "InstanceType", "HaVip")
	w.settle()
	w.ok("admin", "DeleteHaVip", "HaVipId", "havip-1")
	w.wantCode("InvalidHaVipId.NotFound", "admin", "DeleteHaVip", "HaVipId", "havip-1")
	if all := havips(); len(all) != 1 {
		t.Errorf("after a delete: %v", all)
	}
}

// TestModifyNatGatewayAttribute: a NAT gateway's Name and Description are kept from
// its creation, described, and changed; the name rules apply.
func TestModifyNatGatewayAttribute(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1", "Name", "edge", "Description", "first")
	describe := func() map[string]any {
		t.Helper()
		return w.ok("admin", "DescribeNatGateways", "NatGatewayId", "ngw-1")["NatGateways"].(map[string]any)["NatGateway"].([]any)[0].(map[string]any)
	}
	if g := describe(); g["Name"] != "edge" || g["Description"] != "first" {
		t.Errorf("as created: %v", g)
	}
	w.ok("admin", "ModifyNatGatewayAttribute", "NatGatewayId", "ngw-1", "Description", "second")
	if g := describe(); g["Name"] != "edge" || g["Description"] != "second" {
		t.Errorf("after a Description change: %v", g)
	}
	w.wantCode("InvalidParameter", "admin", "ModifyNatGatewayAttribute", "NatGatewayId", "ngw-1", "Name", "9lives")
	w.wantCode("InvalidNatGatewayId.NotFound", "admin", "ModifyNatGatewayAttribute", "NatGatewayId", "ngw-2", "Name", "x2")
}
