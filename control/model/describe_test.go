package model

import (
	"slices"
	"strings"
	"testing"
)

// TestDescribeEipAddressesFilters: the reference API's filters (AllocationId and
// EipAddress as comma lists of up to 50, EipName, ISP, ResourceGroupId, ChargeType),
// the fields a Terraform read expects (ResourceGroupId as allocated, ISP, Netmode, and
// Mode NAT for an association without another mode), RegionId answered only for eipd's
// region, and DescribeRegions.
func TestDescribeEipAddressesFilters(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	a, ipA := w.allocate("admin", "Name", "web", "ResourceGroupId", "rg-1")
	b, ipB := w.allocate("admin", "InstanceChargeType", "PrePaid")
	c, _ := w.allocate("admin")
	w.ok("admin", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.settle()
	ids := func(kv ...string) []string {
		t.Helper()
		var out []string
		for _, e := range w.ok("admin", "DescribeEipAddresses", kv...)["EipAddresses"].(map[string]any)["EipAddress"].([]any) {
			out = append(out, e.(map[string]any)["AllocationId"].(string))
		}
		return out
	}
	for _, q := range []struct {
		kv   []string
		want []string
	}{
		{[]string{"AllocationId", a + "," + b}, []string{a, b}},
		{[]string{"AllocationId", a + ", " + c}, []string{a, c}},
		{[]string{"EipAddress", ipA + "," + ipB}, []string{a, b}},
		{[]string{"EipName", "web"}, []string{a}},
		{[]string{"ISP", "BGP"}, []string{a, b, c}},
		{[]string{"ISP", "BGP_PRO"}, nil},
		{[]string{"ResourceGroupId", "rg-1"}, []string{a}},
		{[]string{"ChargeType", "PrePaid"}, []string{b}},
	} {
		got := ids(q.kv...)
		slices.Sort(got)
		slices.Sort(q.want)
		if strings.Join(got, " ") != strings.Join(q.want, " ") {
			t.Errorf("DescribeEipAddresses %v: %v, want %v", q.kv, got, q.want)
		}
	}
	many := strings.Repeat("eip-x,", 50) + "eip-y"
	w.wantCode("InvalidParameter", "admin", "DescribeEipAddresses", "AllocationId", many)
	w.wantCode("InvalidParameter", "admin", "DescribeEipAddresses", "AllocationId", a+",,"+b)

	e := w.ok("admin", "DescribeEipAddresses", "AllocationId", a)["EipAddresses"].(map[string]any)["EipAddress"].([]any)[0].(map[string]any)
	if e["ResourceGroupId"] != "rg-1" || e["ISP"] != "BGP" || e["Netmode"] != "public" || e["Mode"] != "NAT" {
		t.Errorf("an associated EIP, described: %v", e)
	}
	if e := w.ok("admin", "DescribeEipAddresses", "AllocationId", c)["EipAddresses"].(map[string]any)["EipAddress"].([]any)[0].(map[string]any); e["Mode"] != "" {
		t.Errorf("an unassociated EIP has mode %v", e["Mode"])
	}
	w.wantCode("InvalidParameter", "admin", "AllocateEipAddress", "ISP", "BGP_PRO")

	// One region: eipd's.
	w.wantCode("InvalidRegionId.NotFound", "admin", "AllocateEipAddress", "RegionId", "cn-hangzhou")
	w.wantCode("InvalidRegionId.NotFound", "admin", "DescribeEipAddresses", "RegionId", "cn-hangzhou")
	w.ok("admin", "DescribeEipAddresses", "RegionId", w.svc.Region)
	regions := w.ok("admin", "DescribeRegions")["Regions"].(map[string]any)["Region"].([]any)
	if len(regions) != 1 || regions[0].(map[string]any)["RegionId"] != w.svc.Region {
		t.Errorf("DescribeRegions: %v", regions)
	}
}

// TestDeletionProtection: a protected EIP is not released and a protected package not
// deleted (InvalidOperation.DeletionProtection) until the protection is off; Describe
// says which are protected; another account's resource is not found.
func TestDeletionProtection(t *testing.T) {
	w := newWorld(t)
	id, _ := w.allocate("admin")
	w.ok("admin", "DeletionProtection", "InstanceId", id, "ProtectionEnable", "true", "Type", "EIP")
	e := w.ok("admin", "DescribeEipAddresses", "AllocationId", id)["EipAddresses"].(map[string]any)["EipAddress"].([]any)[0].(map[string]any)
	if e["DeletionProtection"] != true {
		t.Errorf("a protected EIP, described: %v", e["DeletionProtection"])
	}
	w.wantCode("InvalidOperation.DeletionProtection", "admin", "ReleaseEipAddress", "AllocationId", id)
	w.wantCode("InvalidAllocationId.NotFound", "other", "DeletionProtection", "InstanceId", id, "ProtectionEnable", "false", "Type", "EIP")
	w.wantCode("InvalidParameter", "admin", "DeletionProtection", "InstanceId", id, "ProtectionEnable", "yes", "Type", "EIP")
	w.wantCode("InvalidParameter", "admin", "DeletionProtection", "InstanceId", id, "ProtectionEnable", "true", "Type", "ECS")
	w.ok("admin", "DeletionProtection", "InstanceId", id, "ProtectionEnable", "false", "Type", "EIP")
	w.ok("admin", "ReleaseEipAddress", "AllocationId", id)

	pkg := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "10")["BandwidthPackageId"].(string)
	w.ok("admin", "DeletionProtection", "InstanceId", pkg, "ProtectionEnable", "true", "Type", "CBWP")
	w.wantCode("InvalidOperation.DeletionProtection", "admin", "DeleteCommonBandwidthPackage", "BandwidthPackageId", pkg)
	w.ok("admin", "DeletionProtection", "InstanceId", pkg, "ProtectionEnable", "false", "Type", "CBWP")
	w.ok("admin", "DeleteCommonBandwidthPackage", "BandwidthPackageId", pkg)
}

// TestDescribeEipSegmentAndLock: SegmentInstanceId and LockReason are filters no EIP
// here matches (none is in a segment or locked), not ignored parameters.
func TestDescribeEipSegmentAndLock(t *testing.T) {
	w := newWorld(t)
	w.allocate(acct)
	for _, kv := range [][]string{{"SegmentInstanceId", "eipsg-1"}, {"LockReason", "financial"}} {
		if n := w.ok(acct, "DescribeEipAddresses", kv...)["TotalCount"]; n != float64(0) {
			t.Errorf("%s: %v EIPs", kv[0], n)
		}
	}
	if n := w.ok(acct, "DescribeEipAddresses")["TotalCount"]; n != float64(1) {
		t.Errorf("no filter: %v EIPs", n)
	}
}
