package model

import (
	"net/http"
	"slices"
	"strings"
)

// eipgw extensions to the API (not in the VPC OpenAPI): the live sessions and port use
// of a NAT gateway, answered from the dataplane through Service.Nat.
func init() {
	register("DescribeNatGatewaySessions", false, (*Service).describeNatSessions)
	register("DescribeNatGatewayPortUsage", false, (*Service).describeNatPortUsage)
}

// NatSession is one tracked session as the API shows it.
type NatSession struct {
	IPProtocol     string  `json:"IpProtocol"`
	Kind           string  `json:"Kind"` // snat or dnat
	State          string  `json:"State"`
	Hairpin        bool    `json:"Hairpin"`
	InternalIP     string  `json:"InternalIp"`
	InternalPort   int     `json:"InternalPort"`
	RemoteIP       string  `json:"RemoteIp"`
	RemotePort     int     `json:"RemotePort"`
	ExternalIP     string  `json:"ExternalIp"`
	ExternalPort   int     `json:"ExternalPort"`
	IdleSeconds    float64 `json:"IdleSeconds"`
	TimeoutSeconds float64 `json:"TimeoutSeconds"`
}

// NatPortUsage is one EIP's external port use.
type NatPortUsage struct {
	IPAddress        string `json:"IpAddress"`
	TCPPorts         int    `json:"TcpPorts"`
	UDPPorts         int    `json:"UdpPorts"`
	ICMPIdentifiers  int    `json:"IcmpIdentifiers"`
	Sessions         int    `json:"Sessions"`
	PortsPerProtocol int    `json:"PortsPerProtocol"`
}

// NatObserver reads the dataplane's sessions for the API.
type NatObserver interface {
	NatSessions() ([]NatSession, error)
	NatPortUsage() ([]NatPortUsage, error)
}

var errNoDataplane = fail(http.StatusServiceUnavailable, "ServiceUnavailable", "The dataplane's sessions cannot be read here.")

// gatewayEIPList checks the gateway and returns its EIP addresses.
func gatewayEIPList(c *Call) ([]string, error) {
	g, err := natGatewayParam(c)
	if err != nil {
		return nil, err
	}
	owned, err := gatewayEIPs(c, g)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(owned))
	for ip := range owned {
		out = append(out, ip)
	}
	return out, nil
}

func (s *Service) describeNatSessions(c *Call) (any, error) {
	eips, err := gatewayEIPList(c)
	if err != nil {
		return nil, err
	}
	if s.Nat == nil {
		return nil, errNoDataplane
	}
	proto := strings.ToLower(c.Params["IpProtocol"])
	if proto != "" && proto != "tcp" && proto != "udp" && proto != "icmp" {
		return nil, errProtocol
	}
	all, err := s.Nat.NatSessions()
	if err != nil {
		return nil, err
	}
	rows := []NatSession{}
	for _, ss := range all {
		if !slices.Contains(eips, ss.ExternalIP) ||
			(c.Params["ExternalIp"] != "" && ss.ExternalIP != c.Params["ExternalIp"]) ||
			(c.Params["InternalIp"] != "" && ss.InternalIP != c.Params["InternalIp"]) ||
			(proto != "" && ss.IPProtocol != proto) {
			continue
		}
		rows = append(rows, ss)
	}
	return page(c, "Sessions", "Session", rows)
}

func (s *Service) describeNatPortUsage(c *Call) (any, error) {
	eips, err := gatewayEIPList(c)
	if err != nil {
		return nil, err
	}
	if s.Nat == nil {
		return nil, errNoDataplane
	}
	all, err := s.Nat.NatPortUsage()
	if err != nil {
		return nil, err
	}
	rows := []NatPortUsage{}
	for _, u := range all {
		if slices.Contains(eips, u.IPAddress) {
			rows = append(rows, u)
		}
	}
	return map[string]any{"PortUsages": map[string]any{"PortUsage": rows}}, nil
}
