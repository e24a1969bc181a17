package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/requests"
	"github.com/aliyun/alibaba-cloud-sdk-go/services/vpc"
	"github.com/eipgw/eipgw/internal/testbed"
)

// providerReplay sends what the alicloud Terraform provider sends: a generic RPC POST
// (its client.RpcPost) to product Vpc, version 2016-04-28, the request's parameters
// in the form body, through the legacy Go SDK's common request.
type providerReplay struct {
	t      *testing.T
	client *vpc.Client
	tokens int
}

// call sends action with params (RegionId added, and a fresh ClientToken for a write
// when write is set, as the provider's buildClientToken does) and returns the JSON
// reply, or the error code.
func (p *providerReplay) call(action string, write bool, params map[string]string) (map[string]any, string) {
	p.t.Helper()
	req := requests.NewCommonRequest()
	req.Method, req.Scheme, req.Domain = "POST", "https", apiListen
	req.Product, req.Version, req.ApiName = "Vpc", "2016-04-28", action
	req.FormParams = map[string]string{"RegionId": "eipgw-1"}
	for k, v := range params {
		req.FormParams[k] = v
	}
	if write {
		p.tokens++
		req.FormParams["ClientToken"] = fmt.Sprintf("tf-%s-%d", action, p.tokens)
	}
	resp, err := p.client.ProcessCommonRequest(req)
	if err != nil {
		var se *sdkerrors.ServerError
		if errors.As(err, &se) {
			return nil, se.ErrorCode()
		}
		p.t.Fatalf("%s: %v", action, err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.GetHttpContentBytes(), &m); err != nil {
		p.t.Fatalf("%s: reply %q: %v", action, resp.GetHttpContentString(), err)
	}
	return m, ""
}

func (p *providerReplay) ok(action string, write bool, params map[string]string) map[string]any {
	p.t.Helper()
	m, code := p.call(action, write, params)
	if code != "" {
		p.t.Fatalf("%s %v: %s", action, params, code)
	}
	return m
}

// path reads a reply the way the provider's jsonpath does: "$.A.B[0].C".
func path(m any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			mm, _ := m.(map[string]any)
			m = mm[k]
		case int:
			s, _ := m.([]any)
			if k >= len(s) {
				return nil
			}
			m = s[k]
		}
	}
	return m
}

// tagsToMap is the provider's: Key/Value or TagKey/TagValue rows to key=value, sorted.
func tagsToMap(rows any) string {
	var out []string
	list, _ := rows.([]any)
	for _, r := range list {
		m := r.(map[string]any)
		k, v := m["Key"], m["Value"]
		if k == nil {
			k, v = m["TagKey"], m["TagValue"]
		}
		out = append(out, fmt.Sprint(k, "=", v))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// expect compares what a plan-after-apply read sets in the state with what was set.
func expect(t *testing.T, what string, got map[string]any, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g := fmt.Sprint(got[k]); g != v {
			t.Errorf("%s: %s read back as %q, set to %q (the plan would show a diff)", what, k, g, v)
		}
	}
}

// TestTerraformProviderReplay replays, call for call, what the alicloud Terraform
// provider sends through the whole life of alicloud_eip_address,
// alicloud_eip_association, alicloud_common_bandwidth_package_attachment,
// alicloud_nat_gateway, alicloud_snat_entry,
// alicloud_forward_entry, alicloud_havip, alicloud_havip_attachment and the
// alicloud_eip_addresses data source (derived from aliyun/terraform-provider-alicloud's source), and checks
// that every read returns what was set, so a plan after apply is empty.
func TestTerraformProviderReplay(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	p := &providerReplay{t: t, client: officialClient(t, d)}

	// alicloud_eip_address: create (AllocateEipAddress, then the update pass the
	// create ends with: tags, deletion protection), read (DescribeEipAddresses by
	// AllocationId, the first row).
	created := p.ok("AllocateEipAddress", true, map[string]string{"Bandwidth": "5", "ResourceGroupId": "rg-tf1",
		"Description": "tf eip", "Name": "tf-eip", "Netmode": "public", "ISP": "BGP", "InstanceChargeType": "PostPaid",
		"InternetChargeType": "PayByTraffic"})
	id, _ := created["AllocationId"].(string)
	ip, _ := created["EipAddress"].(string)
	if id == "" || ip == "" {
		t.Fatalf("AllocateEipAddress: %v", created)
	}
	p.ok("TagResources", false, map[string]string{"ResourceId.1": id, "ResourceType": "EIP",
		"Tag.1.Key": "env", "Tag.1.Value": "test", "Tag.2.Key": "owner", "Tag.2.Value": "tf"})
	p.ok("DeletionProtection", true, map[string]string{"InstanceId": id, "ProtectionEnable": "true", "Type": "EIP"})
	readEIP := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeEipAddresses", false, map[string]string{"AllocationId": id}), "EipAddresses", "EipAddress", 0).(map[string]any)
		if row == nil {
			t.Fatalf("DescribeEipAddresses %s: no row", id)
		}
		row["tags"] = tagsToMap(path(row, "Tags", "Tag"))
		return row
	}
	expect(t, "alicloud_eip_address", readEIP(), map[string]string{"Name": "tf-eip", "Description": "tf eip",
		"Bandwidth": "5", "ResourceGroupId": "rg-tf1", "ISP": "BGP", "Netmode": "public", "ChargeType": "PostPaid",
		"InternetChargeType": "PayByTraffic", "Status": "Available", "IpAddress": ip, "DeletionProtection": "true",
		"tags": "env=test,owner=tf", "HDMonitorStatus": "OFF"})
	// Destroying a protected EIP fails as in the cloud.
	if _, code := p.call("ReleaseEipAddress", false, map[string]string{"AllocationId": id}); code != "InvalidOperation.DeletionProtection" {
		t.Errorf("ReleaseEipAddress of a protected EIP: %q", code)
	}
	// Update of each updatable argument.
	p.ok("ModifyEipAddressAttribute", false, map[string]string{"AllocationId": id, "Bandwidth": "10", "Description": "tf eip 2", "Name": "tf-eip-2"})
	p.ok("MoveResourceGroup", false, map[string]string{"ResourceId": id, "NewResourceGroupId": "rg-tf2", "ResourceType": "EIP"})
	p.ok("UnTagResources", false, map[string]string{"ResourceId.1": id, "ResourceType": "EIP", "TagKey.1": "owner"})
	p.ok("TagResources", false, map[string]string{"ResourceId.1": id, "ResourceType": "EIP", "Tag.1.Key": "env", "Tag.1.Value": "prod"})
	p.ok("DeletionProtection", true, map[string]string{"InstanceId": id, "ProtectionEnable": "false", "Type": "EIP"})
	expect(t, "alicloud_eip_address after update", readEIP(), map[string]string{"Name": "tf-eip-2", "Description": "tf eip 2",
		"Bandwidth": "10", "ResourceGroupId": "rg-tf2", "DeletionProtection": "false", "tags": "env=prod"})

	// The alicloud_eip_addresses data source: its filters, 50 a page.
	ds := p.ok("DescribeEipAddresses", false, map[string]string{"EipName": "tf-eip-2", "ResourceGroupId": "rg-tf2",
		"Status": "Available", "ISP": "BGP", "ChargeType": "PostPaid", "EipAddress": ip, "Tag.1.Key": "env", "Tag.1.Value": "prod",
		"PageSize": "50", "PageNumber": "1"})
	if n := len(path(ds, "EipAddresses", "EipAddress").([]any)); n != 1 || fmt.Sprint(ds["TotalCount"]) != "1" {
		t.Errorf("alicloud_eip_addresses by name, group and status: %d rows (%v)", n, ds["TotalCount"])
	}
	if ds := p.ok("DescribeEipAddresses", false, map[string]string{"EipName": "other", "PageSize": "50", "PageNumber": "1"}); len(path(ds, "EipAddresses", "EipAddress").([]any)) != 0 {
		t.Errorf("alicloud_eip_addresses by another name: %v", ds)
	}

	// alicloud_eip_association: create, wait for InUse, read, destroy.
	p.ok("AssociateEipAddress", true, map[string]string{"AllocationId": id, "InstanceId": "i-vm1", "InstanceType": "EcsInstance"})
	expect(t, "alicloud_eip_association", readEIP(), map[string]string{"Status": "InUse", "InstanceId": "i-vm1",
		"InstanceType": "EcsInstance", "Mode": "NAT"})
	p.ok("UnassociateEipAddress", true, map[string]string{"AllocationId": id, "InstanceId": "i-vm1", "InstanceType": "EcsInstance"})
	expect(t, "alicloud_eip_association destroyed", readEIP(), map[string]string{"Status": "Available", "InstanceId": ""})

	// alicloud_common_bandwidth_package_attachment with bandwidth_package_bandwidth, in
	// a package made to hold it: create (AddCommonBandwidthPackageIp, the wait for the
	// package's Status, then the update the create ends with,
	// ModifyCommonBandwidthPackageIpBandwidth), read (the package with the EIP among
	// its members, then DescribeEipAddresses' Bandwidth of the EIP in that package),
	// update, cancel_common_bandwidth_package_ip_bandwidth, destroy.
	pkg, _ := p.ok("CreateCommonBandwidthPackage", true, map[string]string{"Bandwidth": "20"})["BandwidthPackageId"].(string)
	readAttachment := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeCommonBandwidthPackages", false, map[string]string{"BandwidthPackageId": pkg}),
			"CommonBandwidthPackages", "CommonBandwidthPackage", 0).(map[string]any)
		eip, _ := path(p.ok("DescribeEipAddresses", false, map[string]string{"AllocationId": id}), "EipAddresses", "EipAddress", 0).(map[string]any)
		if row == nil || eip == nil || eip["BandwidthPackageId"] != pkg {
			t.Fatalf("the attachment of %s to %s: package %v, EIP %v", id, pkg, row, eip)
		}
		return map[string]any{"Status": row["Status"], "instance_id": path(row, "PublicIpAddresses", "PublicIpAddresse", 0, "AllocationId"),
			"bandwidth_package_bandwidth": eip["Bandwidth"]}
	}
	p.ok("AddCommonBandwidthPackageIp", true, map[string]string{"BandwidthPackageId": pkg, "IpInstanceId": id, "IpType": "EIP"})
	expect(t, "alicloud_common_bandwidth_package_attachment", readAttachment(), map[string]string{"Status": "Available", "instance_id": id})
	for _, mbit := range []string{"5", "8"} {
		p.ok("ModifyCommonBandwidthPackageIpBandwidth", false, map[string]string{"BandwidthPackageId": pkg, "EipId": id, "Bandwidth": mbit})
		expect(t, "alicloud_common_bandwidth_package_attachment's bandwidth_package_bandwidth", readAttachment(),
			map[string]string{"Status": "Available", "bandwidth_package_bandwidth": mbit})
	}
	p.ok("CancelCommonBandwidthPackageIpBandwidth", false, map[string]string{"BandwidthPackageId": pkg, "EipId": id})
	expect(t, "alicloud_common_bandwidth_package_attachment cancelled", readAttachment(), map[string]string{"bandwidth_package_bandwidth": "20"})
	p.ok("RemoveCommonBandwidthPackageIp", true, map[string]string{"BandwidthPackageId": pkg, "IpInstanceId": id})
	if n := path(p.ok("DescribeCommonBandwidthPackages", false, map[string]string{"BandwidthPackageId": pkg}),
		"CommonBandwidthPackages", "CommonBandwidthPackage", 0, "PublicIpAddresses", "PublicIpAddresse"); n != nil && len(n.([]any)) != 0 {
		t.Errorf("alicloud_common_bandwidth_package_attachment after destroy: members %v", n)
	}
	p.ok("DeleteCommonBandwidthPackage", false, map[string]string{"BandwidthPackageId": pkg})

	// alicloud_nat_gateway: create, read (DescribeNatGateways, ListTagResources),
	// update (ModifyNatGatewayAttribute, tags), then its EIP and entries.
	ngw := p.ok("CreateNatGateway", true, map[string]string{"VpcId": "vpc-1", "Name": "tf-nat", "Description": "tf nat",
		"NatType": "Enhanced", "InternetChargeType": "PayByLcu", "InstanceChargeType": "PostPaid", "Tag.1.Key": "env", "Tag.1.Value": "test"})
	ngwID, _ := ngw["NatGatewayId"].(string)
	stb, _ := path(ngw, "SnatTableIds", "SnatTableId", 0).(string)
	ftb, _ := path(ngw, "ForwardTableIds", "ForwardTableId", 0).(string)
	readNAT := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeNatGateways", false, map[string]string{"NatGatewayId": ngwID}), "NatGateways", "NatGateway", 0).(map[string]any)
		if row == nil {
			t.Fatalf("DescribeNatGateways %s: no row", ngwID)
		}
		row["tags"] = tagsToMap(path(p.ok("ListTagResources", false, map[string]string{"ResourceType": "NATGATEWAY", "ResourceId.1": ngwID}), "TagResources", "TagResource"))
		row["snat_table_ids"] = path(row, "SnatTableIds", "SnatTableId", 0)
		row["forward_table_ids"] = path(row, "ForwardTableIds", "ForwardTableId", 0)
		return row
	}
	nat := readNAT()
	expect(t, "alicloud_nat_gateway", nat, map[string]string{"Name": "tf-nat", "Description": "tf nat", "VpcId": "vpc-1",
		"snat_table_ids": stb, "forward_table_ids": ftb, "tags": "env=test", "NatType": "Enhanced",
		"InternetChargeType": "PayByLcu", "InstanceChargeType": "PostPaid", "NetworkType": "internet"})
	// The provider's read asserts these types; a missing one would stop it.
	if _, ok := nat["NatGatewayPrivateInfo"].(map[string]any); !ok {
		t.Errorf("DescribeNatGateways without NatGatewayPrivateInfo: %v", nat)
	}
	p.ok("ModifyNatGatewayAttribute", false, map[string]string{"NatGatewayId": ngwID, "Name": "tf-nat-2", "Description": "tf nat 2"})
	p.ok("DeletionProtection", true, map[string]string{"InstanceId": ngwID, "ProtectionEnable": "true", "Type": "NATGW"})
	expect(t, "alicloud_nat_gateway deletion_protection", readNAT(), map[string]string{"DeletionProtection": "true"})
	p.ok("DeletionProtection", true, map[string]string{"InstanceId": ngwID, "ProtectionEnable": "false", "Type": "NATGW"})
	// specification: refused with its own code, as docs/api.md says.
	if _, code := p.call("ModifyNatGatewaySpec", true, map[string]string{"NatGatewayId": ngwID, "Spec": "Middle"}); code != "OperationUnsupported.NatGatewaySpec" {
		t.Errorf("ModifyNatGatewaySpec: %q", code)
	}
	p.ok("TagResources", false, map[string]string{"ResourceId.1": ngwID, "ResourceType": "NATGATEWAY", "Tag.1.Key": "env", "Tag.1.Value": "prod"})
	expect(t, "alicloud_nat_gateway after update", readNAT(), map[string]string{"Name": "tf-nat-2", "Description": "tf nat 2", "tags": "env=prod"})

	p.ok("AssociateEipAddress", true, map[string]string{"AllocationId": id, "InstanceId": ngwID, "InstanceType": "Nat"})
	// alicloud_snat_entry: create, read, update (SnatEntryName, SnatIp), destroy.
	snat := p.ok("CreateSnatEntry", true, map[string]string{"SnatTableId": stb, "SnatIp": ip, "SnatEntryName": "tf-snat",
		"SourceCIDR": "10.0.1.0/24"})
	snatID, _ := snat["SnatEntryId"].(string)
	readSNAT := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeSnatTableEntries", false, map[string]string{"SnatTableId": stb, "SnatEntryId": snatID}), "SnatTableEntries", "SnatTableEntry", 0).(map[string]any)
		if row == nil {
			t.Fatalf("DescribeSnatTableEntries %s: no row", snatID)
		}
		return row
	}
	expect(t, "alicloud_snat_entry", readSNAT(), map[string]string{"SnatEntryName": "tf-snat", "SnatIp": ip,
		"SourceCIDR": "10.0.1.0/24", "SnatTableId": stb, "SnatEntryId": snatID, "Status": "Available"})
	p.ok("ModifySnatEntry", true, map[string]string{"SnatTableId": stb, "SnatEntryId": snatID, "SnatEntryName": "tf-snat-2", "SnatIp": ip})
	expect(t, "alicloud_snat_entry after update", readSNAT(), map[string]string{"SnatEntryName": "tf-snat-2"})
	p.ok("DeleteSnatEntry", true, map[string]string{"SnatTableId": stb, "SnatEntryId": snatID})

	// alicloud_forward_entry: create, read, update (every argument is sent), destroy.
	fwd := p.ok("CreateForwardEntry", true, map[string]string{"ForwardTableId": ftb, "InternalIp": testbed.VM1Addr,
		"IpProtocol": "tcp", "ExternalIp": ip, "InternalPort": "80", "ExternalPort": "8080", "ForwardEntryName": "tf-fwd"})
	fwdID, _ := fwd["ForwardEntryId"].(string)
	readFwd := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeForwardTableEntries", false, map[string]string{"ForwardTableId": ftb, "ForwardEntryId": fwdID}), "ForwardTableEntries", "ForwardTableEntry", 0).(map[string]any)
		if row == nil {
			t.Fatalf("DescribeForwardTableEntries %s: no row", fwdID)
		}
		return row
	}
	expect(t, "alicloud_forward_entry", readFwd(), map[string]string{"ExternalIp": ip, "ExternalPort": "8080",
		"InternalIp": testbed.VM1Addr, "InternalPort": "80", "IpProtocol": "tcp", "ForwardEntryName": "tf-fwd", "Status": "Available"})
	p.ok("ModifyForwardEntry", true, map[string]string{"ForwardTableId": ftb, "ForwardEntryId": fwdID, "InternalIp": testbed.VM1Addr,
		"IpProtocol": "tcp", "ExternalIp": ip, "InternalPort": "81", "ExternalPort": "8081", "ForwardEntryName": "tf-fwd-2"})
	expect(t, "alicloud_forward_entry after update", readFwd(), map[string]string{"ExternalPort": "8081", "InternalPort": "81",
		"ForwardEntryName": "tf-fwd-2"})
	p.ok("DeleteForwardEntry", true, map[string]string{"ForwardTableId": ftb, "ForwardEntryId": fwdID})
	p.ok("UnassociateEipAddress", true, map[string]string{"AllocationId": id, "InstanceId": ngwID, "InstanceType": "Nat"})
	p.ok("DeleteNatGateway", false, map[string]string{"NatGatewayId": ngwID})
	if rows := path(p.ok("DescribeNatGateways", false, map[string]string{"NatGatewayId": ngwID}), "NatGateways", "NatGateway").([]any); len(rows) != 0 {
		t.Errorf("alicloud_nat_gateway after destroy: %v", rows)
	}

	// alicloud_havip in a vSwitch (made as alicloud_vswitch makes one): create,
	// read, update of its name, description, group and tags; then
	// alicloud_havip_attachment; destroy.
	p.ok("CreateVSwitch", true, map[string]string{"VpcId": "vpc-1", "CidrBlock": "10.0.9.0/24", "ZoneId": "eipgw-1-a", "VSwitchName": "tf-vsw"})
	vsw, _ := path(p.ok("DescribeVSwitches", false, map[string]string{"VSwitchName": "tf-vsw"}), "VSwitches", "VSwitch", 0, "VSwitchId").(string)
	hv := p.ok("CreateHaVip", true, map[string]string{"VSwitchId": vsw, "IpAddress": "10.0.9.10", "Description": "tf havip",
		"Name": "tf-havip", "ResourceGroupId": "rg-tf1"})
	hvID, _ := hv["HaVipId"].(string)
	p.ok("TagResources", false, map[string]string{"ResourceId.1": hvID, "ResourceType": "HAVIP", "Tag.1.Key": "env", "Tag.1.Value": "test"})
	readHaVip := func() map[string]any {
		t.Helper()
		row, _ := path(p.ok("DescribeHaVips", false, map[string]string{"Filter.1.Key": "HaVipId", "Filter.1.Value.1": hvID}), "HaVips", "HaVip", 0).(map[string]any)
		if row == nil {
			t.Fatalf("DescribeHaVips %s: no row", hvID)
		}
		row["tags"] = tagsToMap(path(row, "Tags", "Tag"))
		row["instance"] = path(row, "AssociatedInstances", "associatedInstance", 0)
		return row
	}
	expect(t, "alicloud_havip", readHaVip(), map[string]string{"Name": "tf-havip", "Description": "tf havip", "IpAddress": "10.0.9.10",
		"VSwitchId": vsw, "VpcId": "vpc-1", "ResourceGroupId": "rg-tf1", "Status": "Available", "tags": "env=test"})
	p.ok("ModifyHaVipAttribute", true, map[string]string{"HaVipId": hvID, "Description": "tf havip 2", "Name": "tf-havip-2"})
	p.ok("MoveResourceGroup", false, map[string]string{"ResourceId": hvID, "NewResourceGroupId": "rg-tf2", "ResourceType": "HAVIP"})
	p.ok("UnTagResources", false, map[string]string{"ResourceId.1": hvID, "ResourceType": "HAVIP", "TagKey.1": "env"})
	expect(t, "alicloud_havip after update", readHaVip(), map[string]string{"Name": "tf-havip-2", "Description": "tf havip 2",
		"ResourceGroupId": "rg-tf2", "tags": ""})
	p.ok("AssociateHaVip", true, map[string]string{"HaVipId": hvID, "InstanceId": "i-vm1", "InstanceType": "EcsInstance"})
	expect(t, "alicloud_havip_attachment", readHaVip(), map[string]string{"instance": "i-vm1", "Status": "InUse"})
	p.ok("UnassociateHaVip", true, map[string]string{"HaVipId": hvID, "InstanceId": "i-vm1", "InstanceType": "EcsInstance"})
	p.ok("DeleteHaVip", true, map[string]string{"HaVipId": hvID})
	p.ok("DeleteVSwitch", true, map[string]string{"VSwitchId": vsw})

	// alicloud_eip_address destroy: ReleaseEipAddress, then the read finds nothing.
	p.ok("ReleaseEipAddress", false, map[string]string{"AllocationId": id})
	if n := path(p.ok("DescribeEipAddresses", false, map[string]string{"AllocationId": id}), "TotalCount"); fmt.Sprint(n) != "0" {
		t.Errorf("alicloud_eip_address after destroy: TotalCount %v", n)
	}
}
