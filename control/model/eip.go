package model

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"
)

func init() {
	register("AllocateEipAddress", true, (*Service).allocate)
	register("ReleaseEipAddress", true, (*Service).release)
	register("ModifyEipAddressAttribute", true, (*Service).modify)
	register("DescribeEipAddresses", false, (*Service).describe)
	register("DescribeRegions", false, (*Service).describeRegions)
	register("DeletionProtection", true, (*Service).deletionProtection)
}

var errDeletionProtected = badRequest("InvalidOperation.DeletionProtection",
	"The instance cannot be deleted because of deletion protection.")

// The line every EIP here is on, and its network type: one gateway, one BGP line.
const (
	eipISP     = "BGP"
	eipNetmode = "public"
)

// bandwidthRange is the Bandwidth range of a charge type, in Mbit/s.
func bandwidthRange(chargeType string) (int, int) {
	if chargeType == "PayByBandwidth" {
		return 1, 500
	}
	return 1, 200
}

func bandwidthParam(p Params, chargeType string, def int) (int, error) {
	lo, hi := bandwidthRange(chargeType)
	v, ok := p["Bandwidth"]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, errBandwidth
	}
	return n, nil
}

// ownEIP finds the EIP AllocationId names, the caller's; another account's EIP does
// not exist for it.
func ownEIP(c *Call) (*EIP, error) { return ownEIPNamed(c, "AllocationId") }

// ownEIPNamed is ownEIP for an action that names the EIP in another parameter.
func ownEIPNamed(c *Call, param string) (*EIP, error) {
	id, err := c.Params.required(param)
	if err != nil {
		return nil, err
	}
	return ownEIPByID(c, id)
}

// ownEIPByID finds the caller's EIP of that AllocationId.
func ownEIPByID(c *Call, id string) (*EIP, error) {
	e, err := get[EIP](c.Tx, KindEIP, id)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Owner != c.Account {
		return nil, errEipNotFound
	}
	return e, nil
}

type allocateResponse struct {
	AllocationID string `json:"AllocationId"`
	EipAddress   string `json:"EipAddress"`
}

func (s *Service) allocate(c *Call) (any, error) {
	charge, err := c.Params.oneOf("InternetChargeType", "PayByTraffic", "PayByTraffic", "PayByBandwidth")
	if err != nil {
		return nil, err
	}
	instanceCharge, err := c.Params.oneOf("InstanceChargeType", "PostPaid", "PostPaid", "PrePaid")
	if err != nil {
		return nil, err
	}
	bw, err := bandwidthParam(c.Params, charge, 5)
	if err != nil {
		return nil, err
	}
	want, err := c.Params.ipv4("IpAddress", false)
	if err != nil {
		return nil, err
	}
	name, _, err := c.Params.eipName()
	if err != nil {
		return nil, err
	}
	description, _, err := c.Params.eipDescription()
	if err != nil {
		return nil, err
	}
	group, err := resourceGroupParam(c)
	if err != nil {
		return nil, err
	}
	ip, err := s.pickAddress(c, want)
	if err != nil {
		return nil, err
	}
	if isp := c.Params["ISP"]; isp != "" && isp != eipISP {
		return nil, invalid("ISP", isp)
	}
	e := &EIP{AllocationID: newID("eip"), IPAddress: ip, Owner: c.Account, Region: s.Region, Status: StatusAvailable,
		Bandwidth: bw, InternetChargeType: charge, InstanceChargeType: instanceCharge,
		Name: name, Description: description, AllocatedAt: c.Now, ResourceGroupID: group}
	if err := saveEIP(c.Tx, nil, e); err != nil {
		return nil, err
	}
	return allocateResponse{AllocationID: e.AllocationID, EipAddress: e.IPAddress}, nil
}

// pickAddress returns want when the caller may have it (free, or released by the
// caller within the recovery window), or else the lowest free address of the pool.
// A released address is nobody else's until its window ends. Each candidate costs two
// index lookups, so finding a free address walks past the used ones at the pool's
// start.
func (s *Service) pickAddress(c *Call, want string) (string, error) {
	// held returns the release record keeping ip, forgetting one whose window ended.
	held := func(ip string) (*Released, error) {
		r, err := get[Released](c.Tx, KindReleased, ip)
		if err != nil || r == nil {
			return nil, err
		}
		if !c.Now.Before(r.Until) {
			return nil, c.Tx.Delete(KindReleased, ip)
		}
		return r, nil
	}
	taken := func(ip string) (bool, error) {
		v, err := c.Tx.Get(kindEIPByIP, ip)
		return v != nil, err
	}
	if want != "" {
		if !s.inPool(netip.MustParseAddr(want)) {
			return "", errIPNotRecoverable
		}
		if t, err := taken(want); err != nil || t {
			return "", firstErr(err, errIPNotRecoverable)
		}
		r, err := held(want)
		if err != nil {
			return "", err
		}
		if r != nil {
			if r.Owner != c.Account {
				return "", errIPNotRecoverable
			}
			if err := c.Tx.Delete(KindReleased, want); err != nil {
				return "", err
			}
		}
		return want, nil
	}
	for _, p := range s.Pool {
		for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
			if p.Bits() < 31 && (a == p.Masked().Addr() || !p.Contains(a.Next())) {
				continue // network and broadcast addresses
			}
			ip := a.String()
			t, err := taken(ip)
			if err != nil {
				return "", err
			}
			if t {
				continue
			}
			r, err := held(ip)
			if err != nil {
				return "", err
			}
			if r == nil {
				return ip, nil
			}
		}
	}
	return "", errPoolExhausted
}

func (s *Service) inPool(a netip.Addr) bool {
	for _, p := range s.Pool {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *Service) release(c *Call) (any, error) {
	e, err := ownEIP(c)
	if err != nil {
		return nil, err
	}
	if e.DeletionProtection {
		return nil, errDeletionProtected
	}
	if e.Status != StatusAvailable || e.BandwidthPackageID != "" {
		return nil, errIncorrectEip // in a package: RemoveCommonBandwidthPackageIp first
	}
	if err := saveEIP(c.Tx, e, nil); err != nil {
		return nil, err
	}
	if err := dropTraffic(c.Tx, e.AllocationID); err != nil {
		return nil, err
	}
	r := &Released{IPAddress: e.IPAddress, Owner: e.Owner, Until: c.Now.Add(recoverWindow)}
	if err := put(c.Tx, KindReleased, r.IPAddress, r); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (s *Service) modify(c *Call) (any, error) {
	e, err := ownEIP(c)
	if err != nil {
		return nil, err
	}
	old := *e // its index entries (the bandwidth's) change with it
	if e.Bandwidth, err = bandwidthParam(c.Params, e.InternetChargeType, e.Bandwidth); err != nil {
		return nil, err
	}
	if e.BandwidthPackageID != "" && e.Bandwidth != old.Bandwidth {
		return nil, errEipInPackage
	}
	if v, ok, err := c.Params.eipName(); err != nil {
		return nil, err
	} else if ok {
		e.Name = v
	}
	if v, ok, err := c.Params.eipDescription(); err != nil {
		return nil, err
	} else if ok {
		e.Description = v
	}
	if err := saveEIP(c.Tx, &old, e); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// EipAddressView is one EIP in DescribeEipAddresses, with the SDK's field names.
type EipAddressView struct {
	AllocationID       string `json:"AllocationId"`
	IPAddress          string `json:"IpAddress"`
	RegionID           string `json:"RegionId"`
	Status             string `json:"Status"`
	Bandwidth          string `json:"Bandwidth"`
	InternetChargeType string `json:"InternetChargeType"`
	ChargeType         string `json:"ChargeType"`
	Name               string `json:"Name"`
	Description        string `json:"Description"`
	// The official SDK's EipAddress struct spells the field this way; both are sent.
	DescriptionSDK     string `json:"Descritpion"`
	AllocationTime     string `json:"AllocationTime"`
	InstanceType       string `json:"InstanceType"`
	InstanceID         string `json:"InstanceId"`
	PrivateIPAddress   string `json:"PrivateIpAddress"`
	Mode               string `json:"Mode"`
	ISP                string `json:"ISP"`
	Netmode            string `json:"Netmode"`
	ResourceGroupID    string `json:"ResourceGroupId"`
	DeletionProtection bool   `json:"DeletionProtection"`
	// In a bandwidth package, Bandwidth is the package's (or the EIP's cap in it) and
	// EipBandwidth the EIP's own; outside one, these are empty.
	BandwidthPackageID        string `json:"BandwidthPackageId"`
	BandwidthPackageType      string `json:"BandwidthPackageType"`
	BandwidthPackageBandwidth string `json:"BandwidthPackageBandwidth"`
	EipBandwidth              string `json:"EipBandwidth,omitempty"`
	Tags                      struct {
		Tag []tagView `json:"Tag"`
	} `json:"Tags"`
	// No EIP here has high-definition monitoring or a DDoS protection edition.
	HDMonitorStatus         string `json:"HDMonitorStatus"`
	SecurityProtectionTypes struct {
		SecurityProtectionType []string `json:"SecurityProtectionType"`
	} `json:"SecurityProtectionTypes"`
}

type describeResponse struct {
	TotalCount   int `json:"TotalCount"`
	PageNumber   int `json:"PageNumber"`
	PageSize     int `json:"PageSize"`
	EipAddresses struct {
		EipAddress []EipAddressView `json:"EipAddress"`
	} `json:"EipAddresses"`
}

func (s *Service) describe(c *Call) (any, error) {
	page, err := c.Params.intIn("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Params.intIn("PageSize", 10, 1, 100)
	if err != nil {
		return nil, err
	}
	eips, err := list[EIP](c.Tx, KindEIP)
	if err != nil {
		return nil, err
	}
	match := c.Params.matches
	// Up to 50 IDs or addresses, comma-separated, as the reference API takes them.
	ids, err := c.Params.commaSet("AllocationId", 50)
	if err != nil {
		return nil, err
	}
	addrs, err := c.Params.commaSet("EipAddress", 50)
	if err != nil {
		return nil, err
	}
	tagged, err := c.Params.tagFilter("Tag")
	if err != nil {
		return nil, err
	}
	// No EIP here is in a contiguous-address segment or locked (for overdue payment or
	// security): a filter on either matches none.
	if c.Params["SegmentInstanceId"] != "" || c.Params["LockReason"] != "" {
		eips = nil
	}
	packages := map[string]*BandwidthPackage{}
	var views []EipAddressView
	for _, e := range eips {
		if e.Owner != c.Account || (ids != nil && !ids[e.AllocationID]) || (addrs != nil && !addrs[e.IPAddress]) ||
			!match("Status", e.Status) || !match("AssociatedInstanceType", e.InstanceType) ||
			!match("AssociatedInstanceId", e.InstanceID) || !match("EipName", e.Name) || !match("ISP", eipISP) ||
			!match("ResourceGroupId", e.ResourceGroupID) || !match("ChargeType", e.InstanceChargeType) || !tagged(e.Tags) {
			continue
		}
		mode := e.Mode
		if mode == "" && e.InstanceID != "" {
			mode = ModeNAT // an association is in NAT mode unless it says otherwise, as the cloud reports it
		}
		views = append(views, EipAddressView{AllocationID: e.AllocationID, IPAddress: e.IPAddress, RegionID: e.Region,
			Status: e.Status, Bandwidth: strconv.Itoa(e.Bandwidth), InternetChargeType: e.InternetChargeType,
			ChargeType: e.InstanceChargeType, Name: e.Name, Description: e.Description, DescriptionSDK: e.Description,
			AllocationTime: e.AllocatedAt.UTC().Format(time.RFC3339), InstanceType: e.InstanceType,
			InstanceID: e.InstanceID, PrivateIPAddress: e.PrivateIPAddress, Mode: mode, ISP: eipISP, Netmode: eipNetmode,
			ResourceGroupID: e.ResourceGroupID, DeletionProtection: e.DeletionProtection})
		views[len(views)-1].Tags.Tag = tagViews(e.Tags)
		views[len(views)-1].HDMonitorStatus = "OFF"
		views[len(views)-1].SecurityProtectionTypes.SecurityProtectionType = []string{}
		if e.BandwidthPackageID == "" {
			continue
		}
		p, ok := packages[e.BandwidthPackageID]
		if !ok {
			if p, err = get[BandwidthPackage](c.Tx, KindBandwidthPackage, e.BandwidthPackageID); err != nil {
				return nil, err
			}
			if p == nil {
				return nil, fmt.Errorf("EIP %s is in bandwidth package %s, which does not exist", e.AllocationID, e.BandwidthPackageID)
			}
			packages[e.BandwidthPackageID] = p
		}
		v := &views[len(views)-1]
		v.BandwidthPackageID, v.BandwidthPackageType = p.BandwidthPackageID, "CommonBandwidthPackage"
		v.BandwidthPackageBandwidth, v.EipBandwidth = strconv.Itoa(p.Bandwidth), v.Bandwidth
		v.Bandwidth = v.BandwidthPackageBandwidth
		if e.PackageIPBandwidth != 0 {
			v.Bandwidth = strconv.Itoa(e.PackageIPBandwidth) // what the EIP may use of the package
		}
	}
	sort.Slice(views, func(i, j int) bool {
		return views[i].AllocationTime+views[i].AllocationID < views[j].AllocationTime+views[j].AllocationID
	})
	resp := describeResponse{TotalCount: len(views), PageNumber: page, PageSize: size}
	from := (page - 1) * size
	if from < len(views) {
		resp.EipAddresses.EipAddress = views[from:min(from+size, len(views))]
	}
	if resp.EipAddresses.EipAddress == nil {
		resp.EipAddresses.EipAddress = []EipAddressView{}
	}
	return resp, nil
}

// PoolUsage is an EIP pool's size (the addresses pickAddress can give out) and how
// many of them are allocated.
type PoolUsage struct {
	Pool      netip.Prefix
	Size      uint64
	Allocated uint64
}

// PoolUsages counts each pool's allocated EIPs from the address index: one walk of
// it, no EIP decoded.
func PoolUsages(tx Tx, pools []netip.Prefix) ([]PoolUsage, error) {
	out := make([]PoolUsage, len(pools))
	for i, p := range pools {
		size := uint64(1) << (32 - p.Bits())
		if p.Bits() < 31 {
			size -= 2 // network and broadcast addresses
		}
		out[i] = PoolUsage{Pool: p, Size: size}
	}
	err := tx.ForEachRaw(kindEIPByIP, func(ip, _ []byte) error {
		a, ok := parseIPv4(ip)
		if !ok {
			return fmt.Errorf("address index entry %q is damaged", ip)
		}
		for i := range out {
			if out[i].Pool.Contains(a) {
				out[i].Allocated++
				break
			}
		}
		return nil
	})
	return out, err
}

// regionView is one region in DescribeRegions.
type regionView struct {
	RegionID       string `json:"RegionId"`
	LocalName      string `json:"LocalName"`
	RegionEndpoint string `json:"RegionEndpoint"`
}

// describeRegions lists the one region eipd serves (its `region`).
func (s *Service) describeRegions(c *Call) (any, error) {
	var resp struct {
		Regions struct {
			Region []regionView `json:"Region"`
		} `json:"Regions"`
	}
	resp.Regions.Region = []regionView{{RegionID: s.Region, LocalName: s.Region}}
	return resp, nil
}

// deletionProtection turns an EIP's, a bandwidth package's or a NAT gateway's deletion
// protection on or off (Type EIP, CBWP or NATGW): a protected one is not released or
// deleted.
func (s *Service) deletionProtection(c *Call) (any, error) {
	id, err := c.Params.required("InstanceId")
	if err != nil {
		return nil, err
	}
	enable, err := c.Params.required("ProtectionEnable")
	if err != nil {
		return nil, err
	}
	if enable != "true" && enable != "false" {
		return nil, invalid("ProtectionEnable", enable)
	}
	kind, err := c.Params.required("Type")
	if err != nil {
		return nil, err
	}
	switch kind {
	case "EIP":
		e, err := ownEIPNamed(c, "InstanceId")
		if err != nil {
			return nil, err
		}
		old := *e
		e.DeletionProtection = enable == "true"
		return struct{}{}, saveEIP(c.Tx, &old, e)
	case "CBWP":
		p, err := get[BandwidthPackage](c.Tx, KindBandwidthPackage, id)
		if err != nil {
			return nil, err
		}
		if p == nil || p.Owner != c.Account {
			return nil, errPackageNotFound
		}
		p.DeletionProtection = enable == "true"
		return struct{}{}, put(c.Tx, KindBandwidthPackage, p.BandwidthPackageID, p)
	case "NATGW":
		g, err := natGatewayNamed(c, "InstanceId")
		if err != nil {
			return nil, err
		}
		g.DeletionProtection = enable == "true"
		return struct{}{}, put(c.Tx, KindNAT, g.NatGatewayID, g)
	}
	return nil, invalid("Type", kind)
}
