package model

import (
	"net"
	"slices"
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
	ips := c.Params.list("PrivateIpAddress")
	if len(ips) == 0 {
		return nil, missing("PrivateIpAddress.1")
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

func (s *Service) createHaVip(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	ip, err := c.Params.ipv4("IpAddress", true)
	if err != nil {
		return nil, err
	}
	h := &HaVip{HaVipID: idParam(c.Params, "HaVipId", "havip"), Region: s.region(c), VpcID: vpc, IPAddress: ip, Status: "Available"}
	if ok, err := exists(c.Tx, KindHaVip, h.HaVipID); err != nil || ok {
		return nil, firstErr(err, errAlreadyExists)
	}
	return struct {
		HaVipID   string `json:"HaVipId"`
		IPAddress string `json:"IpAddress"`
	}{h.HaVipID, h.IPAddress}, put(c.Tx, KindHaVip, h.HaVipID, h)
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
	g := &NatGateway{NatGatewayID: idParam(c.Params, "NatGatewayId", "ngw"), Region: s.region(c), VpcID: vpc, Name: name,
		Description: description}
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
