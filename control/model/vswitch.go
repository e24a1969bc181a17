package model

import (
	"net/http"
	"net/netip"
	"sort"
	"time"
)

// vSwitches: a VPC's subnets, with the cloud's actions. eipgw uses them where the cloud
// names a vSwitch: a HaVip is created in one (its address from the vSwitch's block),
// a SNAT entry's SourceVSwitchId is the vSwitch's block, a NAT gateway sits in one.
func init() {
	register("CreateVSwitch", true, (*Service).createVSwitch)
	register("DescribeVSwitches", false, (*Service).describeVSwitches)
	register("DeleteVSwitch", true, (*Service).deleteVSwitch)
}

// KindVSwitch holds the vSwitches.
const KindVSwitch = "vswitch"

// VSwitch is a subnet of a VPC.
type VSwitch struct {
	VSwitchID   string    `json:"vswitch_id"`
	Region      string    `json:"region"`
	VpcID       string    `json:"vpc_id"`
	ZoneID      string    `json:"zone_id"`
	CidrBlock   string    `json:"cidr_block"`
	Name        string    `json:"name,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

var (
	errCidrMalformed  = badRequest("InvalidCidrBlock.Malformed", "The specified CidrBlock is not a valid IPv4 block of /16 to /29.")
	errCidrOverlapped = badRequest("InvalidCidrBlock.Overlapped", "The specified CidrBlock overlaps another vSwitch of the VPC.")
	errVSwitchInUse   = badRequest("DependencyViolation", "The vSwitch is used by a HaVip, a NAT gateway or a SNAT entry: remove them first.")
	errIPNotInVSwitch = badRequest("InvalidIpAddress.NotInVSwitch", "The specified IpAddress is not in the vSwitch's CIDR block.")
	errVSwitchFull    = badRequest("QuotaExceeded.PrivateIp", "No private address is left in the vSwitch.")
)

// usable is the block's addresses a resource may be given: the cloud reserves the
// first and the last three of every vSwitch.
func (v *VSwitch) usable(a netip.Addr) bool {
	p := netip.MustParsePrefix(v.CidrBlock)
	if !p.Contains(a) {
		return false
	}
	first := p.Masked().Addr()
	last := first
	for i := 0; i < 1<<(32-p.Bits())-1; i++ {
		last = last.Next()
	}
	return a != first && a != last && a != last.Prev() && a != last.Prev().Prev()
}

func (s *Service) createVSwitch(c *Call) (any, error) {
	vpc, err := c.Params.required("VpcId")
	if err != nil {
		return nil, err
	}
	zone, err := c.Params.required("ZoneId")
	if err != nil {
		return nil, err
	}
	raw, err := c.Params.required("CidrBlock")
	if err != nil {
		return nil, err
	}
	block, err := netip.ParsePrefix(raw)
	if err != nil || !block.Addr().Is4() || block.Bits() < 16 || block.Bits() > 29 || block.Masked() != block {
		return nil, errCidrMalformed
	}
	name, _, err := c.Params.text("VSwitchName", 1, 128, true, true)
	if err != nil {
		return nil, err
	}
	description, _, err := c.Params.text("Description", 1, 256, true, false)
	if err != nil {
		return nil, err
	}
	v := &VSwitch{VSwitchID: idParam(c.Params, "VSwitchId", "vsw"), Region: s.region(c), VpcID: vpc, ZoneID: zone,
		CidrBlock: block.String(), Name: name, Description: description, CreatedAt: c.Now}
	all, err := list[VSwitch](c.Tx, KindVSwitch)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.VSwitchID == v.VSwitchID {
			return nil, errAlreadyExists
		}
		if o.VpcID == vpc && netip.MustParsePrefix(o.CidrBlock).Overlaps(block) {
			return nil, errCidrOverlapped
		}
	}
	return struct {
		VSwitchID string `json:"VSwitchId"`
	}{v.VSwitchID}, put(c.Tx, KindVSwitch, v.VSwitchID, v)
}

// vSwitchParam finds the vSwitch the parameter name names.
func vSwitchParam(c *Call, name string) (*VSwitch, error) {
	id, err := c.Params.required(name)
	if err != nil {
		return nil, err
	}
	return vSwitchByID(c, id)
}

func vSwitchByID(c *Call, id string) (*VSwitch, error) {
	v, err := get[VSwitch](c.Tx, KindVSwitch, id)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fail(http.StatusNotFound, "InvalidVSwitchId.NotFound", "The specified vSwitch %q does not exist.", id)
	}
	return v, nil
}

type vSwitchView struct {
	VSwitchID   string `json:"VSwitchId"`
	VpcID       string `json:"VpcId"`
	ZoneID      string `json:"ZoneId"`
	CidrBlock   string `json:"CidrBlock"`
	VSwitchName string `json:"VSwitchName"`
	Description string `json:"Description"`
	Status      string `json:"Status"`
	// CreationTime is RFC 3339, as the cloud gives it.
	CreationTime string `json:"CreationTime"`
	IsDefault    bool   `json:"IsDefault"`
}

func (s *Service) describeVSwitches(c *Call) (any, error) {
	all, err := list[VSwitch](c.Tx, KindVSwitch)
	if err != nil {
		return nil, err
	}
	region, match := s.region(c), c.Params.matches
	var rows []vSwitchView
	for _, v := range all {
		if v.Region != region || !match("VSwitchId", v.VSwitchID) || !match("VpcId", v.VpcID) || !match("ZoneId", v.ZoneID) ||
			!match("VSwitchName", v.Name) {
			continue
		}
		rows = append(rows, vSwitchView{VSwitchID: v.VSwitchID, VpcID: v.VpcID, ZoneID: v.ZoneID, CidrBlock: v.CidrBlock,
			VSwitchName: v.Name, Description: v.Description, Status: StatusAvailable,
			CreationTime: v.CreatedAt.UTC().Format(time.RFC3339)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].VSwitchID < rows[j].VSwitchID })
	return page(c, "VSwitches", "VSwitch", rows)
}

// deleteVSwitch removes a vSwitch no HaVip, NAT gateway or SNAT entry uses.
func (s *Service) deleteVSwitch(c *Call) (any, error) {
	v, err := vSwitchParam(c, "VSwitchId")
	if err != nil {
		return nil, err
	}
	havips, err := list[HaVip](c.Tx, KindHaVip)
	if err != nil {
		return nil, err
	}
	for _, h := range havips {
		if h.VSwitchID == v.VSwitchID {
			return nil, errVSwitchInUse
		}
	}
	gws, err := list[NatGateway](c.Tx, KindNAT)
	if err != nil {
		return nil, err
	}
	for _, g := range gws {
		if g.VSwitchID == v.VSwitchID {
			return nil, errVSwitchInUse
		}
	}
	snats, err := list[SnatEntry](c.Tx, KindSnat)
	if err != nil {
		return nil, err
	}
	for _, e := range snats {
		if e.SourceVSwitchID == v.VSwitchID {
			return nil, errVSwitchInUse
		}
	}
	return struct{}{}, c.Tx.Delete(KindVSwitch, v.VSwitchID)
}
