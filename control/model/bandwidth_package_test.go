package model

import (
	"net/netip"
	"testing"

	"github.com/eipgw/eipgw/desired"
)

// TestBandwidthPackage: a package's life through the API and its rules: created with
// a bandwidth in range, EIPs added (the caller's, pay-as-you-go, in no other package)
// and then limited by the package, shared, in the desired state; their own Bandwidth
// kept but not changeable meanwhile; DescribeEipAddresses and
// DescribeCommonBandwidthPackages show both; a member cannot be released; delete
// refuses a package with EIPs unless forced; removal gives an EIP its own limit back.
func TestBandwidthPackage(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	w.instance("i-2", "10.0.1.12")
	a, ipA := w.allocate("admin", "Bandwidth", "10")
	b, ipB := w.allocate("admin", "Bandwidth", "20")
	prepaid, _ := w.allocate("admin", "InstanceChargeType", "PrePaid")
	other, _ := w.allocate("other")
	w.ok("admin", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.ok("admin", "AssociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	w.settle()

	for _, bad := range []string{"0", "1001", "ten", ""} {
		w.wantCode(map[bool]string{true: "MissingParameter", false: "InvalidBandwidth.ValueNotSupported"}[bad == ""],
			"admin", "CreateCommonBandwidthPackage", "Bandwidth", bad)
	}
	w.wantCode("InvalidParameter", "admin", "CreateCommonBandwidthPackage", "Bandwidth", "30", "InternetChargeType", "Free")
	id := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "30", "Name", "shared-30")["BandwidthPackageId"].(string)
	other2 := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "5")["BandwidthPackageId"].(string)

	w.wantCode("InvalidBandwidthPackageId.NotFound", "other", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", other)
	w.wantCode("InvalidAllocationId.NotFound", "admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", other)
	w.wantCode("OperationUnsupported.PrePaidEip", "admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", prepaid)
	w.wantCode("MissingParameter", "admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id)
	w.ok("admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", a)
	w.ok("admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", b, "IpType", "EIP")
	w.wantCode("IpInstanceId.AlreadyInBandwidthPackage", "admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", other2, "IpInstanceId", a)

	limits := func() map[netip.Addr]desired.Limit {
		t.Helper()
		got, err := DesiredBandwidths(w.tx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[netip.Addr]desired.Limit{}
		for _, l := range got {
			out[l.EIP] = l
		}
		return out
	}
	addrA, addrB := netip.MustParseAddr(ipA), netip.MustParseAddr(ipB)
	if got := limits(); got[addrA] != (desired.Limit{EIP: addrA, Bits: 30_000_000, Shared: id}) ||
		got[addrB] != (desired.Limit{EIP: addrB, Bits: 30_000_000, Shared: id}) {
		t.Errorf("limits of the package's EIPs: %v", got)
	}
	w.ok("admin", "ModifyCommonBandwidthPackageSpec", "BandwidthPackageId", id, "Bandwidth", "50")
	w.wantCode("InvalidBandwidth.ValueNotSupported", "admin", "ModifyCommonBandwidthPackageSpec", "BandwidthPackageId", id, "Bandwidth", "2000")
	if got, err := BandwidthsOf(w.tx, []netip.Addr{addrB}); err != nil || got[addrB] != (desired.Limit{EIP: addrB, Bits: 50_000_000, Shared: id}) {
		t.Errorf("the package's new bandwidth for one EIP: %v, %v", got, err)
	}
	w.wantCode("OperationUnsupported.EipInBandwidthPackage", "admin", "ModifyEipAddressAttribute", "AllocationId", a, "Bandwidth", "40")
	w.ok("admin", "ModifyEipAddressAttribute", "AllocationId", a, "Name", "still-named")
	w.ok("admin", "ModifyCommonBandwidthPackageAttribute", "BandwidthPackageId", id, "Name", "shared-50", "Description", "two instances")

	eips := w.ok("admin", "DescribeEipAddresses", "AllocationId", a)["EipAddresses"].(map[string]any)["EipAddress"].([]any)
	if v := eips[0].(map[string]any); v["Bandwidth"] != "50" || v["EipBandwidth"] != "10" || v["BandwidthPackageId"] != id ||
		v["BandwidthPackageBandwidth"] != "50" || v["BandwidthPackageType"] != "CommonBandwidthPackage" {
		t.Errorf("an EIP in a package, described: %v", v)
	}
	pkgs := w.ok("admin", "DescribeCommonBandwidthPackages", "BandwidthPackageId", id)
	list := pkgs["CommonBandwidthPackages"].(map[string]any)["CommonBandwidthPackage"].([]any)
	if pkgs["TotalCount"] != 1.0 || len(list) != 1 {
		t.Fatalf("describe one package: %v", pkgs)
	}
	p := list[0].(map[string]any)
	ips := p["PublicIpAddresses"].(map[string]any)["PublicIpAddresse"].([]any)
	if p["Bandwidth"] != "50" || p["Name"] != "shared-50" || p["Description"] != "two instances" || p["Status"] != "Available" || len(ips) != 2 {
		t.Errorf("the package described: %v", p)
	}
	if n := w.ok("other", "DescribeCommonBandwidthPackages")["TotalCount"]; n != 0.0 {
		t.Errorf("another account sees %v packages", n)
	}

	w.ok("admin", "UnassociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	w.settle()
	w.wantCode("IncorrectEipStatus", "admin", "ReleaseEipAddress", "AllocationId", b)
	w.wantCode("OperationFailed.BandwidthPackageNotEmpty", "admin", "DeleteCommonBandwidthPackage", "BandwidthPackageId", id)
	w.wantCode("OperationUnsupported.IpNotInCbwp", "admin", "RemoveCommonBandwidthPackageIp", "BandwidthPackageId", other2, "IpInstanceId", a)
	w.ok("admin", "RemoveCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", a)
	if got := limits(); got[addrA] != (desired.Limit{EIP: addrA, Bits: 10_000_000}) {
		t.Errorf("an EIP out of its package: %v", got[addrA])
	}
	w.ok("admin", "DeleteCommonBandwidthPackage", "BandwidthPackageId", id, "Force", "true")
	w.ok("admin", "ReleaseEipAddress", "AllocationId", b)
	if n := w.ok("admin", "DescribeCommonBandwidthPackages", "BandwidthPackageId", id)["TotalCount"]; n != 0.0 {
		t.Errorf("a deleted package is still described (%v)", n)
	}
	w.wantCode("InvalidBandwidthPackageId.NotFound", "admin", "ModifyCommonBandwidthPackageSpec", "BandwidthPackageId", id, "Bandwidth", "5")
}

// TestAddBandwidthPackageIPs: several EIPs joined in one request (IpInstanceIds.N),
// each by AddCommonBandwidthPackageIp's rules; a list that is missing, repeats an ID
// or is over the bound is refused, and joined EIPs share the package's limit.
// (control/api's TestBadInputChangesNothing shows a refused list changes nothing.)
func TestAddBandwidthPackageIPs(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	w.instance("i-2", "10.0.1.12")
	a, ipA := w.allocate("admin")
	b, ipB := w.allocate("admin")
	prepaid, _ := w.allocate("admin", "InstanceChargeType", "PrePaid")
	other, _ := w.allocate("other")
	w.ok("admin", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.ok("admin", "AssociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	w.settle()
	id := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "40")["BandwidthPackageId"].(string)

	w.wantCode("MissingParameter", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id)
	w.wantCode("InvalidParameter", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", a, "IpInstanceIds.2", a)
	w.wantCode("InvalidParameter.IpType", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", a, "IpType", "IPv6")
	tooMany := []string{"BandwidthPackageId", id}
	for i := 1; i <= packageIPsMax+1; i++ {
		tooMany = append(tooMany, "IpInstanceIds."+itoa(i), "eip-"+itoa(i))
	}
	w.wantCode("InvalidParameter", "admin", "AddCommonBandwidthPackageIps", tooMany...)
	w.wantCode("InvalidBandwidthPackageId.NotFound", "other", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", other)
	w.wantCode("InvalidAllocationId.NotFound", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", other)
	w.wantCode("OperationUnsupported.PrePaidEip", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", prepaid)

	w.ok("admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id, "IpInstanceIds.1", a, "IpInstanceIds.2", b)
	addrA, addrB := netip.MustParseAddr(ipA), netip.MustParseAddr(ipB)
	got, err := BandwidthsOf(w.tx, []netip.Addr{addrA, addrB})
	if err != nil || got[addrA] != (desired.Limit{EIP: addrA, Bits: 40_000_000, Shared: id}) ||
		got[addrB] != (desired.Limit{EIP: addrB, Bits: 40_000_000, Shared: id}) {
		t.Errorf("limits of the EIPs added together: %v, %v", got, err)
	}
	w.wantCode("IpInstanceId.AlreadyInBandwidthPackage", "admin", "AddCommonBandwidthPackageIps", "BandwidthPackageId", id,
		"IpInstanceIds.1", b)
}

// TestPackageIPCap: an EIP of a package capped (ModifyCommonBandwidthPackageIpBandwidth)
// to at most the package's bandwidth, in the desired state and described as its
// Bandwidth; lifted (CancelCommonBandwidthPackageIpBandwidth); an EIP out of the
// package cannot be capped, and one that leaves loses its cap.
func TestPackageIPCap(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	a, ipA := w.allocate("admin", "Bandwidth", "5")
	outside, _ := w.allocate("admin")
	w.ok("admin", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.settle()
	id := w.ok("admin", "CreateCommonBandwidthPackage", "Bandwidth", "40")["BandwidthPackageId"].(string)
	w.ok("admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", a)
	addrA := netip.MustParseAddr(ipA)
	limit := func() desired.Limit {
		t.Helper()
		got, err := BandwidthsOf(w.tx, []netip.Addr{addrA})
		if err != nil {
			t.Fatal(err)
		}
		return got[addrA]
	}
	described := func() string {
		t.Helper()
		eips := w.ok("admin", "DescribeEipAddresses", "AllocationId", a)["EipAddresses"].(map[string]any)["EipAddress"].([]any)
		return eips[0].(map[string]any)["Bandwidth"].(string)
	}

	for _, bad := range []string{"0", "41", "many"} {
		w.wantCode("InvalidBandwidth.ValueNotSupported", "admin", "ModifyCommonBandwidthPackageIpBandwidth",
			"BandwidthPackageId", id, "EipId", a, "Bandwidth", bad)
	}
	w.wantCode("MissingParameter", "admin", "ModifyCommonBandwidthPackageIpBandwidth", "BandwidthPackageId", id, "EipId", a)
	w.wantCode("OperationUnsupported.IpNotInCbwp", "admin", "ModifyCommonBandwidthPackageIpBandwidth",
		"BandwidthPackageId", id, "EipId", outside, "Bandwidth", "10")
	w.wantCode("InvalidBandwidthPackageId.NotFound", "other", "ModifyCommonBandwidthPackageIpBandwidth",
		"BandwidthPackageId", id, "EipId", a, "Bandwidth", "10")
	w.ok("admin", "ModifyCommonBandwidthPackageIpBandwidth", "BandwidthPackageId", id, "EipId", a, "Bandwidth", "10")
	if got := limit(); got != (desired.Limit{EIP: addrA, Bits: 40_000_000, Shared: id, Cap: 10_000_000}) {
		t.Errorf("a capped EIP's limit: %+v", got)
	}
	if got := described(); got != "10" {
		t.Errorf("a capped EIP described with Bandwidth %s, want its cap, 10", got)
	}
	w.ok("admin", "CancelCommonBandwidthPackageIpBandwidth", "BandwidthPackageId", id, "EipId", a)
	if got := limit(); got != (desired.Limit{EIP: addrA, Bits: 40_000_000, Shared: id}) {
		t.Errorf("an EIP whose cap was lifted: %+v", got)
	}
	if got := described(); got != "40" {
		t.Errorf("an uncapped EIP described with Bandwidth %s, want the package's 40", got)
	}
	w.ok("admin", "ModifyCommonBandwidthPackageIpBandwidth", "BandwidthPackageId", id, "EipId", a, "Bandwidth", "40")
	w.ok("admin", "RemoveCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", a)
	if got := limit(); got != (desired.Limit{EIP: addrA, Bits: 5_000_000}) {
		t.Errorf("an EIP out of its package: %+v", got)
	}
	w.ok("admin", "AddCommonBandwidthPackageIp", "BandwidthPackageId", id, "IpInstanceId", a)
	if got := limit(); got.Cap != 0 {
		t.Errorf("an EIP back in its package kept its old cap: %+v", got)
	}
	w.wantCode("OperationUnsupported.IpNotInCbwp", "admin", "CancelCommonBandwidthPackageIpBandwidth",
		"BandwidthPackageId", id, "EipId", outside)
}
