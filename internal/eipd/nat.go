package eipd

import (
	"context"
	"fmt"
	"github.com/eipgw/eipgw/desired"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/dataplane"
)

// NatSettings is the "nat" section of the configuration: NAT gateway timeouts, the
// external port range, per-source quotas (RFC 6888) and the session collector.
// Every field is optional; the defaults follow RFC 4787, 5382 and 5508.
type NatSettings struct {
	TCPEstablishedTimeout string `json:"tcp_established_timeout,omitempty"` // default 2h4m
	TCPTransitoryTimeout  string `json:"tcp_transitory_timeout,omitempty"`  // default 4m
	UDPTimeout            string `json:"udp_timeout,omitempty"`             // default 5m
	ICMPTimeout           string `json:"icmp_timeout,omitempty"`            // default 60s
	PortRange             string `json:"port_range,omitempty"`              // "min-max", default 1024-65535
	MaxSessionsPerSource  uint32 `json:"max_sessions_per_source,omitempty"`
	MaxPortsPerSource     uint32 `json:"max_ports_per_source,omitempty"`
	// ICMPSource is the address ICMP 3/13 refusals come from; default eip_gateway.
	ICMPSource      string `json:"icmp_source,omitempty"`
	CollectInterval string `json:"collect_interval,omitempty"` // default 1s
	MaxSessions     uint32 `json:"max_sessions,omitempty"`     // session table size, default 262144
	// MaxEIPs is how many EIPs NAT gateways may have in all; each takes 24 KiB of
	// port bitmaps, allocated at start. Default 1024.
	MaxEIPs uint32 `json:"max_eips,omitempty"`
	// UDPInboundRefresh lets the remote's packets keep a UDP session alive too
	// (RFC 4787 REQ-6 allows it; off by default: an outside host could hold a
	// mapping open for ever).
	UDPInboundRefresh bool `json:"udp_inbound_refresh,omitempty"`
}

// natConfig turns the section into the dataplane's settings.
func (n NatSettings) natConfig(fallbackICMPSource netip.Addr) (dataplane.NatConfig, time.Duration, error) {
	c := dataplane.DefaultNatConfig()
	collect := time.Second
	for _, d := range []struct {
		name string
		raw  string
		dst  *time.Duration
	}{{"nat.tcp_established_timeout", n.TCPEstablishedTimeout, &c.TCPEstablished},
		{"nat.tcp_transitory_timeout", n.TCPTransitoryTimeout, &c.TCPTransitory},
		{"nat.udp_timeout", n.UDPTimeout, &c.UDP}, {"nat.icmp_timeout", n.ICMPTimeout, &c.ICMP},
		{"nat.collect_interval", n.CollectInterval, &collect}} {
		if d.raw == "" {
			continue
		}
		v, err := time.ParseDuration(d.raw)
		if err != nil || v <= 0 {
			return c, 0, fmt.Errorf("%s: %q is not a positive duration", d.name, d.raw)
		}
		*d.dst = v
	}
	if n.PortRange != "" {
		lo, hi, ok := strings.Cut(n.PortRange, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || b < a {
			return c, 0, fmt.Errorf("nat.port_range: %q is not min-max within 1-65535", n.PortRange)
		}
		c.PortMin, c.PortMax = uint16(a), uint16(b)
	}
	if n.MaxSessionsPerSource != 0 {
		c.MaxSessionsPerSource = n.MaxSessionsPerSource
	}
	if n.MaxPortsPerSource != 0 {
		c.MaxPortsPerSource = n.MaxPortsPerSource
	}
	c.UDPInboundRefresh = n.UDPInboundRefresh
	c.ICMPSource = fallbackICMPSource
	if n.ICMPSource != "" {
		a, err := netip.ParseAddr(n.ICMPSource)
		if err != nil || !a.Is4() {
			return c, 0, fmt.Errorf("nat.icmp_source: %q is not an IPv4 address", n.ICMPSource)
		}
		c.ICMPSource = a
	}
	return c, collect, nil
}

// natObserver answers the API's session listing (model.NatObserver) from the dataplane.
type natObserver struct{ dp *dataplane.Dataplane }

func (a natObserver) NatSessions() ([]model.NatSession, error) {
	ss, err := a.dp.Sessions(nil)
	if err != nil {
		return nil, err
	}
	out := make([]model.NatSession, 0, len(ss))
	for _, s := range ss {
		out = append(out, model.NatSession{
			IPProtocol: desired.ProtoName(s.Protocol), Kind: string(s.Kind), State: s.State, Hairpin: s.Hairpin,
			InternalIP: s.Inside.Addr().String(), InternalPort: int(s.Inside.Port()),
			RemoteIP: s.Remote.Addr().String(), RemotePort: int(s.Remote.Port()),
			ExternalIP: s.External.Addr().String(), ExternalPort: int(s.External.Port()),
			IdleSeconds: s.Idle.Seconds(), TimeoutSeconds: s.Timeout.Seconds(),
		})
	}
	return out, nil
}

func (a natObserver) NatPortUsage() ([]model.NatPortUsage, error) {
	us, err := a.dp.PortUsages()
	if err != nil {
		return nil, err
	}
	out := make([]model.NatPortUsage, 0, len(us))
	for _, u := range us {
		out = append(out, model.NatPortUsage{IPAddress: u.EIP.String(), TCPPorts: u.TCP, UDPPorts: u.UDP,
			ICMPIdentifiers: u.ICMP, Sessions: u.Sessions, PortsPerProtocol: u.PortRangeCapacity})
	}
	return out, nil
}

// natCollector expires idle sessions in its own goroutine and keeps the figures
// metrics show, as of its last pass: a scrape reads them and never walks the
// sessions itself.
type natCollector struct {
	dp      *dataplane.Dataplane
	log     *slog.Logger
	expired atomic.Uint64

	mu    sync.Mutex
	usage []dataplane.PortUsage // per NAT EIP, as of the last pass
}

// run passes every `every` until ctx ends; wait for done before closing the dataplane.
func (c *natCollector) run(ctx context.Context, every time.Duration, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		c.collect(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (c *natCollector) collect(ctx context.Context) {
	res, err := c.dp.ExpireIdle(ctx)
	c.expired.Add(uint64(res.Expired))
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("NAT session collector", "error", err)
		}
		return
	}
	us, err := c.dp.PortUsages()
	if err != nil {
		c.log.Error("NAT session collector: port usage", "error", err)
		return
	}
	sort.Slice(us, func(i, j int) bool { return us[i].EIP.Less(us[j].EIP) })
	c.mu.Lock()
	c.usage = us
	c.mu.Unlock()
}
