package model

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// HaVips beyond create and associate (inventory.go): describe, modify, unassociate,
// delete.
func init() {
	register("DescribeHaVips", false, (*Service).describeHaVips)
	register("UnassociateHaVip", true, (*Service).unassociateHaVip)
	register("DeleteHaVip", true, (*Service).deleteHaVip)
	register("ModifyHaVipAttribute", true, (*Service).modifyHaVipAttribute)
}

var errHaVipNotAssociated = badRequest("InvalidParameter", "The instance is not associated with the HaVip.")

func (s *Service) unassociateHaVip(c *Call) (any, error) {
	h, err := haVipParam(c, "HaVipId")
	if err != nil {
		return nil, err
	}
	if _, err := c.Params.oneOf("InstanceType", TypeEcs, TypeEcs); err != nil {
		return nil, err
	}
	if _, err := c.Params.oneOf("Force", "false", "true", "false"); err != nil {
		return nil, err
	}
	in, err := instanceParam(c)
	if err != nil {
		return nil, err
	}
	i := slices.Index(h.Instances, in.InstanceID)
	if i < 0 {
		return nil, errHaVipNotAssociated
	}
	h.Instances = slices.Delete(h.Instances, i, i+1)
	if len(h.Instances) == 0 {
		h.Status = StatusAvailable
	}
	return struct{}{}, put(c.Tx, KindHaVip, h.HaVipID, h)
}

// deleteHaVip deletes an Available HaVip: no instance and no EIP associated.
func (s *Service) deleteHaVip(c *Call) (any, error) {
	h, err := haVipParam(c, "HaVipId")
	if err != nil {
		return nil, err
	}
	eips, err := eipIDsOn(c.Tx, TypeHaVip, h.HaVipID)
	if err != nil {
		return nil, err
	}
	if h.Status != StatusAvailable || len(h.Instances) > 0 || len(eips) > 0 {
		return nil, errHaVipStatus
	}
	if err := c.Tx.Delete(KindHaVip, h.HaVipID); err != nil {
		return nil, err
	}
	return struct{}{}, bumpInventoryGeneration(c.Tx)
}

// haVipView is one HaVip in DescribeHaVips, with the SDK's field names.
type haVipView struct {
	HaVipID                string `json:"HaVipId"`
	RegionID               string `json:"RegionId"`
	VpcID                  string `json:"VpcId"`
	IPAddress              string `json:"IpAddress"`
	Status                 string `json:"Status"`
	MasterInstanceID       string `json:"MasterInstanceId"`
	AssociatedInstanceType string `json:"AssociatedInstanceType"`
	AssociatedInstances    struct {
		AssociatedInstance []string `json:"associatedInstance"`
	} `json:"AssociatedInstances"`
	AssociatedEipAddresses struct {
		AssociatedEipAddresse []string `json:"associatedEipAddresse"`
	} `json:"AssociatedEipAddresses"`
	ResourceGroupID string `json:"ResourceGroupId"`
	Tags            struct {
		Tag []tagView `json:"Tag"`
	} `json:"Tags"`
	VSwitchID   string `json:"VSwitchId"`
	Name        string `json:"Name"`
	Description string `json:"Description"`
	CreateTime  string `json:"CreateTime"`
}

// modifyHaVipAttribute changes a HaVip's Name and Description.
func (s *Service) modifyHaVipAttribute(c *Call) (any, error) {
	h, err := haVipParam(c, "HaVipId")
	if err != nil {
		return nil, err
	}
	if v, ok, err := c.Params.text("Name", 1, 128, true, true); err != nil {
		return nil, err
	} else if ok {
		h.Name = v
	}
	if v, ok, err := c.Params.text("Description", 1, 256, true, false); err != nil {
		return nil, err
	} else if ok {
		h.Description = v
	}
	return struct{}{}, put(c.Tx, KindHaVip, h.HaVipID, h)
}

// haVipFilterKeys are the Filter keys DescribeHaVips takes, and what each compares.
var haVipFilterKeys = map[string]func(*HaVip) string{
	"HaVipId":   func(h *HaVip) string { return h.HaVipID },
	"VpcId":     func(h *HaVip) string { return h.VpcID },
	"VSwitchId": func(h *HaVip) string { return h.VSwitchID },
	"Status":    func(h *HaVip) string { return h.Status },
	"IpAddress": func(h *HaVip) string { return h.IPAddress },
}

func (s *Service) describeHaVips(c *Call) (any, error) {
	page, err := c.Params.intIn("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Params.intIn("PageSize", 10, 1, 50)
	if err != nil {
		return nil, err
	}
	filters, err := c.Params.filters("Filter")
	if err != nil {
		return nil, err
	}
	for i, f := range filters {
		if haVipFilterKeys[f.Key] == nil {
			return nil, invalid(fmt.Sprintf("Filter.%d.Key", i+1), f.Key)
		}
	}
	tagged, err := c.Params.tagFilter("Tags")
	if err != nil {
		return nil, err
	}
	all, err := list[HaVip](c.Tx, KindHaVip)
	if err != nil {
		return nil, err
	}
	var views []haVipView
	for _, h := range all {
		if h.Region != s.Region || !matchesFilters(filters, func(key string) string { return haVipFilterKeys[key](h) }) ||
			!c.Params.matches("ResourceGroupId", h.ResourceGroupID) || !tagged(h.Tags) {
			continue
		}
		v := haVipView{HaVipID: h.HaVipID, RegionID: h.Region, VpcID: h.VpcID, IPAddress: h.IPAddress, Status: h.Status,
			ResourceGroupID: h.ResourceGroupID, VSwitchID: h.VSwitchID, Name: h.Name, Description: h.Description}
		if !h.CreatedAt.IsZero() {
			v.CreateTime = h.CreatedAt.UTC().Format(time.RFC3339)
		}
		v.Tags.Tag = tagViews(h.Tags)
		v.AssociatedInstances.AssociatedInstance = append([]string{}, h.Instances...)
		if len(h.Instances) > 0 {
			v.AssociatedInstanceType, v.MasterInstanceID = TypeEcs, h.Instances[0]
		}
		eips, err := eipsOn(c.Tx, TypeHaVip, h.HaVipID)
		if err != nil {
			return nil, err
		}
		v.AssociatedEipAddresses.AssociatedEipAddresse = []string{}
		for _, e := range eips {
			v.AssociatedEipAddresses.AssociatedEipAddresse = append(v.AssociatedEipAddresses.AssociatedEipAddresse, e.IPAddress)
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i].HaVipID < views[j].HaVipID })
	var resp struct {
		TotalCount int `json:"TotalCount"`
		PageNumber int `json:"PageNumber"`
		PageSize   int `json:"PageSize"`
		HaVips     struct {
			HaVip []haVipView `json:"HaVip"`
		} `json:"HaVips"`
	}
	resp.TotalCount, resp.PageNumber, resp.PageSize = len(views), page, size
	from := min((page-1)*size, len(views))
	resp.HaVips.HaVip = append([]haVipView{}, views[from:min(from+size, len(views))]...)
	return resp, nil
}
