package model

import (
	"fmt"
	"sort"
	"testing"
)

// tagsOf reads ListTagResources for one resource as key=value strings, sorted.
func (w *world) tagsOf(account, resourceType, id string) []string {
	w.t.Helper()
	var out []string
	for _, r := range w.ok(account, "ListTagResources", "ResourceType", resourceType, "ResourceId.1", id)["TagResources"].(map[string]any)["TagResource"].([]any) {
		m := r.(map[string]any)
		if m["ResourceId"] != id {
			w.t.Fatalf("ListTagResources for %s gave a row of %v", id, m["ResourceId"])
		}
		out = append(out, fmt.Sprint(m["TagKey"], "=", m["TagValue"]))
	}
	sort.Strings(out)
	return out
}

// describedTags reads a Describe row's Tags.Tag as key=value strings, sorted.
func describedTags(row map[string]any, key, value string) []string {
	var out []string
	for _, t := range row["Tags"].(map[string]any)["Tag"].([]any) {
		m := t.(map[string]any)
		out = append(out, fmt.Sprint(m[key], "=", m[value]))
	}
	sort.Strings(out)
	return out
}

func eipRows(resp map[string]any) []map[string]any {
	var out []map[string]any
	for _, r := range resp["EipAddresses"].(map[string]any)["EipAddress"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

// TestTagResources: tags added, overwritten and removed on an EIP as the Terraform
// provider does it (TagResources, UnTagResources by key, ListTagResources, Tags.Tag in
// DescribeEipAddresses), Tag.N filters, and the cloud's limits and codes.
func TestTagResources(t *testing.T) {
	w := newWorld(t)
	a, _ := w.allocate("alice")
	b, _ := w.allocate("alice")
	other, _ := w.allocate("bob")

	w.ok("alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a, "ResourceId.2", b,
		"Tag.1.Key", "env", "Tag.1.Value", "prod", "Tag.2.Key", "team", "Tag.2.Value", "net")
	w.ok("alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", b, "Tag.1.Key", "env", "Tag.1.Value", "test")
	if got := w.tagsOf("alice", "EIP", a); fmt.Sprint(got) != "[env=prod team=net]" {
		t.Errorf("tags of %s: %v", a, got)
	}
	if got := w.tagsOf("alice", "EIP", b); fmt.Sprint(got) != "[env=test team=net]" {
		t.Errorf("tags of %s after an overwrite: %v", b, got)
	}
	rows := eipRows(w.ok("alice", "DescribeEipAddresses", "AllocationId", a))
	if len(rows) != 1 || fmt.Sprint(describedTags(rows[0], "Key", "Value")) != "[env=prod team=net]" {
		t.Errorf("DescribeEipAddresses Tags: %v", rows)
	}
	// Tag filters: key and value, or the key alone.
	if rows := eipRows(w.ok("alice", "DescribeEipAddresses", "Tag.1.Key", "env", "Tag.1.Value", "prod")); len(rows) != 1 || rows[0]["AllocationId"] != a {
		t.Errorf("Tag env=prod: %v", rows)
	}
	if rows := eipRows(w.ok("alice", "DescribeEipAddresses", "Tag.1.Key", "team")); len(rows) != 2 {
		t.Errorf("Tag key team: %v", rows)
	}
	if rows := eipRows(w.ok("alice", "DescribeEipAddresses", "Tag.1.Key", "env", "Tag.1.Value", "prod", "Tag.2.Key", "team", "Tag.2.Value", "other")); len(rows) != 0 {
		t.Errorf("two tags, one not matching: %v", rows)
	}
	// ListTagResources by tag alone: the caller's resources only.
	w.ok("bob", "TagResources", "ResourceType", "EIP", "ResourceId.1", other, "Tag.1.Key", "env", "Tag.1.Value", "prod")
	resp := w.ok("alice", "ListTagResources", "ResourceType", "EIP", "Tag.1.Key", "env", "Tag.1.Value", "prod")
	if rs := resp["TagResources"].(map[string]any)["TagResource"].([]any); len(rs) != 2 {
		t.Errorf("by tag env=prod (two tags of one EIP of alice's): %v", rs)
	}
	if _, ok := resp["NextToken"]; ok {
		t.Errorf("NextToken on the only page: %v (the provider pages until it is absent)", resp["NextToken"])
	}
	// Pages.
	first := w.ok("alice", "ListTagResources", "ResourceType", "EIP", "ResourceId.1", a, "ResourceId.2", b, "MaxResults", "3")
	token, _ := first["NextToken"].(string)
	second := w.ok("alice", "ListTagResources", "ResourceType", "EIP", "ResourceId.1", a, "ResourceId.2", b, "MaxResults", "3", "NextToken", token)
	if n1, n2 := len(first["TagResources"].(map[string]any)["TagResource"].([]any)), len(second["TagResources"].(map[string]any)["TagResource"].([]any)); token == "" || n1 != 3 || n2 != 1 {
		t.Errorf("pages of 3 over 4 rows: %d then %d, token %q", n1, n2, token)
	}

	w.ok("alice", "UnTagResources", "ResourceType", "EIP", "ResourceId.1", a, "TagKey.1", "team", "TagKey.2", "absent")
	if got := w.tagsOf("alice", "EIP", a); fmt.Sprint(got) != "[env=prod]" {
		t.Errorf("after UnTagResources team: %v", got)
	}
	w.ok("alice", "UnTagResources", "ResourceType", "EIP", "ResourceId.1", b, "All", "true")
	if got := w.tagsOf("alice", "EIP", b); len(got) != 0 {
		t.Errorf("after UnTagResources All: %v", got)
	}

	// Codes.
	w.wantCode("InvalidResourceId.NotFound", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", other, "Tag.1.Key", "k", "Tag.1.Value", "v")
	w.wantCode("InvalidResourceType.NotFound", "alice", "TagResources", "ResourceType", "VPNGATEWAY", "ResourceId.1", a, "Tag.1.Key", "k")
	w.wantCode("InvalidTagKey", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a, "Tag.1.Key", "aliyun-owned")
	w.wantCode("InvalidTagKey", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a, "Tag.1.Value", "no key")
	w.wantCode("InvalidTagValue", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a, "Tag.1.Key", "k", "Tag.1.Value", "see https://example.org")
	w.wantCode("Forbidden.TagKey.Duplicated", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a,
		"Tag.1.Key", "k", "Tag.1.Value", "1", "Tag.2.Key", "k", "Tag.2.Value", "2")
	w.wantCode("MissingParameter", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a)
	w.wantCode("MissingParameter", "alice", "TagResources", "ResourceType", "EIP", "Tag.1.Key", "k")
	w.wantCode("MissingParameter", "alice", "ListTagResources", "ResourceType", "EIP")
	w.wantCode("MissingParameter", "alice", "UnTagResources", "ResourceType", "EIP", "ResourceId.1", a)
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'k'
	}
	w.wantCode("InvalidTagKey", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", a, "Tag.1.Key", string(long))

	// 21 tags in one call; 20 on the resource and one more.
	var kv []string
	for i := 1; i <= 21; i++ {
		kv = append(kv, fmt.Sprintf("Tag.%d.Key", i), fmt.Sprintf("k%d", i), fmt.Sprintf("Tag.%d.Value", i), "v")
	}
	w.wantCode("SizeLimitExceeded.TagNum", "alice", "TagResources", append([]string{"ResourceType", "EIP", "ResourceId.1", b}, kv...)...)
	w.ok("alice", "TagResources", append([]string{"ResourceType", "EIP", "ResourceId.1", b}, kv[:80]...)...)
	w.wantCode("QuotaExceeded.TagNum", "alice", "TagResources", "ResourceType", "EIP", "ResourceId.1", b, "Tag.1.Key", "one-more")
	if got := w.tagsOf("alice", "EIP", b); len(got) != 20 {
		t.Errorf("a refused TagResources changed the tags: %d", len(got))
	}
	var ids []string
	for i := 1; i <= 21; i++ {
		ids = append(ids, fmt.Sprintf("ResourceId.%d", i), a)
	}
	w.wantCode("SizeLimitExceeded.ResourceId", "alice", "TagResources", append([]string{"ResourceType", "EIP", "Tag.1.Key", "k"}, ids...)...)
}

// TestTagsAndGroupsOnOtherResources: NAT gateways, HaVips and bandwidth packages carry
// tags and resource groups as EIPs do, in their Describe actions and filters, and
// MoveResourceGroup moves each kind (with the names the provider sends).
func TestTagsAndGroupsOnOtherResources(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1", "Tag.1.Key", "app", "Tag.1.Value", "web")
	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-2", "VpcId", "vpc-1")
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-1", "VpcId", "vpc-1", "IpAddress", "10.0.1.200", "ResourceGroupId", "rg-a",
		"Tag.1.Key", "app", "Tag.1.Value", "db")
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-2", "VpcId", "vpc-1", "IpAddress", "10.0.1.201")
	pkg := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "10")["BandwidthPackageId"].(string)

	if got := w.tagsOf("admin", "NATGATEWAY", "ngw-1"); fmt.Sprint(got) != "[app=web]" {
		t.Errorf("NAT gateway tags from CreateNatGateway: %v", got)
	}
	gws := w.ok("admin", "DescribeNatGateways", "Tag.1.Key", "app")["NatGateways"].(map[string]any)["NatGateway"].([]any)
	if len(gws) != 1 || fmt.Sprint(describedTags(gws[0].(map[string]any), "TagKey", "TagValue")) != "[app=web]" {
		t.Errorf("DescribeNatGateways by tag: %v", gws)
	}
	w.ok("admin", "MoveResourceGroup", "ResourceType", "NATGATEWAY", "ResourceId", "ngw-2", "NewResourceGroupId", "rg-b")
	gws = w.ok("admin", "DescribeNatGateways", "ResourceGroupId", "rg-b")["NatGateways"].(map[string]any)["NatGateway"].([]any)
	if len(gws) != 1 || gws[0].(map[string]any)["NatGatewayId"] != "ngw-2" {
		t.Errorf("DescribeNatGateways by resource group: %v", gws)
	}

	havips := w.ok("admin", "DescribeHaVips", "Tags.1.Key", "app", "Tags.1.Value", "db")["HaVips"].(map[string]any)["HaVip"].([]any)
	if len(havips) != 1 {
		t.Fatalf("DescribeHaVips by Tags: %v", havips)
	}
	if h := havips[0].(map[string]any); h["ResourceGroupId"] != "rg-a" || fmt.Sprint(describedTags(h, "Key", "Value")) != "[app=db]" {
		t.Errorf("HaVip from CreateHaVip with a group and a tag: %v", h)
	}
	w.ok("admin", "MoveResourceGroup", "ResourceType", "HAVIP", "ResourceId", "havip-1", "NewResourceGroupId", "rg-c")
	w.ok("admin", "UnTagResources", "ResourceType", "HAVIP", "ResourceId.1", "havip-1", "TagKey.1", "app")
	havips = w.ok("admin", "DescribeHaVips", "ResourceGroupId", "rg-c")["HaVips"].(map[string]any)["HaVip"].([]any)
	if len(havips) != 1 || len(describedTags(havips[0].(map[string]any), "Key", "Value")) != 0 {
		t.Errorf("HaVip after the move and the untag: %v", havips)
	}

	w.ok("admin", "TagResources", "ResourceType", "COMMONBANDWIDTHPACKAGE", "ResourceId.1", pkg, "Tag.1.Key", "cost", "Tag.1.Value", "7")
	w.ok("admin", "MoveResourceGroup", "ResourceType", "bandwidthpackage", "ResourceId", pkg, "NewResourceGroupId", "rg-d")
	pkgs := w.ok("admin", "DescribeCommonBandwidthPackages", "Tag.1.Key", "cost", "Tag.1.Value", "7")["CommonBandwidthPackages"].(map[string]any)["CommonBandwidthPackage"].([]any)
	if len(pkgs) != 1 || pkgs[0].(map[string]any)["ResourceGroupId"] != "rg-d" ||
		fmt.Sprint(describedTags(pkgs[0].(map[string]any), "Key", "Value")) != "[cost=7]" {
		t.Errorf("bandwidth package after a tag and a move: %v", pkgs)
	}

	// An EIP: created in a group, moved, and the group as a filter.
	id, _ := w.allocate("admin", "ResourceGroupId", "rg-a")
	w.ok("admin", "MoveResourceGroup", "ResourceType", "EIP", "ResourceId", id, "NewResourceGroupId", "rg-e")
	if rows := eipRows(w.ok("admin", "DescribeEipAddresses", "ResourceGroupId", "rg-e")); len(rows) != 1 || rows[0]["AllocationId"] != id {
		t.Errorf("EIP after MoveResourceGroup: %v", rows)
	}
	w.wantCode("InvalidResourceId.NotFound", "bob", "MoveResourceGroup", "ResourceType", "EIP", "ResourceId", id, "NewResourceGroupId", "rg-x")
	w.wantCode("InvalidResourceType.NotFound", "admin", "MoveResourceGroup", "ResourceType", "VPC", "ResourceId", id, "NewResourceGroupId", "rg-x")
	w.wantCode("InvalidParameter", "admin", "MoveResourceGroup", "ResourceType", "EIP", "ResourceId", id, "NewResourceGroupId", "rg x")
	w.wantCode("MissingParameter", "admin", "MoveResourceGroup", "ResourceType", "EIP", "ResourceId", id)
	w.wantCode("InvalidParameter", "admin", "AllocateEipAddress", "ResourceGroupId", "rg/../x")
}
