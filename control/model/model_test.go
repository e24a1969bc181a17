package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type world struct {
	t   *testing.T
	svc *Service
	tx  MemTx
	now time.Time
}

func newWorld(t *testing.T) *world {
	return &world{t: t, svc: &Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
		tx: MemTx{}, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
}

// do runs an action as account and returns the response as generic JSON and the
// error code ("" for success).
func (w *world) do(account, action string, kv ...string) (map[string]any, string) {
	w.t.Helper()
	p := Params{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	resp, err := w.svc.Do(w.tx, account, action, p, w.now)
	if err != nil {
		var me *Error
		if !errors.As(err, &me) {
			w.t.Fatalf("%s: not an API error: %v", action, err)
		}
		return nil, me.Code
	}
	raw, _ := json.Marshal(resp)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m, ""
}

func (w *world) ok(account, action string, kv ...string) map[string]any {
	w.t.Helper()
	m, code := w.do(account, action, kv...)
	if code != "" {
		w.t.Fatalf("%s %v: %s", action, kv, code)
	}
	return m
}

func (w *world) wantCode(want, account, action string, kv ...string) {
	w.t.Helper()
	if _, code := w.do(account, action, kv...); code != want {
		w.t.Errorf("%s %v: got %q, want %q", action, kv, code, want)
	}
}

func (w *world) allocate(account string, kv ...string) (id, ip string) {
	w.t.Helper()
	m := w.ok(account, "AllocateEipAddress", kv...)
	return m["AllocationId"].(string), m["EipAddress"].(string)
}

func (w *world) settle() {
	w.t.Helper()
	pending, err := Pending(w.tx)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := Settle(w.tx, pending); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) instance(id, ip string, kv ...string) string {
	w.t.Helper()
	m := w.ok("admin", "RegisterInstance", append([]string{"InstanceId", id, "VpcId", "vpc-1", "PrivateIpAddress", ip}, kv...)...)
	return m["NetworkInterfaceId"].(string)
}

func (w *world) eipStatus(id string) string {
	e, err := get[EIP](w.tx, KindEIP, id)
	if err != nil || e == nil {
		w.t.Fatalf("EIP %s: %v", id, err)
	}
	return e.Status
}

const acct, other = "ak-1", "ak-2"

func TestAllocateAndBandwidth(t *testing.T) {
	w := newWorld(t)
	id, ip := w.allocate(acct)
	if ip != "203.0.113.1" || w.eipStatus(id) != StatusAvailable {
		t.Errorf("first allocation: %s %s", ip, w.eipStatus(id))
	}
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "AllocateEipAddress", "Bandwidth", "0")
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "AllocateEipAddress", "Bandwidth", "201")
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "AllocateEipAddress", "Bandwidth", "ten")
	w.ok(acct, "AllocateEipAddress", "Bandwidth", "200")
	w.ok(acct, "AllocateEipAddress", "Bandwidth", "500", "InternetChargeType", "PayByBandwidth")
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "AllocateEipAddress", "Bandwidth", "501", "InternetChargeType", "PayByBandwidth")
	w.wantCode("InvalidParameter", acct, "AllocateEipAddress", "InternetChargeType", "PayByMood")
	w.wantCode("InvalidParameter", acct, "AllocateEipAddress", "InstanceChargeType", "Free")
	w.wantCode("InvalidParameter", acct, "AllocateEipAddress", "IpAddress", "not-an-ip")

	w.ok(acct, "ModifyEipAddressAttribute", "AllocationId", id, "Bandwidth", "200", "Name", "web")
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "ModifyEipAddressAttribute", "AllocationId", id, "Bandwidth", "300")
	w.wantCode("InvalidAllocationId.NotFound", other, "ModifyEipAddressAttribute", "AllocationId", id, "Bandwidth", "10")
	w.wantCode("MissingParameter", acct, "ModifyEipAddressAttribute")
	e, _ := get[EIP](w.tx, KindEIP, id)
	if e.Bandwidth != 200 || e.Name != "web" {
		t.Errorf("after modify: %+v", e)
	}
}

func TestPoolExhaustion(t *testing.T) {
	w := newWorld(t)
	w.svc.Pool = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/30")} // .1 and .2
	w.allocate(acct)
	w.allocate(acct)
	w.wantCode("QuotaExceeded.Eip", acct, "AllocateEipAddress")
}

func TestReleaseAndRecover(t *testing.T) {
	w := newWorld(t)
	id, ip := w.allocate(acct)
	w.instance("i-1", "10.0.1.11")
	w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.wantCode("IncorrectEipStatus", acct, "ReleaseEipAddress", "AllocationId", id)
	w.settle()
	w.wantCode("IncorrectEipStatus", acct, "ReleaseEipAddress", "AllocationId", id)
	w.ok(acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.wantCode("IncorrectEipStatus", acct, "ReleaseEipAddress", "AllocationId", id)
	w.settle()
	w.wantCode("InvalidAllocationId.NotFound", other, "ReleaseEipAddress", "AllocationId", id)
	w.ok(acct, "ReleaseEipAddress", "AllocationId", id)
	w.wantCode("InvalidAllocationId.NotFound", acct, "ReleaseEipAddress", "AllocationId", id)

	// Held for its owner: nobody else gets it, by asking or by chance.
	if _, got := w.allocate(other); got == ip {
		t.Errorf("a released address went to another account")
	}
	w.wantCode("InvalidIpAddress.NotRecoverable", other, "AllocateEipAddress", "IpAddress", ip)
	w.wantCode("InvalidIpAddress.NotRecoverable", acct, "AllocateEipAddress", "IpAddress", "198.51.100.7")
	if _, got := w.allocate(acct, "IpAddress", ip); got != ip {
		t.Errorf("recovered %s, want %s", got, ip)
	}
	w.wantCode("InvalidIpAddress.NotRecoverable", acct, "AllocateEipAddress", "IpAddress", ip)

	// After 7 days the hold ends.
	id2, ip2 := w.allocate(acct)
	w.ok(acct, "ReleaseEipAddress", "AllocationId", id2)
	w.now = w.now.Add(7*24*time.Hour + time.Second)
	if _, got := w.allocate(other, "IpAddress", ip2); got != ip2 {
		t.Errorf("after the window another account could not have %s", ip2)
	}
}

func TestDescribeFiltersAndPages(t *testing.T) {
	w := newWorld(t)
	var ids []string
	for i := 0; i < 5; i++ {
		id, _ := w.allocate(acct)
		ids = append(ids, id)
		w.now = w.now.Add(time.Second)
	}
	w.allocate(other)
	m := w.ok(acct, "DescribeEipAddresses", "PageSize", "2", "PageNumber", "3")
	list := m["EipAddresses"].(map[string]any)["EipAddress"].([]any)
	if m["TotalCount"].(float64) != 5 || len(list) != 1 || list[0].(map[string]any)["AllocationId"] != ids[4] {
		t.Errorf("page 3 of 2: %v", m)
	}
	m = w.ok(acct, "DescribeEipAddresses", "AllocationId", ids[1])
	if m["TotalCount"].(float64) != 1 {
		t.Errorf("by AllocationId: %v", m)
	}
	m = w.ok(acct, "DescribeEipAddresses", "Status", StatusInUse)
	if m["TotalCount"].(float64) != 0 {
		t.Errorf("by status: %v", m)
	}
	w.wantCode("InvalidParameter", acct, "DescribeEipAddresses", "PageSize", "101")
	w.wantCode("InvalidParameter", acct, "DescribeEipAddresses", "PageNumber", "0")
}

func TestAssociateEcsRules(t *testing.T) {
	w := newWorld(t)
	a, _ := w.allocate(acct)
	b, _ := w.allocate(acct)
	w.instance("i-1", "10.0.1.11")
	w.instance("i-pub", "10.0.1.12", "PublicIpAddress", "198.51.100.50")
	w.instance("i-far", "10.0.1.13", "RegionId", "elsewhere")
	w.instance("i-novpc", "10.0.1.14")
	novpc, _ := get[Instance](w.tx, KindInstance, "i-novpc")
	novpc.VpcID = ""
	_ = put(w.tx, KindInstance, "i-novpc", novpc)

	w.wantCode("InvalidInstanId.NotFound", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-none")
	w.wantCode("EIP_CAN_NOT_ASSOCIATE_WITH_PUBLIC_IP", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-pub")
	w.wantCode("InvalidParameter.Mismatch", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-far")
	w.wantCode("OperationDenied", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-novpc")
	w.wantCode("MissingParameter", acct, "AssociateEipAddress", "AllocationId", a)
	w.wantCode("InvalidInstanceType.ValueNotSupported", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1", "InstanceType", "Toaster")
	w.wantCode("Invalid.DirectEip.BindType", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1", "Mode", "BINDED")
	w.wantCode("InvalidAllocationId.NotFound", other, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	for _, st := range []string{"Pending", "Starting", "Stopping"} {
		w.ok("admin", "ModifyInstanceStatus", "InstanceId", "i-1", "Status", st)
		w.wantCode("IncorrectInstanceStatus", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	}
	w.ok("admin", "ModifyInstanceStatus", "InstanceId", "i-1", "Status", "Stopped")
	w.ok(acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	if w.eipStatus(a) != StatusAssociating {
		t.Errorf("status after associate: %s", w.eipStatus(a))
	}
	w.wantCode("IncorrectEipStatus", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", b, "InstanceId", "i-1")
	w.settle()
	if w.eipStatus(a) != StatusInUse {
		t.Errorf("status after settle: %s", w.eipStatus(a))
	}
	w.wantCode("IncorrectEipStatus", acct, "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.wantCode("InvalidParameter", "admin", "ModifyInstanceStatus", "InstanceId", "i-1", "Status", "Exploded")
}

func TestAssociateENIRules(t *testing.T) {
	w := newWorld(t)
	var eips []string
	for i := 0; i < 14; i++ {
		id, _ := w.allocate(acct)
		eips = append(eips, id)
	}
	primary := w.instance("i-1", "10.0.1.11")
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-nat", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.3.1", "MacAddress", "02:00:00:00:0f:01")
	w.ok("admin", "AssignPrivateIpAddresses", "NetworkInterfaceId", "eni-nat", "PrivateIpAddress.1", "10.0.3.2", "PrivateIpAddress.2", "10.0.3.3")
	w.wantCode("InvalidParameter", "admin", "AssignPrivateIpAddresses", "NetworkInterfaceId", "eni-nat", "PrivateIpAddress.1", "10.0.3.2")
	w.ok("admin", "AttachNetworkInterface", "NetworkInterfaceId", "eni-nat", "InstanceId", "i-1")

	// NAT mode: one EIP per private address, primary and secondary ENIs alike.
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[0], "InstanceId", "eni-nat", "InstanceType", TypeENI, "PrivateIpAddress", "10.0.3.2")
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[1], "InstanceId", "eni-nat", "InstanceType", TypeENI, "PrivateIpAddress", "10.0.3.3")
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", eips[2], "InstanceId", "eni-nat", "InstanceType", TypeENI, "PrivateIpAddress", "10.0.3.3")
	w.wantCode("InvalidParameter.PrivateIpAddress", acct, "AssociateEipAddress", "AllocationId", eips[2], "InstanceId", "eni-nat", "InstanceType", TypeENI, "PrivateIpAddress", "10.0.9.9")
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[2], "InstanceId", primary, "InstanceType", TypeENI)
	// The instance's primary address now has an EIP through its ENI.
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", "i-1")
	w.wantCode("InvalidNetworkInterfaceId.NotFound", acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", "eni-none", "InstanceType", TypeENI)
	w.wantCode("OperationFailed.EipBindModeConflict", acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", "eni-nat", "InstanceType", TypeENI, "Mode", ModeMulti)

	// Cut-through: secondary, unattached, no other address; then no new address.
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-cut", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.4.1", "MacAddress", "02:00:00:00:0f:02")
	w.wantCode("InvalidParameter.EniType", acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", primary, "InstanceType", TypeENI, "Mode", ModeBinded)
	w.ok("admin", "AttachNetworkInterface", "NetworkInterfaceId", "eni-cut", "InstanceId", "i-1")
	w.wantCode("Eni.Attached", acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", "eni-cut", "InstanceType", TypeENI, "Mode", ModeBinded)
	w.ok("admin", "DetachNetworkInterface", "NetworkInterfaceId", "eni-cut", "InstanceId", "i-1")
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[3], "InstanceId", "eni-cut", "InstanceType", TypeENI, "Mode", ModeBinded)
	w.wantCode("Eni.HasSubIp", "admin", "AssignPrivateIpAddresses", "NetworkInterfaceId", "eni-cut", "PrivateIpAddress.1", "10.0.4.2")
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", eips[4], "InstanceId", "eni-cut", "InstanceType", TypeENI, "Mode", ModeBinded)
	w.ok("admin", "AttachNetworkInterface", "NetworkInterfaceId", "eni-cut", "InstanceId", "i-1")
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-sub", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.5.1", "MacAddress", "02:00:00:00:0f:03")
	w.ok("admin", "AssignPrivateIpAddresses", "NetworkInterfaceId", "eni-sub", "PrivateIpAddress.1", "10.0.5.2")
	w.wantCode("Eni.HasSubIp", acct, "AssociateEipAddress", "AllocationId", eips[4], "InstanceId", "eni-sub", "InstanceType", TypeENI, "Mode", ModeBinded)

	// The gateway checks a cut-through EIP's source against the ENI's MAC: none, no mode.
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-nomac", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.7.9")
	w.wantCode("OperationDenied.EniMacUnknown", acct, "AssociateEipAddress", "AllocationId", eips[4], "InstanceId", "eni-nomac", "InstanceType", TypeENI, "Mode", ModeBinded)
	w.wantCode("InvalidParameter", "admin", "CreateNetworkInterface", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.7.10", "MacAddress", "not-a-mac")

	// Multi-EIP cut-through: up to 10 on a secondary ENI.
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-multi", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.6.1", "MacAddress", "02:00:00:00:0f:04")
	for i := 4; i < 14; i++ {
		w.ok(acct, "AssociateEipAddress", "AllocationId", eips[i], "InstanceId", "eni-multi", "InstanceType", TypeENI, "Mode", ModeMulti)
	}
	extra, _ := w.allocate(acct)
	w.wantCode("QuotaExceed.MultiBindedEip", acct, "AssociateEipAddress", "AllocationId", extra, "InstanceId", "eni-multi", "InstanceType", TypeENI, "Mode", ModeMulti)
	w.wantCode("InvalidParameter.EniType", acct, "AssociateEipAddress", "AllocationId", extra, "InstanceId", primary, "InstanceType", TypeENI, "Mode", ModeMulti)
}

func TestAssociateSLBHaVipNatRules(t *testing.T) {
	w := newWorld(t)
	var eips []string
	for i := 0; i < 25; i++ {
		id, _ := w.allocate(acct)
		eips = append(eips, id)
	}
	w.ok("admin", "RegisterLoadBalancer", "LoadBalancerId", "lb-1", "VpcId", "vpc-1", "Address", "10.0.7.1")
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[0], "InstanceId", "lb-1", "InstanceType", TypeSLB)
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", eips[1], "InstanceId", "lb-1", "InstanceType", TypeSLB)
	w.wantCode("InvalidLoadBalancerId.NotFound", acct, "AssociateEipAddress", "AllocationId", eips[1], "InstanceId", "lb-x", "InstanceType", TypeSLB)

	w.ok("admin", "CreateHaVip", "HaVipId", "havip-1", "VpcId", "vpc-1", "IpAddress", "10.0.8.1")
	w.ok(acct, "AssociateEipAddress", "AllocationId", eips[1], "InstanceId", "havip-1", "InstanceType", TypeHaVip)
	w.wantCode("InvalidAssociation.Duplicated", acct, "AssociateEipAddress", "AllocationId", eips[2], "InstanceId", "havip-1", "InstanceType", TypeHaVip)
	w.ok("admin", "CreateHaVip", "HaVipId", "havip-2", "VpcId", "vpc-1", "IpAddress", "10.0.8.2")
	h, _ := get[HaVip](w.tx, KindHaVip, "havip-2")
	h.Status = "Deleting"
	_ = put(w.tx, KindHaVip, "havip-2", h)
	w.wantCode("IncorrectHaVipStatus", acct, "AssociateEipAddress", "AllocationId", eips[2], "InstanceId", "havip-2", "InstanceType", TypeHaVip)

	w.ok("admin", "CreateNatGateway", "NatGatewayId", "ngw-1", "VpcId", "vpc-1")
	for i := 2; i < 22; i++ {
		w.ok(acct, "AssociateEipAddress", "AllocationId", eips[i], "InstanceId", "ngw-1", "InstanceType", TypeNat)
	}
	w.wantCode("QuotaExceeded.NumberOfEip", acct, "AssociateEipAddress", "AllocationId", eips[22], "InstanceId", "ngw-1", "InstanceType", TypeNat)

	// Only 1:1 associations become dataplane bindings.
	bs, err := DesiredBindings(w.tx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, b := range bs {
		got[b.Private.String()] = b.EIP.String()
	}
	if len(got) != 2 || got["10.0.7.1"] == "" || got["10.0.8.1"] == "" {
		t.Errorf("desired bindings: %v", got)
	}
}

func TestUnassociateRules(t *testing.T) {
	w := newWorld(t)
	id, ip := w.allocate(acct)
	w.instance("i-1", "10.0.1.11")
	w.instance("i-2", "10.0.1.12")
	w.wantCode("IncorrectEipStatus", acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.wantCode("IncorrectEipStatus", acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	w.settle()
	w.wantCode("InvalidInstanId.NotFound", acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-2")
	w.wantCode("InvalidInstanId.NotFound", acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1", "InstanceType", TypeSLB)
	w.ok(acct, "UnassociateEipAddress", "AllocationId", id, "InstanceId", "i-1")
	if bs, _ := DesiredBindings(w.tx); len(bs) != 0 {
		t.Errorf("an EIP being disassociated is still a binding: %v", bs)
	}
	w.settle()
	e, _ := get[EIP](w.tx, KindEIP, id)
	if e.Status != StatusAvailable || e.InstanceID != "" || e.IPAddress != ip {
		t.Errorf("after disassociation: %+v", e)
	}
}

func TestClientTokenAndDryRun(t *testing.T) {
	w := newWorld(t)
	a := w.ok(acct, "AllocateEipAddress", "ClientToken", "tok-1")
	b := w.ok(acct, "AllocateEipAddress", "ClientToken", "tok-1")
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same ClientToken answered %v then %v", a, b)
	}
	c := w.ok(other, "AllocateEipAddress", "ClientToken", "tok-1")
	if c["AllocationId"] == a["AllocationId"] {
		t.Errorf("another account's request with the same token got the first answer")
	}
	eips, _ := list[EIP](w.tx, KindEIP)
	if len(eips) != 2 {
		t.Errorf("%d EIPs after a repeated token, want 2", len(eips))
	}
	w.wantCode("DryRunOperation", acct, "AllocateEipAddress", "DryRun", "true")
	w.wantCode("InvalidBandwidth.ValueNotSupported", acct, "AllocateEipAddress", "DryRun", "true", "Bandwidth", "0")
	if _, err := w.svc.Do(w.tx, acct, "NoSuchAction", Params{}, w.now); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("unknown action: %v", err)
	}
}

func TestDescribeEipGatewayInfo(t *testing.T) {
	w := newWorld(t)
	w.svc.EIPGateway = netip.MustParseAddr("10.0.0.1")
	w.ok("admin", "CreateNetworkInterface", "NetworkInterfaceId", "eni-m", "VpcId", "vpc-1", "PrimaryIpAddress", "10.0.6.1", "MacAddress", "02:00:00:00:0f:05")
	var ips []string
	for i := 0; i < 3; i++ {
		id, ip := w.allocate(acct)
		ips = append(ips, ip)
		w.ok(acct, "AssociateEipAddress", "AllocationId", id, "InstanceId", "eni-m", "InstanceType", TypeENI, "Mode", ModeMulti)
	}
	m := w.ok(acct, "DescribeEipGatewayInfo", "InstanceId", "eni-m")
	infos := m["EipInfos"].(map[string]any)["EipInfo"].([]any)
	if len(infos) != 3 {
		t.Fatalf("gateway info: %v", m)
	}
	for i, raw := range infos {
		info := raw.(map[string]any)
		if info["Ip"] != ips[i] || info["IpGw"] != "10.0.0.1" || info["IpMask"] != "255.255.255.0" {
			t.Errorf("EIP %d: %v", i, info)
		}
	}
	cts, err := DesiredCutThroughs(w.tx)
	if err != nil || len(cts) != 3 || len(cts[0].ENIMAC) != 6 {
		t.Errorf("desired cut-through EIPs: %v, %v", cts, err)
	}
	w.wantCode("InvalidNetworkInterfaceId.NotFound", acct, "DescribeEipGatewayInfo", "InstanceId", "eni-none")
	w.wantCode("MissingParameter", acct, "DescribeEipGatewayInfo")
}

// TestNameAndDescriptionRules: the reference API's lengths and characters for an
// EIP's Name (1-128) and Description (2-256, from a letter), on allocation and change.
func TestNameAndDescriptionRules(t *testing.T) {
	w := newWorld(t)
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, bad := range [][]string{{"Name", ""}, {"Name", long(129)}, {"Name", "http://x"}, {"Name", "a b"}, {"Name", "x\x01"},
		{"Description", "a"}, {"Description", long(257)}, {"Description", "1abc"}, {"Description", "https://example"}} {
		w.wantCode("InvalidParameter", "acct-1", "AllocateEipAddress", bad...)
	}
	m := w.ok("acct-1", "AllocateEipAddress", "Name", long(128), "Description", "D"+long(255))
	id := m["AllocationId"].(string)
	w.ok("acct-1", "ModifyEipAddressAttribute", "AllocationId", id, "Name", "web-1.prod_a", "Description", "ok")
	w.wantCode("InvalidParameter", "acct-1", "ModifyEipAddressAttribute", "AllocationId", id, "Name", long(129))
	w.wantCode("InvalidParameter", "acct-1", "ModifyEipAddressAttribute", "AllocationId", id, "Description", long(300))
	// No parameter takes control characters or invalid UTF-8; a ClientToken is at most
	// 64 ASCII characters.
	w.wantCode("InvalidParameter", "acct-1", "DescribeEipAddresses", "EipAddress", "203.0.113.1\n")
	w.wantCode("InvalidParameter", "acct-1", "DescribeEipAddresses", "AllocationId", "\xff\xfe")
	w.wantCode("InvalidParameter", "acct-1", "AllocateEipAddress", "ClientToken", long(65))
	w.wantCode("InvalidParameter", "acct-1", "AllocateEipAddress", "ClientToken", "jeton-é")
	w.ok("acct-1", "AllocateEipAddress", "ClientToken", long(64))
}

// TestCapacity: a write that needs more of the dataplane than it has is refused with a
// quota code (the store then rolls it back).
func TestCapacity(t *testing.T) {
	w := newWorld(t)
	w.svc.Capacity = Capacity{Slots: 1, Sources: 2}
	w.instance("i-1", "10.0.1.11", "MacAddress", "02:00:00:00:00:11")
	w.instance("i-2", "10.0.1.12", "MacAddress", "02:00:00:00:00:12")
	a, _ := w.allocate("acct-1")
	b, _ := w.allocate("acct-1")
	w.ok("acct-1", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.wantCode("QuotaExceeded.Dataplane", "acct-1", "AssociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	// Last: the world's transaction keeps a refused write (the store's would not).
	w.wantCode("QuotaExceeded.Dataplane", "admin", "RegisterInstance", "InstanceId", "i-3", "VpcId", "vpc-1",
		"PrivateIpAddress", "10.0.1.13", "MacAddress", "02:00:00:00:00:13")
}
