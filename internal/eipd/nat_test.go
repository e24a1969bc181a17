package eipd

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/dataplane"
)

// TestNatSettings: the "nat" section turns into the dataplane's settings, with the
// RFC defaults for what it leaves out, and every bad value named in the error.
func TestNatSettings(t *testing.T) {
	gw := netip.MustParseAddr("10.0.0.1")
	c, collect, err := NatSettings{}.natConfig(gw)
	if err != nil {
		t.Fatal(err)
	}
	def := dataplane.DefaultNatConfig()
	def.ICMPSource = gw
	if c != def || collect != time.Second {
		t.Errorf("defaults: %+v every %v, want %+v every 1s", c, collect, def)
	}
	if c.TCPEstablished < 2*time.Hour+4*time.Minute || c.TCPTransitory < 4*time.Minute || c.UDP < 2*time.Minute || c.ICMP < time.Minute {
		t.Errorf("defaults below the RFC minimums: %+v", c)
	}

	c, collect, err = NatSettings{TCPEstablishedTimeout: "3h", TCPTransitoryTimeout: "5m", UDPTimeout: "150s",
		ICMPTimeout: "90s", PortRange: "20000-29999", MaxSessionsPerSource: 100, MaxPortsPerSource: 50,
		ICMPSource: "10.0.0.9", CollectInterval: "250ms", UDPInboundRefresh: true}.natConfig(gw)
	if err != nil {
		t.Fatal(err)
	}
	if c.TCPEstablished != 3*time.Hour || c.TCPTransitory != 5*time.Minute || c.UDP != 150*time.Second ||
		c.ICMP != 90*time.Second || c.PortMin != 20000 || c.PortMax != 29999 || c.MaxSessionsPerSource != 100 ||
		c.MaxPortsPerSource != 50 || c.ICMPSource != netip.MustParseAddr("10.0.0.9") || !c.UDPInboundRefresh ||
		collect != 250*time.Millisecond {
		t.Errorf("set: %+v every %v", c, collect)
	}

	for _, bad := range []struct {
		s    NatSettings
		want string
	}{
		{NatSettings{UDPTimeout: "soon"}, "nat.udp_timeout"},
		{NatSettings{TCPEstablishedTimeout: "-1h"}, "nat.tcp_established_timeout"},
		{NatSettings{CollectInterval: "0s"}, "nat.collect_interval"},
		{NatSettings{PortRange: "2000"}, "nat.port_range"},
		{NatSettings{PortRange: "3000-2000"}, "nat.port_range"},
		{NatSettings{PortRange: "0-100"}, "nat.port_range"},
		{NatSettings{PortRange: "1-70000"}, "nat.port_range"},
		{NatSettings{ICMPSource: "2001:db8::1"}, "nat.icmp_source"},
		{NatSettings{ICMPSource: "gateway"}, "nat.icmp_source"},
	} {
		if _, _, err := bad.s.natConfig(gw); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: error %v, want one naming %s", bad.s, err, bad.want)
		}
	}
}
