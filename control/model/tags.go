package model

import (
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Tags and resource groups: TagResources, UnTagResources and ListTagResources on the
// resource types the cloud tags through the VPC API and eipgw has (EIP, NATGATEWAY,
// HAVIP, COMMONBANDWIDTHPACKAGE), Tag.N filters and Tags in their Describe actions,
// and MoveResourceGroup. SNAT and forward entries carry no tags in the cloud's VPC
// API, so they carry none here either.
func init() {
	register("TagResources", true, (*Service).tagResources)
	register("UnTagResources", true, (*Service).untagResources)
	register("ListTagResources", false, (*Service).listTagResources)
	register("MoveResourceGroup", true, (*Service).moveResourceGroup)
}

// Tag is a key and value on a resource.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// The cloud's tag limits: tags a resource carries, and tags and resource IDs a call
// names.
const (
	maxTagsPerResource = 20
	maxTagsPerCall     = 20
	maxTagResourceIDs  = 20
	maxTagText         = 128
)

var (
	errTagKeyDuplicated = badRequest("Forbidden.TagKey.Duplicated", "The specified tag key already exists.")
	errTagNumExceeded   = badRequest("SizeLimitExceeded.TagNum", "The maximum number of tags is exceeded.")
	errTagQuotaExceeded = badRequest("QuotaExceeded.TagNum", "Custom Tags quota exceeded.")
	errTagIDsExceeded   = badRequest("SizeLimitExceeded.ResourceId", "The maximum number of resource IDs is exceeded.")
)

// checkTagText applies the cloud's rules to a tag key or value: at most 128
// characters, not starting with "aliyun" or "acs:", no "http://" or "https://".
func checkTagText(v string) bool {
	return len([]rune(v)) <= maxTagText && !strings.HasPrefix(v, "aliyun") && !strings.HasPrefix(v, "acs:") &&
		!strings.Contains(v, "http://") && !strings.Contains(v, "https://")
}

// tagPairs reads Name.N.Key and Name.N.Value in order (at most 20 pairs, each key
// once); a value without a key is refused, a key without a value has the empty one.
func (p Params) tagPairs(name string) ([]Tag, error) {
	var out []Tag
	seen := map[string]bool{}
	for i := 1; ; i++ {
		prefix := name + "." + strconv.Itoa(i)
		key, hasKey := p[prefix+".Key"]
		value, hasValue := p[prefix+".Value"]
		if !hasKey && !hasValue {
			return out, nil
		}
		if !hasKey || key == "" || !checkTagText(key) {
			return nil, badRequest("InvalidTagKey", "The specified tag key is invalid: %s.Key %q.", prefix, key)
		}
		if !checkTagText(value) {
			return nil, badRequest("InvalidTagValue", "The specified tag value is invalid: %s.Value %q.", prefix, value)
		}
		if seen[key] {
			return nil, errTagKeyDuplicated
		}
		seen[key] = true
		if len(out) == maxTagsPerCall {
			return nil, errTagNumExceeded
		}
		out = append(out, Tag{Key: key, Value: value})
	}
}

// tagFilter reads a Describe action's Name.N.Key / Name.N.Value (Tag, or Tags for
// DescribeHaVips): a resource matches when it has every key, with the value given
// (any value when the value is left out).
func (p Params) tagFilter(name string) (func([]Tag) bool, error) {
	want, err := p.tagPairs(name)
	if err != nil {
		return nil, err
	}
	valued := map[string]bool{}
	for i := 1; i <= len(want); i++ {
		_, valued[want[i-1].Key] = p[name+"."+strconv.Itoa(i)+".Value"]
	}
	return func(have []Tag) bool {
		for _, w := range want {
			i := slices.IndexFunc(have, func(t Tag) bool { return t.Key == w.Key })
			if i < 0 || (valued[w.Key] && have[i].Value != w.Value) {
				return false
			}
		}
		return true
	}, nil
}

// tagView is a tag in a Describe response (Tags.Tag), with the SDK's field names.
type tagView struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func tagViews(tags []Tag) []tagView {
	out := make([]tagView, 0, len(tags))
	for _, t := range tags {
		out = append(out, tagView(t))
	}
	return out
}

// taggable is one resource as the tag and resource-group actions change it.
type taggable struct {
	id    string
	tags  *[]Tag
	group *string
	save  func() error
}

// taggableType is a resource type of the tag and resource-group actions.
type taggableType struct {
	name string // as ListTagResources returns it
	kind string
	// load finds the caller's resource with this ID: nil when there is none.
	load func(c *Call, id string) (*taggable, error)
}

var taggableTypes = []taggableType{
	{"EIP", KindEIP, func(c *Call, id string) (*taggable, error) {
		e, err := get[EIP](c.Tx, KindEIP, id)
		if err != nil || e == nil || e.Owner != c.Account {
			return nil, err
		}
		old := *e
		return &taggable{e.AllocationID, &e.Tags, &e.ResourceGroupID, func() error { return saveEIP(c.Tx, &old, e) }}, nil
	}},
	{"NATGATEWAY", KindNAT, func(c *Call, id string) (*taggable, error) {
		g, err := get[NatGateway](c.Tx, KindNAT, id)
		if err != nil || g == nil {
			return nil, err
		}
		return &taggable{g.NatGatewayID, &g.Tags, &g.ResourceGroupID, func() error { return put(c.Tx, KindNAT, g.NatGatewayID, g) }}, nil
	}},
	{"HAVIP", KindHaVip, func(c *Call, id string) (*taggable, error) {
		h, err := get[HaVip](c.Tx, KindHaVip, id)
		if err != nil || h == nil {
			return nil, err
		}
		return &taggable{h.HaVipID, &h.Tags, &h.ResourceGroupID, func() error { return put(c.Tx, KindHaVip, h.HaVipID, h) }}, nil
	}},
	{"COMMONBANDWIDTHPACKAGE", KindBandwidthPackage, func(c *Call, id string) (*taggable, error) {
		p, err := get[BandwidthPackage](c.Tx, KindBandwidthPackage, id)
		if err != nil || p == nil || p.Owner != c.Account {
			return nil, err
		}
		return &taggable{p.BandwidthPackageID, &p.Tags, &p.ResourceGroupID,
			func() error { return put(c.Tx, KindBandwidthPackage, p.BandwidthPackageID, p) }}, nil
	}},
}

// resourceTypeParam reads ResourceType, in any letter case; aliases are other names
// the cloud's callers use for a type (MoveResourceGroup's "bandwidthpackage").
func resourceTypeParam(c *Call, aliases map[string]string) (*taggableType, error) {
	v, err := c.Params.required("ResourceType")
	if err != nil {
		return nil, err
	}
	name := strings.ToUpper(v)
	if a, ok := aliases[name]; ok {
		name = a
	}
	for i := range taggableTypes {
		if taggableTypes[i].name == name {
			return &taggableTypes[i], nil
		}
	}
	return nil, badRequest("InvalidResourceType.NotFound", "The ResourceType %q is not one eipgw has.", v)
}

func resourceNotFound(id string) error {
	return fail(http.StatusNotFound, "InvalidResourceId.NotFound", "The specified resource %q is not found.", id)
}

// taggedResources loads every resource ResourceId.N names (1 to 20 of them).
func taggedResources(c *Call, t *taggableType, required bool) ([]*taggable, error) {
	ids := c.Params.list("ResourceId")
	if len(ids) == 0 {
		if required {
			return nil, missing("ResourceId.1")
		}
		return nil, nil
	}
	if len(ids) > maxTagResourceIDs {
		return nil, errTagIDsExceeded
	}
	var out []*taggable
	for _, id := range ids {
		r, err := t.load(c, id)
		if err != nil {
			return nil, err
		}
		if r == nil {
			return nil, resourceNotFound(id)
		}
		out = append(out, r)
	}
	return out, nil
}

// tagResources adds tags to resources, replacing the value of a key a resource
// already has; a resource may carry 20.
func (s *Service) tagResources(c *Call) (any, error) {
	t, err := resourceTypeParam(c, nil)
	if err != nil {
		return nil, err
	}
	tags, err := c.Params.tagPairs("Tag")
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, missing("Tag.1.Key")
	}
	rs, err := taggedResources(c, t, true)
	if err != nil {
		return nil, err
	}
	// Every resource is checked before any is saved: a refusal changes nothing.
	for _, r := range rs {
		for _, tag := range tags {
			if i := slices.IndexFunc(*r.tags, func(have Tag) bool { return have.Key == tag.Key }); i >= 0 {
				(*r.tags)[i].Value = tag.Value
			} else {
				*r.tags = append(*r.tags, tag)
			}
		}
		if len(*r.tags) > maxTagsPerResource {
			return nil, errTagQuotaExceeded
		}
	}
	for _, r := range rs {
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// untagResources removes the keys TagKey.N names (a key a resource lacks is no error),
// or with All=true and no TagKey.N, every tag.
func (s *Service) untagResources(c *Call) (any, error) {
	t, err := resourceTypeParam(c, nil)
	if err != nil {
		return nil, err
	}
	all, err := c.Params.oneOf("All", "false", "true", "false")
	if err != nil {
		return nil, err
	}
	keys := c.Params.list("TagKey")
	if len(keys) > maxTagsPerCall {
		return nil, errTagNumExceeded
	}
	if len(keys) == 0 && all != "true" {
		return nil, missing("TagKey.1")
	}
	rs, err := taggedResources(c, t, true)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if len(keys) == 0 {
			*r.tags = nil
		} else {
			*r.tags = slices.DeleteFunc(*r.tags, func(have Tag) bool { return slices.Contains(keys, have.Key) })
		}
		if err := r.save(); err != nil {
			return nil, err
		}
	}
	return struct{}{}, nil
}

// tagResourceView is one row of ListTagResources: one tag of one resource.
type tagResourceView struct {
	ResourceID   string `json:"ResourceId"`
	ResourceType string `json:"ResourceType"`
	TagKey       string `json:"TagKey"`
	TagValue     string `json:"TagValue"`
}

// listTagResources lists the tags of the resources ResourceId.N names, or of the
// caller's resources of the type that carry every Tag.N, or both; a row per tag, up
// to MaxResults a page. NextToken is absent on the last page.
func (s *Service) listTagResources(c *Call) (any, error) {
	t, err := resourceTypeParam(c, nil)
	if err != nil {
		return nil, err
	}
	max, err := c.Params.intIn("MaxResults", 50, 1, 1000)
	if err != nil {
		return nil, err
	}
	from := 0
	if tok := c.Params["NextToken"]; tok != "" {
		if from, err = strconv.Atoi(tok); err != nil || from < 0 {
			return nil, invalid("NextToken", tok)
		}
	}
	filter, err := c.Params.tagFilter("Tag")
	if err != nil {
		return nil, err
	}
	rs, err := taggedResources(c, t, false)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		if want, err := c.Params.tagPairs("Tag"); err != nil || len(want) == 0 {
			return nil, firstErr(err, missing("ResourceId.1"))
		}
		if rs, err = allTaggable(c, t); err != nil {
			return nil, err
		}
	}
	var rows []tagResourceView
	for _, r := range rs {
		if !filter(*r.tags) {
			continue
		}
		for _, tag := range *r.tags {
			rows = append(rows, tagResourceView{ResourceID: r.id, ResourceType: t.name, TagKey: tag.Key, TagValue: tag.Value})
		}
	}
	var resp struct {
		NextToken    string `json:"NextToken,omitempty"`
		TagResources struct {
			TagResource []tagResourceView `json:"TagResource"`
		} `json:"TagResources"`
	}
	resp.TagResources.TagResource = []tagResourceView{}
	if from < len(rows) {
		resp.TagResources.TagResource = rows[from:min(from+max, len(rows))]
	}
	if from+max < len(rows) {
		resp.NextToken = strconv.Itoa(from + max)
	}
	return resp, nil
}

// allTaggable loads every resource of the type the caller may see, by ID.
func allTaggable(c *Call, t *taggableType) ([]*taggable, error) {
	var ids []string
	if err := c.Tx.ForEachRaw(t.kind, func(id, _ []byte) error { ids = append(ids, string(id)); return nil }); err != nil {
		return nil, err
	}
	sort.Strings(ids)
	var out []*taggable
	for _, id := range ids {
		r, err := t.load(c, id)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// moveResourceGroupAliases are the other names callers give MoveResourceGroup's types.
var moveResourceGroupAliases = map[string]string{"BANDWIDTHPACKAGE": "COMMONBANDWIDTHPACKAGE"}

// moveResourceGroup moves a resource to the resource group NewResourceGroupId. eipgw
// has no resource directory: any group ID is taken (docs/api.md).
func (s *Service) moveResourceGroup(c *Call) (any, error) {
	t, err := resourceTypeParam(c, moveResourceGroupAliases)
	if err != nil {
		return nil, err
	}
	id, err := c.Params.required("ResourceId")
	if err != nil {
		return nil, err
	}
	group, err := c.Params.required("NewResourceGroupId")
	if err != nil {
		return nil, err
	}
	if !checkResourceGroupID(group) {
		return nil, invalid("NewResourceGroupId", group)
	}
	r, err := t.load(c, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, resourceNotFound(id)
	}
	*r.group = group
	return struct{}{}, r.save()
}

// checkResourceGroupID: a resource group ID is up to 64 letters, digits and '-'.
func checkResourceGroupID(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// resourceGroupParam reads an optional ResourceGroupId on create.
func resourceGroupParam(c *Call) (string, error) {
	v := c.Params["ResourceGroupId"]
	if v != "" && !checkResourceGroupID(v) {
		return "", invalid("ResourceGroupId", v)
	}
	return v, nil
}
