package model

import (
	"encoding/json"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// The inventory that associations refer to. Where the cloud has an action for a
// change, it has the cloud's name; registering an instance, changing its state and
// registering a load balancer are eipgw's own actions (docs/api.md), because in the
// cloud those belong to other services.
func init() {
	register("RegisterInstance", true, (*Service).registerInstance)
	register("ModifyInstanceStatus", true, (*Service).modifyInstanceStatus)
	register("CreateNetworkInterface", true, (*Service).createENI)
	register("AttachNetworkInterface", true, (*Service).attachENI)
	register("DetachNetworkInterface", true, (*Service).detachENI)
	register("AssignPrivateIpAddresses", true, (*Service).assignPrivateIPs)
	register("CreateHaVip", true, (*Service).createHaVip)
	register("AssociateHaVip", true, (*Service).associateHaVip)
	register("RegisterLoadBalancer", true, (*Service).registerLoadBalancer)
	register("CreateNatGateway", true, (*Service).createNatGateway)
}

var instanceStatuses = []string{"Pending", "Running", "Starting", "Stopping", "Stopped"}

func (s *Service) region(c *Call) string {
	if r := c.Params["RegionId"]; r != "" {
		return r
	}
	return s.Region
}

func exists(tx Tx, kind, id string) (bool, error) {
	raw, err := tx.Get(kind, id)
	return raw != nil, err
}

func (s *Service) registerInstance(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	ip, err := c.Params.ipv4("PrivateIpAddress", true)
	if err != nil {
		return nil, err
	}
	public, err := c.Params.ipv4("PublicIpAddress", false)
	if err != nil {
		return nil, err
	}
	status, err := c.Params.oneOf("Status", "Running", instanceStatuses...)
	if err != nil {
		return nil, err
	}
	in := &Instance{InstanceID: idParam(c.Params, "InstanceId", "i"), Region: s.region(c), VpcID: vpc, Status: status,
		PublicIPAddress: public}
	if ok, err := exists(c.Tx, KindInstance, in.InstanceID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	mac, err := macParam(c.Params, "MacAddress")
	if err != nil {
		return nil, err
	}
	eni := &ENI{ENIID: newID("eni"), Region: in.Region, VpcID: vpc, Primary: true, InstanceID: in.InstanceID, PrimaryIP: ip, MacAddress: mac}
	in.PrimaryENI = eni.ENIID
	if err := put(c.Tx, KindInstance, in.InstanceID, in); err != nil {
		return nil, err
	}
	if err := put(c.Tx, KindENI, eni.ENIID, eni); err != nil {
		return nil, err
	}
	return struct {
		InstanceID         string `json:"InstanceId"`
		NetworkInterfaceID string `json:"NetworkInterfaceId"`
	}{in.InstanceID, eni.ENIID}, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func instanceParam(c *Call) (*Instance, error) {
	id, err := c.Params.required("InstanceId")
	if err != nil {
		return nil, err
	}
	in, err := get[Instance](c.Tx, KindInstance, id)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, errInstanceNotFound
	}
	return in, nil
}

func (s *Service) modifyInstanceStatus(c *Call) (any, error) {
	in, err := instanceParam(c)
	if err != nil {
		return nil, err
	}
	if _, err := c.Params.required("Status"); err != nil {
		return nil, err
	}
	if in.Status, err = c.Params.oneOf("Status", "", instanceStatuses...); err != nil {
		return nil, err
	}
	return struct{}{}, put(c.Tx, KindInstance, in.InstanceID, in)
}

func eniParam(c *Call) (*ENI, error) {
	id, err := c.Params.required("NetworkInterfaceId")
	if err != nil {
		return nil, err
	}
	e, err := get[ENI](c.Tx, KindENI, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, notFound("NetworkInterface", id)
	}
	return e, nil
}

func (s *Service) createENI(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	ip, err := c.Params.ipv4("PrimaryIpAddress", true)
	if err != nil {
		return nil, err
	}
	mac, err := macParam(c.Params, "MacAddress")
	if err != nil {
		return nil, err
	}
	e := &ENI{ENIID: idParam(c.Params, "NetworkInterfaceId", "eni"), Region: s.region(c), VpcID: vpc, PrimaryIP: ip, MacAddress: mac}
	if ok, err := exists(c.Tx, KindENI, e.ENIID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	return struct {
		NetworkInterfaceID string `json:"NetworkInterfaceId"`
	}{e.ENIID}, put(c.Tx, KindENI, e.ENIID, e)
}

func (s *Service) attachENI(c *Call) (any, error) {
	e, err := eniParam(c)
	if err != nil {
		return nil, err
	}
	in, err := instanceParam(c)
	if err != nil {
		return nil, err
	}
	if e.Primary || e.InstanceID != "" {
		return nil, badRequest("InvalidOperation.EniStatus", "The ENI is a primary ENI or already attached.")
	}
	if e.VpcID != in.VpcID {
		return nil, badRequest("InvalidParameter.Mismatch", "The ENI and the instance are not in the same VPC.")
	}
	e.InstanceID = in.InstanceID
	return struct{}{}, put(c.Tx, KindENI, e.ENIID, e)
}

func (s *Service) detachENI(c *Call) (any, error) {
	e, err := eniParam(c)
	if err != nil {
		return nil, err
	}
	if e.Primary || e.InstanceID == "" || e.InstanceID != c.Params["InstanceId"] {
		return nil, badRequest("InvalidOperation.EniStatus", "The ENI is a primary ENI or not attached to that instance.")
	}
	e.InstanceID = ""
	return struct{}{}, put(c.Tx, KindENI, e.ENIID, e)
}

func (s *Service) assignPrivateIPs(c *Call) (any, error) {
	e, err := eniParam(c)
	if err != nil {
		return nil, err
	}
	ips, err := c.Params.requiredList("PrivateIpAddress")
	if err != nil {
		return nil, err
	}
	for i, raw := range ips {
		ip, err := Params{"p": raw}.ipv4("p", true)
		if err != nil || ip == e.PrimaryIP || slices.Contains(e.SecondaryIPs, ip) {
			return nil, invalid("PrivateIpAddress."+itoa(i+1), raw)
		}
		e.SecondaryIPs = append(e.SecondaryIPs, ip)
	}
	// A cut-through ENI carries no other address.
	if eips, err := eipsOn(c.Tx, TypeENI, e.ENIID); err != nil {
		return nil, err
	} else if len(eips) > 0 && eips[0].Mode == ModeBinded {
		return nil, errEniHasSubIP
	}
	return struct{}{}, put(c.Tx, KindENI, e.ENIID, e)
}

// createHaVip makes a HaVip in a vSwitch (VSwitchId, as the cloud does: its address
// is IpAddress, in the vSwitch's block, or the first one free there), or, eipgw's
// shorter form, in a VPC (VpcId, with IpAddress).
func (s *Service) createHaVip(c *Call) (any, error) {
	var vpc, vswitch, ip string
	var err error
	if c.Params["VSwitchId"] != "" {
		v, err := vSwitchParam(c, "VSwitchId")
		if err != nil {
			return nil, err
		}
		vpc, vswitch = v.VpcID, v.VSwitchID
		if ip, err = c.Params.ipv4("IpAddress", false); err != nil {
			return nil, err
		}
		if ip, err = addressInVSwitch(c, v, ip); err != nil {
			return nil, err
		}
	} else {
		if vpc, err = c.Params.required("VpcId"); err != nil {
			return nil, err
		}
		if ip, err = c.Params.ipv4("IpAddress", true); err != nil {
			return nil, err
		}
	}
	name, _, err := c.Params.text("Name", 1, 128, true, true)
	if err != nil {
		return nil, err
	}
	description, _, err := c.Params.text("Description", 1, 256, true, false)
	if err != nil {
		return nil, err
	}
	group, err := resourceGroupParam(c)
	if err != nil {
		return nil, err
	}
	tags, err := c.Params.tagPairs("Tag")
	if err != nil {
		return nil, err
	}
	h := &HaVip{HaVipID: idParam(c.Params, "HaVipId", "havip"), Region: s.region(c), VpcID: vpc, IPAddress: ip, Status: "Available",
		ResourceGroupID: group, Tags: tags, VSwitchID: vswitch, Name: name, Description: description, CreatedAt: c.Now}
	if ok, err := exists(c.Tx, KindHaVip, h.HaVipID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	return struct {
		HaVipID   string `json:"HaVipId"`
		IPAddress string `json:"IpAddress"`
	}{h.HaVipID, h.IPAddress}, put(c.Tx, KindHaVip, h.HaVipID, h)
}

// addressInVSwitch checks that want is a usable address of the vSwitch held by no
// other HaVip or ENI, or with want empty picks the first such one.
func addressInVSwitch(c *Call, v *VSwitch, want string) (string, error) {
	taken := map[string]bool{}
	havips, err := list[HaVip](c.Tx, KindHaVip)
	if err != nil {
		return "", err
	}
	for _, h := range havips {
		if h.VpcID == v.VpcID {
			taken[h.IPAddress] = true
		}
	}
	enis, err := list[ENI](c.Tx, KindENI)
	if err != nil {
		return "", err
	}
	for _, e := range enis {
		if e.VpcID == v.VpcID {
			taken[e.PrimaryIP] = true
			for _, ip := range e.SecondaryIPs {
				taken[ip] = true
			}
		}
	}
	if want != "" {
		if !v.usable(netip.MustParseAddr(want)) {
			return "", errIPNotInVSwitch
		}
		if taken[want] {
			return "", badRequest("InvalidIpAddress.AlreadyUsed", "The specified IpAddress is already used in the VPC.")
		}
		return want, nil
	}
	block := netip.MustParsePrefix(v.CidrBlock)
	for a := block.Addr(); block.Contains(a); a = a.Next() {
		if v.usable(a) && !taken[a.String()] {
			return a.String(), nil
		}
	}
	return "", errVSwitchFull
}

func haVipParam(c *Call, name string) (*HaVip, error) {
	id, err := c.Params.required(name)
	if err != nil {
		return nil, err
	}
	h, err := get[HaVip](c.Tx, KindHaVip, id)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, notFound("HaVip", id)
	}
	return h, nil
}

func (s *Service) associateHaVip(c *Call) (any, error) {
	h, err := haVipParam(c, "HaVipId")
	if err != nil {
		return nil, err
	}
	in, err := instanceParam(c)
	if err != nil {
		return nil, err
	}
	if in.VpcID != h.VpcID {
		return nil, badRequest("InvalidParameter.Mismatch", "The HaVip and the instance are not in the same VPC.")
	}
	if !slices.Contains(h.Instances, in.InstanceID) {
		h.Instances = append(h.Instances, in.InstanceID)
	}
	h.Status = "InUse"
	return struct{}{}, put(c.Tx, KindHaVip, h.HaVipID, h)
}

func (s *Service) registerLoadBalancer(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	ip, err := c.Params.ipv4("Address", true)
	if err != nil {
		return nil, err
	}
	mac, err := macParam(c.Params, "MacAddress")
	if err != nil {
		return nil, err
	}
	lb := &SLB{LoadBalancerID: idParam(c.Params, "LoadBalancerId", "lb"), Region: s.region(c), VpcID: vpc, Address: ip, MacAddress: mac}
	if ok, err := exists(c.Tx, KindSLB, lb.LoadBalancerID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	return struct {
		LoadBalancerID string `json:"LoadBalancerId"`
	}{lb.LoadBalancerID}, put(c.Tx, KindSLB, lb.LoadBalancerID, lb)
}

func (s *Service) createNatGateway(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	name, _, err := c.Params.natGatewayName()
	if err != nil {
		return nil, err
	}
	description, _, err := c.Params.natGatewayDescription()
	if err != nil {
		return nil, err
	}
	tags, err := c.Params.tagPairs("Tag")
	if err != nil {
		return nil, err
	}
	// The cloud creates Enhanced NAT gateways, on the internet, pay-as-you-go; eipgw's
	// is one of those, billed by nothing: other values are refused, not ignored.
	if _, err := c.Params.oneOf("NatType", "Enhanced", "Enhanced"); err != nil {
		return nil, err
	}
	if _, err := c.Params.oneOf("NetworkType", "internet", "internet"); err != nil {
		return nil, err
	}
	if _, err := c.Params.oneOf("InstanceChargeType", "PostPaid", "PostPaid"); err != nil {
		return nil, err
	}
	charge, err := c.Params.oneOf("InternetChargeType", "PayByLcu", "PayByLcu", "PayBySpec")
	if err != nil {
		return nil, err
	}
	var vswitch string
	if c.Params["VSwitchId"] != "" {
		v, err := vSwitchParam(c, "VSwitchId")
		if err != nil {
			return nil, err
		}
		if v.VpcID != vpc {
			return nil, badRequest("InvalidParameter.Mismatch", "The vSwitch is not in the VPC.")
		}
		vswitch = v.VSwitchID
	}
	g := &NatGateway{NatGatewayID: idParam(c.Params, "NatGatewayId", "ngw"), Region: s.region(c), VpcID: vpc, Name: name,
		Description: description, Tags: tags, InternetChargeType: charge, VSwitchID: vswitch}
	if ok, err := exists(c.Tx, KindNAT, g.NatGatewayID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	resp := struct {
		NatGatewayID string `json:"NatGatewayId"`
		SnatTableIDs struct {
			SnatTableID []string `json:"SnatTableId"`
		} `json:"SnatTableIds"`
		ForwardTableIDs struct {
			ForwardTableID []string `json:"ForwardTableId"`
		} `json:"ForwardTableIds"`
	}{NatGatewayID: g.NatGatewayID}
	snat, fwd := natTables(g)
	resp.SnatTableIDs.SnatTableID = []string{snat}
	resp.ForwardTableIDs.ForwardTableID = []string{fwd}
	return resp, put(c.Tx, KindNAT, g.NatGatewayID, g)
}

func macParam(p Params, name string) (string, error) {
	v := strings.TrimSpace(p[name])
	if v == "" {
		return "", nil
	}
	mac, err := net.ParseMAC(v)
	if err != nil || len(mac) != 6 {
		return "", invalid(name, v)
	}
	return mac.String(), nil
}

// Listing and removing the inventory, with the cloud's action names (ECS and CLB
// actions in the cloud). A removal is refused while an EIP, a HaVip or a forward entry
// uses the resource; the codes are eipgw's (docs/api.md).
func init() {
	register("DescribeInstances", false, (*Service).describeInstances)
	register("DeleteInstance", true, (*Service).deleteInstance)
	register("DescribeNetworkInterfaces", false, (*Service).describeENIs)
	register("DeleteNetworkInterface", true, (*Service).deleteENI)
	register("DescribeLoadBalancers", false, (*Service).describeLoadBalancers)
	register("DeleteLoadBalancer", true, (*Service).deleteLoadBalancer)
}

var (
	errUsedByEip     = badRequest("DependencyViolation.Eip", "An EIP is associated with the resource: disassociate it first.")
	errUsedByHaVip   = badRequest("DependencyViolation.HaVip", "A HaVip is associated with the instance: unassociate it first.")
	errUsedByForward = badRequest("DependencyViolation.ForwardEntry", "A forward entry sends to the resource's address: delete it first.")
	errPrimaryENI    = badRequest("InvalidOperation.EniType", "A primary ENI is removed with its instance (DeleteInstance).")
	errENIAttached   = badRequest("InvalidOperation.InvalidEniState", "The ENI is attached to an instance: detach it first.")
)

// refuseIfUsed refuses a removal while an EIP is associated with (instanceType, id)
// or a forward entry sends to one of addrs.
func refuseIfUsed(c *Call, instanceType, id string, addrs []string) error {
	if ids, err := eipIDsOn(c.Tx, instanceType, id); err != nil || len(ids) > 0 {
		return firstErr(err, errUsedByEip)
	}
	fwds, err := list[ForwardEntry](c.Tx, KindForward)
	if err != nil {
		return err
	}
	for _, f := range fwds {
		if slices.Contains(addrs, f.InternalIP) {
			return errUsedByForward
		}
	}
	return nil
}

// ecsIDs reads the ECS style of an ID list: a JSON array in one parameter
// (InstanceIds='["i-1","i-2"]'), up to 100; nil when absent.
func ecsIDs(p Params, name string) (map[string]bool, error) {
	v := strings.TrimSpace(p[name])
	if v == "" {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal([]byte(v), &ids); err != nil || len(ids) > 100 {
		return nil, invalid(name, v)
	}
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

type instanceView struct {
	InstanceID    string `json:"InstanceId"`
	RegionID      string `json:"RegionId"`
	Status        string `json:"Status"`
	VpcAttributes struct {
		VpcID            string `json:"VpcId"`
		PrivateIPAddress struct {
			IPAddress []string `json:"IpAddress"`
		} `json:"PrivateIpAddress"`
	} `json:"VpcAttributes"`
	PublicIPAddress struct {
		IPAddress []string `json:"IpAddress"`
	} `json:"PublicIpAddress"`
	EipAddress struct {
		AllocationID string `json:"AllocationId"`
		IPAddress    string `json:"IpAddress"`
	} `json:"EipAddress"`
	NetworkInterfaces struct {
		NetworkInterface []instanceENIView `json:"NetworkInterface"`
	} `json:"NetworkInterfaces"`
}

type instanceENIView struct {
	NetworkInterfaceID string `json:"NetworkInterfaceId"`
	Type               string `json:"Type"`
	PrimaryIPAddress   string `json:"PrimaryIpAddress"`
	MacAddress         string `json:"MacAddress"`
}

func eniType(e *ENI) string {
	if e.Primary {
		return "Primary"
	}
	return "Secondary"
}

// enisOf lists the ENIs attached to an instance, the primary one first.
func enisOf(c *Call, instanceID string) ([]*ENI, error) {
	all, err := list[ENI](c.Tx, KindENI)
	if err != nil {
		return nil, err
	}
	var out []*ENI
	for _, e := range all {
		if e.InstanceID == instanceID {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Primary && !out[j].Primary })
	return out, nil
}

// describeInstances lists the registered instances of the region (InstanceIds,
// VpcId and Status filter them), with their ENIs and EIP.
func (s *Service) describeInstances(c *Call) (any, error) {
	ids, err := ecsIDs(c.Params, "InstanceIds")
	if err != nil {
		return nil, err
	}
	all, err := list[Instance](c.Tx, KindInstance)
	if err != nil {
		return nil, err
	}
	region, match := s.region(c), c.Params.matches
	var rows []instanceView
	for _, in := range all {
		if in.Region != region || (ids != nil && !ids[in.InstanceID]) || !match("VpcId", in.VpcID) || !match("Status", in.Status) {
			continue
		}
		v := instanceView{InstanceID: in.InstanceID, RegionID: in.Region, Status: in.Status}
		v.VpcAttributes.VpcID = in.VpcID
		v.VpcAttributes.PrivateIPAddress.IPAddress = []string{}
		v.PublicIPAddress.IPAddress = []string{}
		if in.PublicIPAddress != "" {
			v.PublicIPAddress.IPAddress = []string{in.PublicIPAddress}
		}
		enis, err := enisOf(c, in.InstanceID)
		if err != nil {
			return nil, err
		}
		v.NetworkInterfaces.NetworkInterface = []instanceENIView{}
		for _, e := range enis {
			if e.Primary {
				v.VpcAttributes.PrivateIPAddress.IPAddress = []string{e.PrimaryIP}
			}
			v.NetworkInterfaces.NetworkInterface = append(v.NetworkInterfaces.NetworkInterface,
				instanceENIView{NetworkInterfaceID: e.ENIID, Type: eniType(e), PrimaryIPAddress: e.PrimaryIP, MacAddress: e.MacAddress})
		}
		eips, err := eipsOn(c.Tx, TypeEcs, in.InstanceID)
		if err != nil {
			return nil, err
		}
		if len(eips) > 0 {
			v.EipAddress.AllocationID, v.EipAddress.IPAddress = eips[0].AllocationID, eips[0].IPAddress
		}
		rows = append(rows, v)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].InstanceID < rows[j].InstanceID })
	return page(c, "Instances", "Instance", rows)
}

// deleteInstance removes an instance and its primary ENI; secondary ENIs are detached
// and kept, as the cloud does.
func (s *Service) deleteInstance(c *Call) (any, error) {
	in, err := instanceParam(c)
	if err != nil {
		return nil, err
	}
	enis, err := enisOf(c, in.InstanceID)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range enis {
		if e.Primary {
			addrs = append(append(addrs, e.PrimaryIP), e.SecondaryIPs...)
			if ids, err := eipIDsOn(c.Tx, TypeENI, e.ENIID); err != nil || len(ids) > 0 {
				return nil, firstErr(err, errUsedByEip)
			}
		}
	}
	if err := refuseIfUsed(c, TypeEcs, in.InstanceID, addrs); err != nil {
		return nil, err
	}
	havips, err := list[HaVip](c.Tx, KindHaVip)
	if err != nil {
		return nil, err
	}
	for _, h := range havips {
		if slices.Contains(h.Instances, in.InstanceID) {
			return nil, errUsedByHaVip
		}
	}
	for _, e := range enis {
		if e.Primary {
			if err := c.Tx.Delete(KindENI, e.ENIID); err != nil {
				return nil, err
			}
			continue
		}
		e.InstanceID = ""
		if err := put(c.Tx, KindENI, e.ENIID, e); err != nil {
			return nil, err
		}
	}
	if err := c.Tx.Delete(KindInstance, in.InstanceID); err != nil {
		return nil, err
	}
	return struct{}{}, bumpInventoryGeneration(c.Tx)
}

type eniView struct {
	NetworkInterfaceID string `json:"NetworkInterfaceId"`
	RegionID           string `json:"RegionId"`
	VpcID              string `json:"VpcId"`
	InstanceID         string `json:"InstanceId"`
	Type               string `json:"Type"`
	Status             string `json:"Status"`
	MacAddress         string `json:"MacAddress"`
	PrivateIPAddress   string `json:"PrivateIpAddress"`
	PrivateIPSets      struct {
		PrivateIPSet []eniAddressView `json:"PrivateIpSet"`
	} `json:"PrivateIpSets"`
	AssociatedPublicIP struct {
		PublicIPAddress string `json:"PublicIpAddress"`
		AllocationID    string `json:"AllocationId"`
	} `json:"AssociatedPublicIp"`
}

type eniAddressView struct {
	PrivateIPAddress string `json:"PrivateIpAddress"`
	Primary          bool   `json:"Primary"`
}

// describeENIs lists the region's ENIs (NetworkInterfaceId.N, InstanceId, VpcId and
// Type filter them).
func (s *Service) describeENIs(c *Call) (any, error) {
	ids := c.Params.list("NetworkInterfaceId")
	all, err := list[ENI](c.Tx, KindENI)
	if err != nil {
		return nil, err
	}
	region, match := s.region(c), c.Params.matches
	var rows []eniView
	for _, e := range all {
		if e.Region != region || (len(ids) > 0 && !slices.Contains(ids, e.ENIID)) || !match("InstanceId", e.InstanceID) ||
			!match("VpcId", e.VpcID) || !match("Type", eniType(e)) {
			continue
		}
		v := eniView{NetworkInterfaceID: e.ENIID, RegionID: e.Region, VpcID: e.VpcID, InstanceID: e.InstanceID, Type: eniType(e),
			Status: "Available", MacAddress: e.MacAddress, PrivateIPAddress: e.PrimaryIP}
		if e.InstanceID != "" {
			v.Status = StatusInUse
		}
		v.PrivateIPSets.PrivateIPSet = []eniAddressView{{PrivateIPAddress: e.PrimaryIP, Primary: true}}
		for _, ip := range e.SecondaryIPs {
			v.PrivateIPSets.PrivateIPSet = append(v.PrivateIPSets.PrivateIPSet, eniAddressView{PrivateIPAddress: ip})
		}
		eips, err := eipsOn(c.Tx, TypeENI, e.ENIID)
		if err != nil {
			return nil, err
		}
		if len(eips) > 0 {
			v.AssociatedPublicIP.PublicIPAddress, v.AssociatedPublicIP.AllocationID = eips[0].IPAddress, eips[0].AllocationID
		}
		rows = append(rows, v)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].NetworkInterfaceID < rows[j].NetworkInterfaceID })
	return page(c, "NetworkInterfaceSets", "NetworkInterfaceSet", rows)
}

// deleteENI removes a secondary ENI that is detached and used by no EIP or entry.
func (s *Service) deleteENI(c *Call) (any, error) {
	e, err := eniParam(c)
	if err != nil {
		return nil, err
	}
	if e.Primary {
		return nil, errPrimaryENI
	}
	if e.InstanceID != "" {
		return nil, errENIAttached
	}
	if err := refuseIfUsed(c, TypeENI, e.ENIID, append([]string{e.PrimaryIP}, e.SecondaryIPs...)); err != nil {
		return nil, err
	}
	if err := c.Tx.Delete(KindENI, e.ENIID); err != nil {
		return nil, err
	}
	return struct{}{}, bumpInventoryGeneration(c.Tx)
}

type loadBalancerView struct {
	LoadBalancerID     string `json:"LoadBalancerId"`
	RegionID           string `json:"RegionId"`
	VpcID              string `json:"VpcId"`
	Address            string `json:"Address"`
	AddressType        string `json:"AddressType"`
	NetworkType        string `json:"NetworkType"`
	LoadBalancerStatus string `json:"LoadBalancerStatus"`
}

// describeLoadBalancers lists the region's load balancers (LoadBalancerId, a comma
// list, VpcId and Address filter them).
func (s *Service) describeLoadBalancers(c *Call) (any, error) {
	ids, err := c.Params.commaSet("LoadBalancerId", 100)
	if err != nil {
		return nil, err
	}
	all, err := list[SLB](c.Tx, KindSLB)
	if err != nil {
		return nil, err
	}
	region, match := s.region(c), c.Params.matches
	var rows []loadBalancerView
	for _, lb := range all {
		if lb.Region != region || (ids != nil && !ids[lb.LoadBalancerID]) || !match("VpcId", lb.VpcID) || !match("Address", lb.Address) {
			continue
		}
		rows = append(rows, loadBalancerView{LoadBalancerID: lb.LoadBalancerID, RegionID: lb.Region, VpcID: lb.VpcID,
			Address: lb.Address, AddressType: "intranet", NetworkType: "vpc", LoadBalancerStatus: "active"})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].LoadBalancerID < rows[j].LoadBalancerID })
	return page(c, "LoadBalancers", "LoadBalancer", rows)
}

// deleteLoadBalancer removes a load balancer no EIP or forward entry uses.
func (s *Service) deleteLoadBalancer(c *Call) (any, error) {
	id, err := c.Params.required("LoadBalancerId")
	if err != nil {
		return nil, err
	}
	lb, err := get[SLB](c.Tx, KindSLB, id)
	if err != nil {
		return nil, err
	}
	if lb == nil {
		return nil, notFound("LoadBalancer", id)
	}
	if err := refuseIfUsed(c, TypeSLB, lb.LoadBalancerID, []string{lb.Address}); err != nil {
		return nil, err
	}
	if err := c.Tx.Delete(KindSLB, lb.LoadBalancerID); err != nil {
		return nil, err
	}
	return struct{}{}, bumpInventoryGeneration(c.Tx)
}
