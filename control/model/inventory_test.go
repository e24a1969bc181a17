package model

import "testing"

func rowsOf(resp map[string]any, outer, inner string) []map[string]any {
	var out []map[string]any
	for _, r := range resp[outer].(map[string]any)[inner].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

// TestInventoryListAndRemove: instances, ENIs and load balancers are listed with their
// filters, and removed only once no EIP, HaVip or forward entry uses them.
func TestInventoryListAndRemove(t *testing.T) {
	w := newWorld(t)
	primary := w.instance("i-1", "10.0.1.11")
	w.instance("i-2", "10.0.1.12", "Status", "Stopped")
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-2", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.1.21")
	w.ok("admin", "AttachNetworkInterface", "NetworkInterfaceId", "eni-2", "InstanceId", "i-1")
	w.ok("admin", "RegisterLoadBalancer", "LoadBalancerId", "lb-1", "VpcId", "vpc-1", "Address", "10.0.1.100")

	all := rowsOf(w.ok("admin", "DescribeInstances"), "Instances", "Instance")
	if len(all) != 2 {
		t.Fatalf("DescribeInstances: %v", all)
	}
	one := rowsOf(w.ok("admin", "DescribeInstances", "InstanceIds", `["i-1"]`), "Instances", "Instance")
	if len(one) != 1 || len(one[0]["NetworkInterfaces"].(map[string]any)["NetworkInterface"].([]any)) != 2 {
		t.Errorf("i-1 with its two ENIs: %v", one)
	}
	if got := rowsOf(w.ok("admin", "DescribeInstances", "Status", "Stopped"), "Instances", "Instance"); len(got) != 1 || got[0]["InstanceId"] != "i-2" {
		t.Errorf("Status Stopped: %v", got)
	}
	w.wantCode("InvalidParameter", "admin", "DescribeInstances", "InstanceIds", "i-1")
	if got := rowsOf(w.ok("admin", "DescribeNetworkInterfaces", "InstanceId", "i-1", "Type", "Secondary"), "NetworkInterfaceSets", "NetworkInterfaceSet"); len(got) != 1 || got[0]["NetworkInterfaceId"] != "eni-2" || got[0]["Status"] != "InUse" {
		t.Errorf("i-1's secondary ENI: %v", got)
	}
	if got := rowsOf(w.ok("admin", "DescribeLoadBalancers", "LoadBalancerId", "lb-1"), "LoadBalancers", "LoadBalancer"); len(got) != 1 || got[0]["Address"] != "10.0.1.100" {
		t.Errorf("DescribeLoadBalancers: %v", got)
	}

	// In use: an EIP on the instance, on the load balancer; a forward entry to the ENI.
	id, _ := w.allocate(acct)
	w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.settle()
	w.wantCode("DependencyViolation.Eip", "admin", "DeleteInstance", "InstanceId", "i-1")
	w.ok(acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.settle()
	lbEIP, _ := w.allocate(acct)
	w.ok(acct, "AssociateEipAddress", "AllocationId", lbEIP, "InstanceId", "lb-1", "InstanceType", TypeSLB)
	w.settle()
	w.wantCode("DependencyViolation.Eip", "admin", "DeleteLoadBalancer", "LoadBalancerId", "lb-1")

	g := w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	ftb := g["ForwardTableIds"].(map[string]any)["ForwardTableId"].([]any)[0].(string)
	natEIP, natIP := w.allocate(acct)
	w.ok(acct, "AssociateEipAddress", "AllocationId", natEIP, "InstanceId", "ngw-1", "InstanceType", TypeNat)
	w.settle()
	fwd := w.ok(acct, "CreateForwardEntry", "ForwardTableId", ftb, "ExternalIp", natIP, "ExternalPort", "80",
		"InternalIp", "10.0.1.21", "InternalPort", "80", "IpProtocol", "tcp")["ForwardEntryId"].(string)
	w.ok("admin", "DetachNetworkInterface", "NetworkInterfaceId", "eni-2", "InstanceId", "i-1")
	w.wantCode("DependencyViolation.ForwardEntry", "admin", "DeleteNetworkInterface", "NetworkInterfaceId", "eni-2")
	w.ok(acct, "DeleteForwardEntry", "ForwardTableId", ftb, "ForwardEntryId", fwd)
	w.settle()
	w.wantCode("InvalidOperation.EniType", "admin", "DeleteNetworkInterface", "NetworkInterfaceId", primary)
	w.ok("admin", "DeleteNetworkInterface", "NetworkInterfaceId", "eni-2")

	// A HaVip on the instance.
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-1", "VpcId", "vpc-1", "IpAddress", "10.0.1.200")
	w.ok("admin", "AssociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")
	w.wantCode("DependencyViolation.HaVip", "admin", "DeleteInstance", "InstanceId", "i-1")
	w.ok("admin", "UnassociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")

	w.ok("admin", "DeleteInstance", "InstanceId", "i-1")
	w.wantCode("InvalidInstanId.NotFound", "admin", "DeleteInstance", "InstanceId", "i-1")
	if got := rowsOf(w.ok("admin", "DescribeNetworkInterfaces", "NetworkInterfaceId.1", primary), "NetworkInterfaceSets", "NetworkInterfaceSet"); len(got) != 0 {
		t.Errorf("the primary ENI outlived its instance: %v", got)
	}
	w.ok(acct, "UnassociateEipAddress", "AllocationId", lbEIP, "InstanceId", "lb-1", "InstanceType", TypeSLB)
	w.settle()
	w.ok("admin", "DeleteLoadBalancer", "LoadBalancerId", "lb-1")
	w.wantCode("InvalidLoadBalancerId.NotFound", "admin", "DeleteLoadBalancer", "LoadBalancerId", "lb-1")
	if got := rowsOf(w.ok("admin", "DescribeInstances"), "Instances", "Instance"); len(got) != 1 {
		t.Errorf("after DeleteInstance: %v", got)
	}
}

// TestCreateNatGatewayKinds: what the provider sends for alicloud_nat_gateway is taken
// where eipgw's gateway is that kind (Enhanced, internet, PostPaid; PayByLcu or
// PayBySpec kept and described), refused where it is not, and a vSwitch, which eipgw
// does not have, is not found.
func TestCreateNatGatewayKinds(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1", "NatType", "Enhanced",
		"NetworkType", "internet", "InstanceChargeType", "PostPaid", "InternetChargeType", "PayBySpec")
	g := rowsOf(w.ok("admin", "DescribeNatGateways", "NatGatewayId", "ngw-1"), "NatGateways", "NatGateway")[0]
	if g["NatType"] != "Enhanced" || g["InternetChargeType"] != "PayBySpec" || g["InstanceChargeType"] != "PostPaid" ||
		g["NetworkType"] != "internet" || g["NatGatewayPrivateInfo"].(map[string]any)["VswitchId"] != "" {
		t.Errorf("described: %v", g)
	}
	w.wantCode("InvalidParameter", "admin", "CreateNatGateway", "VpcId", "vpc-1", "NatType", "Normal")
	w.wantCode("InvalidParameter", "admin", "CreateNatGateway", "VpcId", "vpc-1", "NetworkType", "intranet")
	w.wantCode("InvalidParameter", "admin", "CreateNatGateway", "VpcId", "vpc-1", "InstanceChargeType", "PrePaid")
	w.wantCode("InvalidVSwitchId.NotFound", "admin", "CreateNatGateway", "VpcId", "vpc-1", "VSwitchId", "vsw-1")
}

// TestNatGatewayDeletionProtection: DeletionProtection Type NATGW, as the provider's
// deletion_protection sends it, refuses DeleteNatGateway until turned off.
func TestNatGatewayDeletionProtection(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	w.ok("admin", "DeletionProtection", "InstanceId", "ngw-1", "ProtectionEnable", "true", "Type", "NATGW")
	if g := rowsOf(w.ok("admin", "DescribeNatGateways", "NatGatewayId", "ngw-1"), "NatGateways", "NatGateway")[0]; g["DeletionProtection"] != true {
		t.Errorf("described: %v", g)
	}
	w.wantCode("InvalidOperation.DeletionProtection", "admin", "DeleteNatGateway", "NatGatewayId", "ngw-1")
	w.wantCode("InvalidNatGatewayId.NotFound", "admin", "DeletionProtection", "InstanceId", "ngw-2", "ProtectionEnable", "true", "Type", "NATGW")
	w.ok("admin", "DeletionProtection", "InstanceId", "ngw-1", "ProtectionEnable", "false", "Type", "NATGW")
	w.ok("admin", "DeleteNatGateway", "NatGatewayId", "ngw-1")
}

// TestModifyNatGatewaySpec: a specification change is checked and refused with its
// own code, the gateway untouched.
func TestModifyNatGatewaySpec(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	w.wantCode("OperationUnsupported.NatGatewaySpec", "admin", "ModifyNatGatewaySpec", "NatGatewayId", "ngw-1", "Spec", "Middle")
	w.wantCode("InvalidParameter", "admin", "ModifyNatGatewaySpec", "NatGatewayId", "ngw-1", "Spec", "Huge")
	w.wantCode("MissingParameter", "admin", "ModifyNatGatewaySpec", "NatGatewayId", "ngw-1")
	w.wantCode("InvalidNatGatewayId.NotFound", "admin", "ModifyNatGatewaySpec", "NatGatewayId", "ngw-2", "Spec", "Small")
	if g := rowsOf(w.ok("admin", "DescribeNatGateways", "NatGatewayId", "ngw-1"), "NatGateways", "NatGateway")[0]; g["Spec"] != "" {
		t.Errorf("after a refused spec change: %v", g["Spec"])
	}
}
