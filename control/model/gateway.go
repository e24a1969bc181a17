package model

import (
	"net"
	"net/netip"
	"slices"
)

func init() {
	register("DescribeEipGatewayInfo", false, (*Service).describeGatewayInfo)
}

// eipInfo is one EIP of a multi-EIP cut-through ENI as DescribeEipGatewayInfo gives it:
// what the instance configures on the ENI.
type eipInfo struct {
	IP     string `json:"Ip"`
	IPGw   string `json:"IpGw"`
	IPMask string `json:"IpMask"`
}

// describeGatewayInfo answers for an ENI (InstanceId) with MULTI_BINDED EIPs, as the
// reference documents, and for a BINDED one too (what its instance needs is the
// same): each EIP with its gateway and mask. The gateway is the EIP
// gateway's address on the VPC side; the mask is that of the pool the EIP is from.
func (s *Service) describeGatewayInfo(c *Call) (any, error) {
	id, err := c.Params.required("InstanceId")
	if err != nil {
		return nil, err
	}
	eni, err := get[ENI](c.Tx, KindENI, id)
	if err != nil {
		return nil, err
	}
	if eni == nil {
		return nil, notFound("NetworkInterface", id)
	}
	eips, err := eipsOn(c.Tx, TypeENI, id)
	if err != nil {
		return nil, err
	}
	resp := struct {
		EipInfos struct {
			EipInfo []eipInfo `json:"EipInfo"`
		} `json:"EipInfos"`
	}{}
	resp.EipInfos.EipInfo = []eipInfo{}
	for _, e := range eips {
		if (e.Mode != ModeMulti && e.Mode != ModeBinded) || e.Owner != c.Account {
			continue
		}
		a := netip.MustParseAddr(e.IPAddress)
		info := eipInfo{IP: e.IPAddress}
		if s.EIPGateway.IsValid() {
			info.IPGw = s.EIPGateway.String()
		}
		for _, p := range s.Pool {
			if p.Contains(a) {
				info.IPMask = net.IP(net.CIDRMask(p.Bits(), 32)).String()
			}
		}
		resp.EipInfos.EipInfo = append(resp.EipInfos.EipInfo, info)
	}
	slices.SortFunc(resp.EipInfos.EipInfo, func(a, b eipInfo) int {
		return netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP))
	})
	return resp, nil
}
