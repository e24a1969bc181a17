package model

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Shared bandwidth (the cloud's Internet Shared Bandwidth, CommonBandwidthPackage):
// EIPs added to a package share its bandwidth, and their own Bandwidth waits, unused,
// until they leave it. Every change is in the dataplane before the reply: there is no
// BINDING or Modifying state to wait through.
func init() {
	register("CreateCommonBandwidthPackage", true, (*Service).createBandwidthPackage)
	register("DescribeCommonBandwidthPackages", false, (*Service).describeBandwidthPackages)
	register("ModifyCommonBandwidthPackageSpec", true, (*Service).modifyBandwidthPackageSpec)
	register("ModifyCommonBandwidthPackageAttribute", true, (*Service).modifyBandwidthPackageAttribute)
	register("AddCommonBandwidthPackageIp", true, (*Service).addBandwidthPackageIP)
	register("AddCommonBandwidthPackageIps", true, (*Service).addBandwidthPackageIPs)
	register("RemoveCommonBandwidthPackageIp", true, (*Service).removeBandwidthPackageIP)
	register("ModifyCommonBandwidthPackageIpBandwidth", true, (*Service).capPackageIP)
	register("CancelCommonBandwidthPackageIpBandwidth", true, (*Service).uncapPackageIP)
	register("DeleteCommonBandwidthPackage", true, (*Service).deleteBandwidthPackage)
}

// KindBandwidthPackage holds the packages; kindEIPByPackage indexes their EIPs.
const (
	KindBandwidthPackage = "cbwp"
	kindEIPByPackage     = "eip_by_package" // BandwidthPackageId|AllocationId -> ""
)

// BandwidthPackage is a shared bandwidth. Its EIPs are the ones whose
// BandwidthPackageID names it (kindEIPByPackage).
type BandwidthPackage struct {
	BandwidthPackageID string    `json:"bandwidth_package_id"`
	Owner              string    `json:"owner"`
	Region             string    `json:"region"`
	Bandwidth          int       `json:"bandwidth"` // Mbit/s
	InternetChargeType string    `json:"internet_charge_type"`
	ISP                string    `json:"isp"`
	Name               string    `json:"name,omitempty"`
	Description        string    `json:"description,omitempty"`
	ResourceGroupID    string    `json:"resource_group_id,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	DeletionProtection bool      `json:"deletion_protection,omitempty"` // refuses DeleteCommonBandwidthPackage
	Tags               []Tag     `json:"tags,omitempty"`
}

// A package's bandwidth range, Mbit/s.
const packageBandwidthMin, packageBandwidthMax = 1, 1000

var (
	errPackageBandwidth = badRequest("InvalidBandwidth.ValueNotSupported", "The specified value of Bandwidth not supported.")
	errPackageNotEmpty  = badRequest("OperationFailed.BandwidthPackageNotEmpty", "Eip bandwidth package not empty.")
	errAlreadyInPackage = badRequest("IpInstanceId.AlreadyInBandwidthPackage", "The specified EIP is already in a bandwidth package.")
	errNotInPackage     = badRequest("OperationUnsupported.IpNotInCbwp", "The specified EIP is not in the bandwidth package.")
	// Not in the reference tables; named in their style and listed in docs/api.md.
	errPrePaidEip      = badRequest("OperationUnsupported.PrePaidEip", "Only a pay-as-you-go (PostPaid) EIP can be added to a bandwidth package.")
	errEipInPackage    = badRequest("OperationUnsupported.EipInBandwidthPackage", "The EIP is in a bandwidth package: its bandwidth is the package's (ModifyCommonBandwidthPackageSpec).")
	errPackageISP      = badRequest("InvalidParameter.ISP", "This gateway has one line: ISP must be BGP.")
	errPackageIPType   = badRequest("InvalidParameter.IpType", "IpType must be EIP.")
	errPackageNotFound = fail(http.StatusNotFound, "InvalidBandwidthPackageId.NotFound", "The specified bandwidthPackageId does not exist in our records.")
)

// ownPackage finds a package of the caller's; another account's does not exist for it.
func ownPackage(c *Call) (*BandwidthPackage, error) {
	id, err := c.Params.required("BandwidthPackageId")
	if err != nil {
		return nil, err
	}
	p, err := get[BandwidthPackage](c.Tx, KindBandwidthPackage, id)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Owner != c.Account {
		return nil, errPackageNotFound
	}
	return p, nil
}

func packageBandwidthParam(p Params) (int, error) {
	v, err := p.required("Bandwidth")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < packageBandwidthMin || n > packageBandwidthMax {
		return 0, errPackageBandwidth
	}
	return n, nil
}

type createPackageResponse struct {
	BandwidthPackageID string `json:"BandwidthPackageId"`
	ResourceGroupID    string `json:"ResourceGroupId"`
}

func (s *Service) createBandwidthPackage(c *Call) (any, error) {
	bw, err := packageBandwidthParam(c.Params)
	if err != nil {
		return nil, err
	}
	charge, err := c.Params.oneOf("InternetChargeType", "PayByBandwidth",
		"PayByBandwidth", "PayByTraffic", "PayBy95", "PayByDominantTraffic")
	if err != nil {
		return nil, err
	}
	if isp := c.Params["ISP"]; isp != "" && isp != "BGP" {
		return nil, errPackageISP
	}
	group, err := resourceGroupParam(c)
	if err != nil {
		return nil, err
	}
	p := &BandwidthPackage{BandwidthPackageID: newID("cbwp"), Owner: c.Account, Region: s.Region, Bandwidth: bw,
		InternetChargeType: charge, ISP: "BGP", ResourceGroupID: group, CreatedAt: c.Now}
	if p.Name, _, err = c.Params.packageName(); err != nil {
		return nil, err
	}
	if p.Description, _, err = c.Params.eipDescription(); err != nil {
		return nil, err
	}
	if err := put(c.Tx, KindBandwidthPackage, p.BandwidthPackageID, p); err != nil {
		return nil, err
	}
	return createPackageResponse{BandwidthPackageID: p.BandwidthPackageID, ResourceGroupID: p.ResourceGroupID}, nil
}

// packageName is a package's Name: 0-128 characters, not starting with http:// or
// https://.
func (p Params) packageName() (string, bool, error) { return p.text("Name", 0, 128, false, false) }

func (s *Service) modifyBandwidthPackageSpec(c *Call) (any, error) {
	p, err := ownPackage(c)
	if err != nil {
		return nil, err
	}
	if p.Bandwidth, err = packageBandwidthParam(c.Params); err != nil {
		return nil, err
	}
	return struct{}{}, put(c.Tx, KindBandwidthPackage, p.BandwidthPackageID, p)
}

func (s *Service) modifyBandwidthPackageAttribute(c *Call) (any, error) {
	p, err := ownPackage(c)
	if err != nil {
		return nil, err
	}
	if v, ok, err := c.Params.packageName(); err != nil {
		return nil, err
	} else if ok {
		p.Name = v
	}
	if v, ok, err := c.Params.eipDescription(); err != nil {
		return nil, err
	} else if ok {
		p.Description = v
	}
	return struct{}{}, put(c.Tx, KindBandwidthPackage, p.BandwidthPackageID, p)
}

// packageToJoin is the caller's package that an Add action names, with the type of
// what joins it (IpType: EIP, the only one).
func packageToJoin(c *Call) (*BandwidthPackage, error) {
	if t := c.Params["IpType"]; t != "" && t != "EIP" {
		return nil, errPackageIPType
	}
	return ownPackage(c)
}

func (s *Service) addBandwidthPackageIP(c *Call) (any, error) {
	p, err := packageToJoin(c)
	if err != nil {
		return nil, err
	}
	e, err := ownEIPNamed(c, "IpInstanceId")
	if err != nil {
		return nil, err
	}
	return struct{}{}, joinPackage(c.Tx, p, e)
}

// packageIPsMax is how many EIPs one AddCommonBandwidthPackageIps names at most:
// eipgw's bound, as DescribeEipAddresses' lists of 50, so that one write stays small.
const packageIPsMax = 50

// addBandwidthPackageIPs adds IpInstanceIds.1..N to the package, all or none: every
// EIP is checked (AddCommonBandwidthPackageIp's errors, for the first that cannot
// join) before any joins.
func (s *Service) addBandwidthPackageIPs(c *Call) (any, error) {
	p, err := packageToJoin(c)
	if err != nil {
		return nil, err
	}
	ids, err := c.Params.requiredList("IpInstanceIds")
	if err != nil {
		return nil, err
	}
	if len(ids) > packageIPsMax {
		return nil, invalid("IpInstanceIds."+itoa(packageIPsMax+1), ids[packageIPsMax])
	}
	eips := make([]*EIP, 0, len(ids))
	seen := map[string]bool{}
	for i, id := range ids {
		if id == "" || seen[id] {
			return nil, invalid("IpInstanceIds."+itoa(i+1), id)
		}
		seen[id] = true
		e, err := ownEIPByID(c, id)
		if err != nil {
			return nil, err
		}
		if err := mayJoinPackage(p, e); err != nil {
			return nil, err
		}
		eips = append(eips, e)
	}
	for _, e := range eips {
		if err := joinPackage(c.Tx, p, e); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// mayJoinPackage says why e may not join p, if it may not: it must be pay-as-you-go,
// in no package, in p's region, Available or InUse.
func mayJoinPackage(p *BandwidthPackage, e *EIP) error {
	switch {
	case e.BandwidthPackageID != "":
		return errAlreadyInPackage
	case e.InstanceChargeType == "PrePaid":
		return errPrePaidEip
	case e.Region != p.Region:
		return errRegionMismatch
	case e.Status != StatusAvailable && e.Status != StatusInUse:
		return errIncorrectEip
	}
	return nil
}

// joinPackage puts e in p, if it may join.
func joinPackage(tx Tx, p *BandwidthPackage, e *EIP) error {
	if err := mayJoinPackage(p, e); err != nil {
		return err
	}
	old := *e
	e.BandwidthPackageID = p.BandwidthPackageID
	return saveEIP(tx, &old, e)
}

func (s *Service) removeBandwidthPackageIP(c *Call) (any, error) {
	id, err := c.Params.required("IpInstanceId")
	if err != nil {
		return nil, err
	}
	_, e, err := packageMember(c, id)
	if err != nil {
		return nil, err
	}
	if e.Status != StatusAvailable && e.Status != StatusInUse {
		return nil, errIncorrectEip
	}
	old := *e
	e.BandwidthPackageID, e.PackageIPBandwidth = "", 0
	return struct{}{}, saveEIP(c.Tx, &old, e)
}

// packageMember is the caller's EIP eipID, in the caller's package named by
// BandwidthPackageId. The callers read eipID, each from its own parameter
// (IpInstanceId, EipId), so that paramspec sees the name in the handler.
func packageMember(c *Call, eipID string) (*BandwidthPackage, *EIP, error) {
	p, err := ownPackage(c)
	if err != nil {
		return nil, nil, err
	}
	e, err := ownEIPByID(c, eipID)
	if err != nil {
		return nil, nil, err
	}
	if e.BandwidthPackageID != p.BandwidthPackageID {
		return nil, nil, errNotInPackage
	}
	return p, e, nil
}

// capPackageIP holds an EIP of a package to Bandwidth (Mbit/s, 1 to the package's)
// of the package's bandwidth, in the dataplane before the reply. The cloud allows it
// only for an EIP associated with an ECS instance; eipgw polices every kind of EIP
// alike and caps any. A package made smaller than a cap later holds the EIP to the
// package.
func (s *Service) capPackageIP(c *Call) (any, error) {
	id, err := c.Params.required("EipId")
	if err != nil {
		return nil, err
	}
	p, e, err := packageMember(c, id)
	if err != nil {
		return nil, err
	}
	v, err := c.Params.required("Bandwidth")
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < packageBandwidthMin || n > p.Bandwidth {
		return nil, errPackageBandwidth
	}
	old := *e
	e.PackageIPBandwidth = n
	return struct{}{}, saveEIP(c.Tx, &old, e)
}

// uncapPackageIP lifts an EIP's cap inside its package (none to lift is not an error).
func (s *Service) uncapPackageIP(c *Call) (any, error) {
	id, err := c.Params.required("EipId")
	if err != nil {
		return nil, err
	}
	_, e, err := packageMember(c, id)
	if err != nil {
		return nil, err
	}
	old := *e
	e.PackageIPBandwidth = 0
	return struct{}{}, saveEIP(c.Tx, &old, e)
}

func (s *Service) deleteBandwidthPackage(c *Call) (any, error) {
	p, err := ownPackage(c)
	if err != nil {
		return nil, err
	}
	force, err := c.Params.oneOf("Force", "false", "true", "false")
	if err != nil {
		return nil, err
	}
	if p.DeletionProtection {
		return nil, errDeletionProtected
	}
	members, err := packageMembers(c.Tx, p.BandwidthPackageID)
	if err != nil {
		return nil, err
	}
	if len(members) > 0 && force != "true" {
		return nil, errPackageNotEmpty
	}
	for _, id := range members {
		e, err := indexedEIP(c.Tx, "package", id)
		if err != nil {
			return nil, err
		}
		old := *e
		e.BandwidthPackageID, e.PackageIPBandwidth = "", 0
		if err := saveEIP(c.Tx, &old, e); err != nil {
			return nil, err
		}
	}
	return struct{}{}, c.Tx.Delete(KindBandwidthPackage, p.BandwidthPackageID)
}

// packageMembers lists the AllocationIds of a package's EIPs.
func packageMembers(tx Tx, packageID string) ([]string, error) {
	var ids []string
	prefix := packageID + "|"
	err := tx.ForEachPrefix(kindEIPByPackage, prefix, func(key string, _ []byte) error {
		ids = append(ids, strings.TrimPrefix(key, prefix))
		return nil
	})
	return ids, err
}

// packageIPView is one EIP of a package in DescribeCommonBandwidthPackages.
type packageIPView struct {
	AllocationID string `json:"AllocationId"`
	IPAddress    string `json:"IpAddress"`
	RelationStat string `json:"BandwidthPackageIpRelationStatus"`
}

// bandwidthPackageView is a package in DescribeCommonBandwidthPackages, with the
// SDK's field names.
type bandwidthPackageView struct {
	BandwidthPackageID string `json:"BandwidthPackageId"`
	Name               string `json:"Name"`
	Description        string `json:"Description"`
	Bandwidth          string `json:"Bandwidth"`
	InternetChargeType string `json:"InternetChargeType"`
	InstanceChargeType string `json:"InstanceChargeType"`
	ISP                string `json:"ISP"`
	Status             string `json:"Status"`
	BusinessStatus     string `json:"BusinessStatus"`
	RegionID           string `json:"RegionId"`
	ResourceGroupID    string `json:"ResourceGroupId"`
	CreationTime       string `json:"CreationTime"`
	ExpiredTime        string `json:"ExpiredTime"`
	Ratio              int    `json:"Ratio"`
	DeletionProtection bool   `json:"DeletionProtection"`
	HasReservationData string `json:"HasReservationData"`
	PublicIPAddresses  struct {
		PublicIPAddresse []packageIPView `json:"PublicIpAddresse"`
	} `json:"PublicIpAddresses"`
	Tags struct {
		Tag []tagView `json:"Tag"`
	} `json:"Tags"`
	SecurityProtectionTypes struct {
		SecurityProtectionType []string `json:"SecurityProtectionType"`
	} `json:"SecurityProtectionTypes"`
}

type describePackagesResponse struct {
	TotalCount              int `json:"TotalCount"`
	PageNumber              int `json:"PageNumber"`
	PageSize                int `json:"PageSize"`
	CommonBandwidthPackages struct {
		CommonBandwidthPackage []bandwidthPackageView `json:"CommonBandwidthPackage"`
	} `json:"CommonBandwidthPackages"`
}

func (s *Service) describeBandwidthPackages(c *Call) (any, error) {
	page, err := c.Params.intIn("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Params.intIn("PageSize", 10, 1, 50)
	if err != nil {
		return nil, err
	}
	packages, err := list[BandwidthPackage](c.Tx, KindBandwidthPackage)
	if err != nil {
		return nil, err
	}
	tagged, err := c.Params.tagFilter("Tag")
	if err != nil {
		return nil, err
	}
	match := c.Params.matches
	var mine []*BandwidthPackage
	for _, p := range packages {
		if p.Owner == c.Account && match("BandwidthPackageId", p.BandwidthPackageID) && match("Name", p.Name) &&
			match("ResourceGroupId", p.ResourceGroupID) && tagged(p.Tags) {
			mine = append(mine, p)
		}
	}
	sort.Slice(mine, func(i, j int) bool {
		if !mine[i].CreatedAt.Equal(mine[j].CreatedAt) {
			return mine[i].CreatedAt.Before(mine[j].CreatedAt)
		}
		return mine[i].BandwidthPackageID < mine[j].BandwidthPackageID
	})
	resp := describePackagesResponse{TotalCount: len(mine), PageNumber: page, PageSize: size}
	resp.CommonBandwidthPackages.CommonBandwidthPackage = []bandwidthPackageView{}
	from := (page - 1) * size
	if from >= len(mine) {
		return resp, nil
	}
	for _, p := range mine[from:min(from+size, len(mine))] {
		v := bandwidthPackageView{BandwidthPackageID: p.BandwidthPackageID, Name: p.Name, Description: p.Description,
			Bandwidth: strconv.Itoa(p.Bandwidth), InternetChargeType: p.InternetChargeType, InstanceChargeType: "PostPaid",
			ISP: p.ISP, Status: StatusAvailable, BusinessStatus: "Normal", RegionID: p.Region,
			ResourceGroupID: p.ResourceGroupID, CreationTime: p.CreatedAt.UTC().Format(time.RFC3339),
			HasReservationData: "false", DeletionProtection: p.DeletionProtection}
		v.PublicIPAddresses.PublicIPAddresse = []packageIPView{}
		v.Tags.Tag = tagViews(p.Tags)
		v.SecurityProtectionTypes.SecurityProtectionType = []string{}
		members, err := packageMembers(c.Tx, p.BandwidthPackageID)
		if err != nil {
			return nil, err
		}
		for _, id := range members {
			e, err := indexedEIP(c.Tx, "package", id)
			if err != nil {
				return nil, err
			}
			v.PublicIPAddresses.PublicIPAddresse = append(v.PublicIPAddresses.PublicIPAddresse,
				packageIPView{AllocationID: e.AllocationID, IPAddress: e.IPAddress, RelationStat: "BINDED"})
		}
		resp.CommonBandwidthPackages.CommonBandwidthPackage = append(resp.CommonBandwidthPackages.CommonBandwidthPackage, v)
	}
	return resp, nil
}
