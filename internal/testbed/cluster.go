package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ClusterTopology is the cluster test network: an internet host behind a router whose
// one segment reaches every gateway's uplink (the router learns the EIPs over BGP and
// spreads flows over the gateways), and the gateways on one VPC switch with a VM whose
// default route is the first gateway.
type ClusterTopology struct {
	Inet, Router, Switch, VM *Host
	GWs                      []*Host
	hosts                    []*Host
}

// The cluster topology's addresses: the internet host's and the router's as in the
// standard topology, the gateways' segment 198.51.100.128/26, the VPC 10.0.0.0/16.
const (
	ClusterRouterGWsAddr = "198.51.100.129"
	clusterGWsBits       = 26
)

// ClusterGWUplinkAddr is gateway i's uplink address (its BGP next hop).
func ClusterGWUplinkAddr(i int) string { return fmt.Sprintf("198.51.100.%d", 130+i) }

// ClusterGWVPCAddr is gateway i's VPC address.
func ClusterGWVPCAddr(i int) string { return fmt.Sprintf("10.0.0.%d", 1+i) }

// NewCluster builds the cluster topology with n gateways. On error nothing is left
// behind.
func NewCluster(n int) (_ *ClusterTopology, err error) {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	prefix := "eipgwc-" + hex.EncodeToString(b)
	t := &ClusterTopology{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	host := func(name string) (*Host, error) {
		h, err := NewHost(prefix + "-" + name)
		if err == nil {
			t.hosts = append(t.hosts, h)
		}
		return h, err
	}
	for _, p := range []struct {
		h    **Host
		name string
	}{{&t.Inet, "inet"}, {&t.Router, "router"}, {&t.Switch, "switch"}, {&t.VM, "vm"}} {
		if *p.h, err = host(p.name); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		g, err := host(fmt.Sprintf("gw%d", i))
		if err != nil {
			return nil, err
		}
		t.GWs = append(t.GWs, g)
	}
	steps := []func() error{
		func() error { return Veth(t.Inet, HostIface, t.Router, "inet") },
		func() error { return t.Router.Addr("inet", RouterInetAddr+"/25") },
		func() error { return t.Inet.Addr(HostIface, Inet1Addr+"/25") },
		func() error { return t.Inet.Route("default", RouterInetAddr, "") },
		func() error { return t.Router.Bridge("gws") },
		func() error { return t.Router.Addr("gws", fmt.Sprintf("%s/%d", ClusterRouterGWsAddr, clusterGWsBits)) },
		func() error { return t.Switch.Bridge("br0") },
		func() error { return Veth(t.Switch, "vm", t.VM, HostIface) },
		func() error { return t.Switch.Enslave("vm", "br0") },
		func() error { return t.VM.Addr(HostIface, VM1Addr+"/16") },
	}
	for i, g := range t.GWs {
		port := fmt.Sprintf("gw%d", i)
		steps = append(steps,
			func() error { return Veth(t.Router, port, g, GWUplink) },
			func() error { return t.Router.Enslave(port, "gws") },
			func() error { return g.Addr(GWUplink, fmt.Sprintf("%s/%d", ClusterGWUplinkAddr(i), clusterGWsBits)) },
			func() error { return g.Route("default", ClusterRouterGWsAddr, "") },
			func() error { return Veth(t.Switch, port, g, GWVPC) },
			func() error { return t.Switch.Enslave(port, "br0") },
			func() error { return g.Addr(GWVPC, ClusterGWVPCAddr(i)+"/16") })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	// The VM's default route is gateway 0: any gateway translates a 1:1 EIP's
	// replies (no state), and which gateway a VM sends through is the VPC's choice,
	// which eipgw does not make (docs/cluster.md). The router spreads flows by port.
	if err := t.VM.Route("default", ClusterGWVPCAddr(0), ""); err != nil {
		return nil, err
	}
	if err := t.Router.Sysctl("net/ipv4/fib_multipath_hash_policy", "1"); err != nil {
		return nil, err
	}
	if err := t.Router.forwarder(); err != nil {
		return nil, err
	}
	for _, g := range t.GWs {
		if err := g.forwarder(GWUplink, GWVPC); err != nil {
			return nil, err
		}
	}
	for _, h := range []*Host{t.Inet, t.VM} {
		if err := h.SetTXChecksum(HostIface, false); err != nil {
			return nil, err
		}
	}
	// The router's bridge does not flood unknown unicast to the gateways: when a
	// gateway's port goes down its MAC is forgotten, and a flooding bridge would hand
	// its frames to the other gateways, hiding the failover this network is for.
	for i := range t.GWs {
		l, err := t.Router.Netlink().LinkByName(fmt.Sprintf("gw%d", i))
		if err == nil {
			err = t.Router.Netlink().LinkSetFlood(l, false)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: no flooding on gw%d: %w", t.Router.Name, i, err)
		}
	}
	// The ports that feed the gateways, as in the standard topology: GRO for the NAPI
	// context XDP_REDIRECT needs, full checksums as a wire delivers them.
	for i := range t.GWs {
		for _, h := range []*Host{t.Router, t.Switch} {
			port := fmt.Sprintf("gw%d", i)
			if err := h.SetGRO(port, true); err != nil {
				return nil, err
			}
			if err := h.SetTXChecksum(port, false); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// Close deletes every namespace, killing what runs there.
func (t *ClusterTopology) Close() error {
	err := closeHosts(t.hosts)
	t.hosts = nil
	return err
}
