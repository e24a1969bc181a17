package model

import (
	"github.com/eipgw/eipgw/desired"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// NAT gateways' SNAT and forward (DNAT) entries: the model and its rules. The
// dataplane of NAT gateways (connection tracking, port allocation) is not built yet;
// these entries are stored and checked, and carry no traffic.
func init() {
	register("DescribeNatGateways", false, (*Service).describeNatGateways)
	register("DeleteNatGateway", true, (*Service).deleteNatGateway)
	register("ModifyNatGatewayAttribute", true, (*Service).modifyNatGatewayAttribute)
	register("ModifyNatGatewaySpec", true, (*Service).modifyNatGatewaySpec)
	register("CreateSnatEntry", true, (*Service).createSnatEntry)
	register("ModifySnatEntry", true, (*Service).modifySnatEntry)
	register("DeleteSnatEntry", true, (*Service).deleteSnatEntry)
	register("DescribeSnatTableEntries", false, (*Service).describeSnatEntries)
	register("CreateForwardEntry", true, (*Service).createForwardEntry)
	register("ModifyForwardEntry", true, (*Service).modifyForwardEntry)
	register("DeleteForwardEntry", true, (*Service).deleteForwardEntry)
	register("DescribeForwardTableEntries", false, (*Service).describeForwardEntries)
}

const (
	KindSnat    = "snat"
	KindForward = "fwd"
)

// SnatEntry maps a source range to the gateway's EIPs for outbound traffic.
type SnatEntry struct {
	SnatEntryID  string `json:"SnatEntryId"`
	SnatTableID  string `json:"SnatTableId"`
	NatGatewayID string `json:"NatGatewayId"`
	SourceCIDR   string `json:"SourceCIDR"`
	// SourceVSwitchID, when the entry was made for a vSwitch, names it: SourceCIDR is
	// its block then.
	SourceVSwitchID string `json:"SourceVSwitchId"`
	SnatIP          string `json:"SnatIp"` // the API's comma list of the pool's EIPs
	Name            string `json:"SnatEntryName"`
	EipAffinity     int    `json:"EipAffinity"`
	Status          string `json:"Status"`
}

// ForwardEntry publishes an internal address (and port range) on an EIP.
type ForwardEntry struct {
	ForwardEntryID string `json:"ForwardEntryId"`
	ForwardTableID string `json:"ForwardTableId"`
	NatGatewayID   string `json:"NatGatewayId"`
	ExternalIP     string `json:"ExternalIp"`
	ExternalPort   string `json:"ExternalPort"`
	InternalIP     string `json:"InternalIp"`
	InternalPort   string `json:"InternalPort"`
	IPProtocol     string `json:"IpProtocol"` // tcp, udp or any
	Name           string `json:"ForwardEntryName"`
	PortBreak      bool   `json:"PortBreak"`
	Status         string `json:"Status"`
}

var (
	errSnatTableNotFound = fail(http.StatusNotFound, "InvalidSnatTableId.NotFound", "Specified SNAT table does not exist.")
	errSnatEntryNotFound = fail(http.StatusNotFound, "InvalidSnatEntryId.NotFound", "Specified SNAT entry does not exist.")
	errSnatIPMalformed   = badRequest("InvalidSnatIp.Malformed", "The specified SnatIp is not a valid IP address.")
	errSnatIPNotFound    = fail(http.StatusNotFound, "InvalidSnatIp.NotFound", "Specified SnatIp does not found on the NAT Gateway")
	errSnatIPTooMany     = badRequest("SNAT_IP_POOL_COUNT_TOO_MANY", "The Snat pool ip too many.")
	errSourceDuplicated  = badRequest("Forbidden.SourceVSwitchId.Duplicated", "The specified SourceCIDR is duplicated.")
	errIPInForwardTable  = badRequest("Forbidden.IpUsedInForwardTable", "The specified SnatIp already used in forward table")
	errFwdTableNotFound  = fail(http.StatusNotFound, "InvalidForwardTableId.NotFound", "Specified forward table does not exist.")
	errFwdEntryNotFound  = fail(http.StatusNotFound, "InvalidForwardEntryId.NotFound", "Specified forward entry ID does not exist")
	errExternalIPMalform = badRequest("InvalidExternalIp.Malformed", "The specified ExternalIp is not a valid IP address.")
	errInternalIPMalform = badRequest("InvalidInternalIp.Malformed", "The specified InternalIp is not a valid IP address.")
	errExternalPort      = badRequest("InvalidExternalPort.Malformed", "The specified ExternalPort is not a valid port.")
	errInternalPort      = badRequest("InvalidInternalPort.Malformed", "The specified InternalPort is not a valid port.")
	errProtocol          = badRequest("InvalidProtocal.ValueNotSupported", "The specified IpProtocol does not support.")
	errIPNotInNatgw      = badRequest("InvalidIp.NotInNatgw", "The specified Ip not belong to natgateway.")
	errExternalIPInSnat  = badRequest("Forbidden.ExternalIp.UsedInSnatTable", "The specified ExternalIp is already used in SnatTable")
	errPortOccupied      = badRequest("Forbidden.PortOccupied", "ExternalIp, ExternalPort and IpProtocol overlap an existing forward entry.")
	errEipUsedByNatEntry = badRequest("DependencyViolation.NatEntry", "The EIP is used by a SNAT or forward entry; delete the entry first.")
	errInternalIPMapped  = badRequest("Forbidden.InternalIpMapped", "The specified InternalIp already has an EIP or an IP mapping (Any/Any forward entry).")
	errNatGatewayInUse   = badRequest("DependencyViolation.NatGateway", "The NAT gateway still has EIPs or entries.")
)

// natTables derives a gateway's table IDs: one SNAT and one forward table each.
func natTables(g *NatGateway) (snat, fwd string) {
	suffix := strings.TrimPrefix(g.NatGatewayID, "ngw-")
	return "stb-" + suffix, "ftb-" + suffix
}

func gatewayOfTable(c *Call, tableID string, forward bool) (*NatGateway, error) {
	gws, err := list[NatGateway](c.Tx, KindNAT)
	if err != nil {
		return nil, err
	}
	for _, g := range gws {
		s, f := natTables(g)
		if (!forward && s == tableID) || (forward && f == tableID) {
			return g, nil
		}
	}
	if forward {
		return nil, errFwdTableNotFound
	}
	return nil, errSnatTableNotFound
}

// gatewayEIPs maps the gateway's associated EIP addresses to their AllocationIds.
func gatewayEIPs(c *Call, g *NatGateway) (map[string]bool, error) {
	eips, err := eipsOn(c.Tx, TypeNat, g.NatGatewayID)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range eips {
		out[e.IPAddress] = true
	}
	return out, nil
}

func (s *Service) snatIPs(c *Call, g *NatGateway, raw string) ([]string, error) {
	owned, err := gatewayEIPs(c, g)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, p := range strings.Split(raw, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(p))
		if err != nil || !a.Is4() {
			return nil, errSnatIPMalformed
		}
		if !owned[a.String()] {
			return nil, errSnatIPNotFound
		}
		if !slices.Contains(ips, a.String()) {
			ips = append(ips, a.String())
		}
	}
	if len(ips) > desired.MaxPoolEIPs {
		return nil, errSnatIPTooMany
	}
	fwds, err := list[ForwardEntry](c.Tx, KindForward)
	if err != nil {
		return nil, err
	}
	for _, f := range fwds {
		if f.IPProtocol == "any" && slices.Contains(ips, f.ExternalIP) {
			return nil, errIPInForwardTable // whole-IP mapping owns the address
		}
	}
	return ips, nil
}

func (s *Service) createSnatEntry(c *Call) (any, error) {
	table, err := c.Params.required("SnatTableId")
	if err != nil {
		return nil, err
	}
	g, err := gatewayOfTable(c, table, false)
	if err != nil {
		return nil, err
	}
	// A vSwitch's block, or a CIDR block (one of the two).
	var vswitch string
	rawCIDR := c.Params["SourceCIDR"]
	if c.Params["SourceVSwitchId"] != "" {
		if rawCIDR != "" {
			return nil, invalid("SourceCIDR", rawCIDR)
		}
		v, err := vSwitchParam(c, "SourceVSwitchId")
		if err != nil {
			return nil, err
		}
		if v.VpcID != g.VpcID {
			return nil, badRequest("InvalidParameter.Mismatch", "The vSwitch is not in the NAT gateway's VPC.")
		}
		vswitch, rawCIDR = v.VSwitchID, v.CidrBlock
	} else if rawCIDR, err = c.Params.required("SourceCIDR"); err != nil {
		return nil, err
	}
	src, err := netip.ParsePrefix(rawCIDR)
	if err != nil || !src.Addr().Is4() {
		return nil, invalid("SourceCIDR", rawCIDR)
	}
	src = src.Masked()
	rawIPs, err := c.Params.required("SnatIp")
	if err != nil {
		return nil, err
	}
	ips, err := s.snatIPs(c, g, rawIPs)
	if err != nil {
		return nil, err
	}
	affinity, err := c.Params.intIn("EipAffinity", 0, 0, 1)
	if err != nil {
		return nil, err
	}
	name, _, err := c.Params.entryName("SnatEntryName")
	if err != nil {
		return nil, err
	}
	entries, err := list[SnatEntry](c.Tx, KindSnat)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.SnatTableID == table && netip.MustParsePrefix(e.SourceCIDR).Overlaps(src) {
			return nil, errSourceDuplicated // a source is in at most one entry
		}
	}
	e := &SnatEntry{SnatEntryID: newID("snat"), SnatTableID: table, NatGatewayID: g.NatGatewayID, SourceCIDR: src.String(),
		SourceVSwitchID: vswitch, SnatIP: strings.Join(ips, ","), Name: name, EipAffinity: affinity, Status: "Available"}
	return struct {
		SnatEntryID string `json:"SnatEntryId"`
	}{e.SnatEntryID}, put(c.Tx, KindSnat, e.SnatEntryID, e)
}

// tableEntries checks that the table named by tableParam exists and lists its entries
// of a kind, only the one named by idParam when the request names one. It returns the
// table's gateway too.
func tableEntries[T any](c *Call, kind, tableParam, idParam string, forward bool,
	tableOf, idOf func(*T) string) ([]*T, *NatGateway, error) {
	table, err := c.Params.required(tableParam)
	if err != nil {
		return nil, nil, err
	}
	g, err := gatewayOfTable(c, table, forward)
	if err != nil {
		return nil, nil, err
	}
	all, err := list[T](c.Tx, kind)
	if err != nil {
		return nil, nil, err
	}
	var rows []*T
	for _, e := range all {
		if tableOf(e) == table && (c.Params[idParam] == "" || c.Params[idParam] == idOf(e)) {
			rows = append(rows, e)
		}
	}
	return rows, g, nil
}

func snatEntries(c *Call) ([]*SnatEntry, *NatGateway, error) {
	return tableEntries(c, KindSnat, "SnatTableId", "SnatEntryId", false,
		func(e *SnatEntry) string { return e.SnatTableID }, func(e *SnatEntry) string { return e.SnatEntryID })
}

func forwardEntries(c *Call) ([]*ForwardEntry, *NatGateway, error) {
	return tableEntries(c, KindForward, "ForwardTableId", "ForwardEntryId", true,
		func(e *ForwardEntry) string { return e.ForwardTableID }, func(e *ForwardEntry) string { return e.ForwardEntryID })
}

func snatEntry(c *Call) (*SnatEntry, error) {
	if _, err := c.Params.required("SnatEntryId"); err != nil {
		return nil, err
	}
	rows, _, err := snatEntries(c)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errSnatEntryNotFound
	}
	return rows[0], nil
}

func (s *Service) modifySnatEntry(c *Call) (any, error) {
	e, err := snatEntry(c)
	if err != nil {
		return nil, err
	}
	if raw, ok := c.Params["SnatIp"]; ok {
		g, err := get[NatGateway](c.Tx, KindNAT, e.NatGatewayID)
		if err != nil || g == nil {
			return nil, firstErr(err, errSnatTableNotFound)
		}
		ips, err := s.snatIPs(c, g, raw)
		if err != nil {
			return nil, err
		}
		e.SnatIP = strings.Join(ips, ",")
	}
	if v, ok, err := c.Params.entryName("SnatEntryName"); err != nil {
		return nil, err
	} else if ok {
		e.Name = v
	}
	return struct{}{}, put(c.Tx, KindSnat, e.SnatEntryID, e)
}

func (s *Service) deleteSnatEntry(c *Call) (any, error) {
	e, err := snatEntry(c)
	if err != nil {
		return nil, err
	}
	return struct{}{}, c.Tx.Delete(KindSnat, e.SnatEntryID)
}

func (s *Service) describeSnatEntries(c *Call) (any, error) {
	rows, _, err := snatEntries(c)
	if err != nil {
		return nil, err
	}
	return page(c, "SnatTableEntries", "SnatTableEntry", rows)
}

// page answers a Describe with paging, under the API's two-level list names.
func page[T any](c *Call, outer, inner string, rows []T) (any, error) {
	pageNo, err := c.Params.intIn("PageNumber", 1, 1, 1<<30)
	if err != nil {
		return nil, err
	}
	size, err := c.Params.intIn("PageSize", 10, 1, 100)
	if err != nil {
		return nil, err
	}
	from := min((pageNo-1)*size, len(rows))
	return map[string]any{"TotalCount": len(rows), "PageNumber": pageNo, "PageSize": size,
		outer: map[string]any{inner: append([]T{}, rows[from:min(from+size, len(rows))]...)}}, nil
}

// portRange parses "80", "1000/1010" or "any"; the range is inclusive.
func portRange(v string) (lo, hi int, any bool, ok bool) {
	if strings.EqualFold(v, "any") {
		return 0, 0, true, true
	}
	a, b, ranged := strings.Cut(v, "/")
	if !ranged {
		b = a
	}
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, false, false
	}
	return lo, hi, false, true
}

func (s *Service) forwardEntryFromParams(c *Call, g *NatGateway, e *ForwardEntry) error {
	ext, err := netip.ParseAddr(e.ExternalIP)
	if err != nil || !ext.Is4() {
		return errExternalIPMalform
	}
	in, err := netip.ParseAddr(e.InternalIP)
	if err != nil || !in.Is4() {
		return errInternalIPMalform
	}
	owned, err := gatewayEIPs(c, g)
	if err != nil {
		return err
	}
	if !owned[ext.String()] {
		return errIPNotInNatgw
	}
	switch strings.ToLower(e.IPProtocol) {
	case "tcp", "udp", "any":
		e.IPProtocol = strings.ToLower(e.IPProtocol)
	default:
		return errProtocol
	}
	elo, ehi, eany, ok := portRange(e.ExternalPort)
	if !ok {
		return errExternalPort
	}
	ilo, ihi, iany, ok := portRange(e.InternalPort)
	if !ok {
		return errInternalPort
	}
	// Any/Any maps the whole address, and only with protocol any; ranges must be
	// of equal length.
	if eany != iany || (eany && e.IPProtocol != "any") || (!eany && e.IPProtocol == "any") {
		return errExternalPort
	}
	if ehi-elo != ihi-ilo {
		return errInternalPort
	}
	if eany {
		// An IP mapping is a 1:1 binding: the internal address can have only one.
		if taken, err := privateTaken(c.Tx, in.String()); err != nil {
			return err
		} else if taken {
			return errInternalIPMapped
		}
		snats, err := list[SnatEntry](c.Tx, KindSnat)
		if err != nil {
			return err
		}
		for _, sn := range snats {
			if slices.Contains(strings.Split(sn.SnatIP, ","), ext.String()) {
				return errExternalIPInSnat
			}
		}
	}
	others, err := list[ForwardEntry](c.Tx, KindForward)
	if err != nil {
		return err
	}
	for _, o := range others {
		if o.ForwardEntryID == e.ForwardEntryID {
			continue
		}
		if eany && o.InternalIP == e.InternalIP && strings.EqualFold(o.ExternalPort, "any") {
			return errInternalIPMapped
		}
		if o.ExternalIP != e.ExternalIP {
			continue
		}
		olo, ohi, oany, _ := portRange(o.ExternalPort)
		sameProto := o.IPProtocol == e.IPProtocol || o.IPProtocol == "any" || e.IPProtocol == "any"
		if sameProto && (oany || eany || (elo <= ohi && olo <= ehi)) {
			return errPortOccupied
		}
	}
	return nil
}

func (s *Service) createForwardEntry(c *Call) (any, error) {
	table, err := c.Params.required("ForwardTableId")
	if err != nil {
		return nil, err
	}
	g, err := gatewayOfTable(c, table, true)
	if err != nil {
		return nil, err
	}
	name, _, err := c.Params.entryName("ForwardEntryName")
	if err != nil {
		return nil, err
	}
	e := &ForwardEntry{ForwardEntryID: newID("fwd"), ForwardTableID: table, NatGatewayID: g.NatGatewayID,
		Name: name, PortBreak: c.Params["PortBreak"] == "true", Status: "Available"}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"ExternalIp", &e.ExternalIP}, {"ExternalPort", &e.ExternalPort}, {"InternalIp", &e.InternalIP},
		{"InternalPort", &e.InternalPort}, {"IpProtocol", &e.IPProtocol}} {
		if *f.dst, err = c.Params.required(f.name); err != nil {
			return nil, err
		}
	}
	if err := s.forwardEntryFromParams(c, g, e); err != nil {
		return nil, err
	}
	return struct {
		ForwardEntryID string `json:"ForwardEntryId"`
	}{e.ForwardEntryID}, put(c.Tx, KindForward, e.ForwardEntryID, e)
}

func forwardEntry(c *Call) (*ForwardEntry, *NatGateway, error) {
	if _, err := c.Params.required("ForwardEntryId"); err != nil {
		return nil, nil, err
	}
	rows, g, err := forwardEntries(c)
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, errFwdEntryNotFound
	}
	return rows[0], g, nil
}

func (s *Service) modifyForwardEntry(c *Call) (any, error) {
	e, g, err := forwardEntry(c)
	if err != nil {
		return nil, err
	}
	if _, _, err := c.Params.entryName("ForwardEntryName"); err != nil {
		return nil, err
	}
	for name, dst := range map[string]*string{"ExternalIp": &e.ExternalIP, "ExternalPort": &e.ExternalPort,
		"InternalIp": &e.InternalIP, "InternalPort": &e.InternalPort, "IpProtocol": &e.IPProtocol, "ForwardEntryName": &e.Name} {
		if v, ok := c.Params[name]; ok {
			*dst = v
		}
	}
	if err := s.forwardEntryFromParams(c, g, e); err != nil {
		return nil, err
	}
	return struct{}{}, put(c.Tx, KindForward, e.ForwardEntryID, e)
}

func (s *Service) deleteForwardEntry(c *Call) (any, error) {
	e, _, err := forwardEntry(c)
	if err != nil {
		return nil, err
	}
	return struct{}{}, c.Tx.Delete(KindForward, e.ForwardEntryID)
}

func (s *Service) describeForwardEntries(c *Call) (any, error) {
	rows, _, err := forwardEntries(c)
	if err != nil {
		return nil, err
	}
	return page(c, "ForwardTableEntries", "ForwardTableEntry", rows)
}

// eipUsedByNatEntry tells whether a NAT gateway's entry uses the address.
func eipUsedByNatEntry(tx Tx, ip string) (bool, error) {
	snats, err := list[SnatEntry](tx, KindSnat)
	if err != nil {
		return false, err
	}
	for _, sn := range snats {
		if slices.Contains(strings.Split(sn.SnatIP, ","), ip) {
			return true, nil
		}
	}
	fwds, err := list[ForwardEntry](tx, KindForward)
	if err != nil {
		return false, err
	}
	for _, f := range fwds {
		if f.ExternalIP == ip {
			return true, nil
		}
	}
	return false, nil
}

type natGatewayView struct {
	NatGatewayID string `json:"NatGatewayId"`
	VpcID        string `json:"VpcId"`
	Name         string `json:"Name"`
	Description  string `json:"Description"`
	Status       string `json:"Status"`
	SnatTableIDs struct {
		SnatTableID []string `json:"SnatTableId"`
	} `json:"SnatTableIds"`
	ForwardTableIDs struct {
		ForwardTableID []string `json:"ForwardTableId"`
	} `json:"ForwardTableIds"`
	IPLists struct {
		IPList []map[string]string `json:"IpList"`
	} `json:"IpLists"`
	ResourceGroupID string `json:"ResourceGroupId"`
	Tags            struct {
		Tag []natGatewayTagView `json:"Tag"`
	} `json:"Tags"`
	RegionID           string `json:"RegionId"`
	NatType            string `json:"NatType"`
	NetworkType        string `json:"NetworkType"`
	InstanceChargeType string `json:"InstanceChargeType"`
	InternetChargeType string `json:"InternetChargeType"`
	Spec               string `json:"Spec"`
	DeletionProtection bool   `json:"DeletionProtection"`
	// The vSwitch the gateway was created in, if any (the provider reads it
	// unconditionally).
	NatGatewayPrivateInfo struct {
		VswitchID string `json:"VswitchId"`
	} `json:"NatGatewayPrivateInfo"`
}

// natGatewayTagView is a tag in DescribeNatGateways, which names its fields TagKey
// and TagValue.
type natGatewayTagView struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

func (s *Service) describeNatGateways(c *Call) (any, error) {
	gws, err := list[NatGateway](c.Tx, KindNAT)
	if err != nil {
		return nil, err
	}
	tagged, err := c.Params.tagFilter("Tag")
	if err != nil {
		return nil, err
	}
	match := c.Params.matches
	var rows []natGatewayView
	for _, g := range gws {
		if !match("NatGatewayId", g.NatGatewayID) || !match("ResourceGroupId", g.ResourceGroupID) || !tagged(g.Tags) {
			continue
		}
		charge := g.InternetChargeType
		if charge == "" {
			charge = "PayByLcu" // gateways stored before the field was
		}
		v := natGatewayView{NatGatewayID: g.NatGatewayID, VpcID: g.VpcID, Name: g.Name, Description: g.Description, Status: "Available",
			ResourceGroupID: g.ResourceGroupID, RegionID: g.Region, NatType: "Enhanced", NetworkType: "internet",
			InstanceChargeType: "PostPaid", InternetChargeType: charge, DeletionProtection: g.DeletionProtection}
		v.NatGatewayPrivateInfo.VswitchID = g.VSwitchID
		v.Tags.Tag = []natGatewayTagView{}
		for _, t := range g.Tags {
			v.Tags.Tag = append(v.Tags.Tag, natGatewayTagView{TagKey: t.Key, TagValue: t.Value})
		}
		snat, fwd := natTables(g)
		v.SnatTableIDs.SnatTableID = []string{snat}
		v.ForwardTableIDs.ForwardTableID = []string{fwd}
		eips, err := eipsOn(c.Tx, TypeNat, g.NatGatewayID)
		if err != nil {
			return nil, err
		}
		sort.Slice(eips, func(i, j int) bool { return eips[i].IPAddress < eips[j].IPAddress })
		v.IPLists.IPList = []map[string]string{}
		for _, e := range eips {
			v.IPLists.IPList = append(v.IPLists.IPList, map[string]string{"AllocationId": e.AllocationID, "IpAddress": e.IPAddress})
		}
		rows = append(rows, v)
	}
	return page(c, "NatGateways", "NatGateway", rows)
}

// natGatewayName and natGatewayDescription are a NAT gateway's: Name 2-128 characters
// from a letter, Description 2-256 from a letter.
func (p Params) natGatewayName() (string, bool, error) { return p.text("Name", 2, 128, true, true) }
func (p Params) natGatewayDescription() (string, bool, error) {
	return p.text("Description", 2, 256, true, false)
}

// natGatewayParam is the NAT gateway NatGatewayId names.
func natGatewayParam(c *Call) (*NatGateway, error) { return natGatewayNamed(c, "NatGatewayId") }

// natGatewayNamed finds the NAT gateway the parameter name names.
func natGatewayNamed(c *Call, name string) (*NatGateway, error) {
	id, err := c.Params.required(name)
	if err != nil {
		return nil, err
	}
	g, err := get[NatGateway](c.Tx, KindNAT, id)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, notFound("NatGateway", id)
	}
	return g, nil
}

// errNoNatSpec refuses a specification change: eipgw's NAT gateways are of the
// enhanced kind, whose capacity is not a specification; here it is the dataplane's
// (nat.max_sessions and the per-source quotas, docs/eipd.md).
var errNoNatSpec = badRequest("OperationUnsupported.NatGatewaySpec",
	"This NAT gateway has no specification to change: its capacity is the gateway's dataplane's.")

// modifyNatGatewaySpec checks its request and refuses it (errNoNatSpec), so that a
// caller learns why instead of a change that would mean nothing.
func (s *Service) modifyNatGatewaySpec(c *Call) (any, error) {
	if _, err := natGatewayParam(c); err != nil {
		return nil, err
	}
	if _, err := c.Params.required("Spec"); err != nil {
		return nil, err
	}
	if _, err := c.Params.oneOf("Spec", "", "Small", "Middle", "Large", "XLarge.1"); err != nil {
		return nil, err
	}
	return nil, errNoNatSpec
}

// modifyNatGatewayAttribute changes a NAT gateway's Name and Description.
func (s *Service) modifyNatGatewayAttribute(c *Call) (any, error) {
	g, err := natGatewayParam(c)
	if err != nil {
		return nil, err
	}
	if v, ok, err := c.Params.natGatewayName(); err != nil {
		return nil, err
	} else if ok {
		g.Name = v
	}
	if v, ok, err := c.Params.natGatewayDescription(); err != nil {
		return nil, err
	} else if ok {
		g.Description = v
	}
	return struct{}{}, put(c.Tx, KindNAT, g.NatGatewayID, g)
}

func (s *Service) deleteNatGateway(c *Call) (any, error) {
	g, err := natGatewayParam(c)
	if err != nil {
		return nil, err
	}
	if g.DeletionProtection {
		return nil, errDeletionProtected
	}
	id := g.NatGatewayID
	eips, err := eipIDsOn(c.Tx, TypeNat, id)
	if err != nil {
		return nil, err
	}
	snats, err := list[SnatEntry](c.Tx, KindSnat)
	if err != nil {
		return nil, err
	}
	fwds, err := list[ForwardEntry](c.Tx, KindForward)
	if err != nil {
		return nil, err
	}
	used := len(eips) > 0
	for _, e := range snats {
		used = used || e.NatGatewayID == id
	}
	for _, e := range fwds {
		used = used || e.NatGatewayID == id
	}
	if used {
		return nil, errNatGatewayInUse
	}
	return struct{}{}, c.Tx.Delete(KindNAT, id)
}
