package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
)

// The standard topology of DESIGN.md:
//
//	[inet1 198.51.100.10] --.                                       .-- [vm1 10.0.1.11]
//	[inet2 198.51.100.20] ---[router]--- uplink [gw] vpc ---[switch]--- [vm2 10.0.1.12]
//	                       routes 203.0.113.0/24 via gw              '-- [vm3 10.0.2.13]
const (
	Inet1Addr      = "198.51.100.10"
	Inet2Addr      = "198.51.100.20"
	RouterInetAddr = "198.51.100.1"
	RouterGWAddr   = "198.51.100.253"
	GWUplinkAddr   = "198.51.100.254"
	GWVPCAddr      = "10.0.0.1"
	VM1Addr        = "10.0.1.11"
	VM2Addr        = "10.0.1.12"
	VM3Addr        = "10.0.2.13"
	EIPPool        = "203.0.113.0/24"
	GWUplink       = "uplink" // the gateway's interface towards the router
	GWVPC          = "vpc"    // the gateway's interface towards the VPC switch
	HostIface      = "eth0"   // every inet host's and VM's interface
)

// Options vary the topology between test runs.
type Options struct {
	// Prefix starts every namespace name; empty picks a random one.
	Prefix string
	// EndpointTXChecksum keeps transmit checksum offload on at the inet hosts and VMs,
	// so their TCP and UDP leave with CHECKSUM_PARTIAL. Off, they carry full checksums.
	EndpointTXChecksum bool
	// WireChecksums makes the router and the switch compute checksums in software on
	// their ports towards the gateway, as a physical wire delivers them. A gateway
	// running at XDP needs it on veth: an XDP program cannot see that a frame's
	// checksum is only partial, and a redirected frame loses that mark.
	WireChecksums bool
}

// Topology is the standard test network.
type Topology struct {
	Inet1, Inet2, Router, GW, Switch, VM1, VM2, VM3 *Host
	hosts                                           []*Host
}

// New builds the standard topology. On error nothing is left behind.
func New(opts Options) (_ *Topology, err error) {
	if opts.Prefix == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		opts.Prefix = "eipgw-" + hex.EncodeToString(b)
	}
	t := &Topology{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	host := func(name string) (*Host, error) {
		h, err := NewHost(opts.Prefix + "-" + name)
		if err == nil {
			t.hosts = append(t.hosts, h)
		}
		return h, err
	}
	for _, p := range []struct {
		h    **Host
		name string
	}{{&t.Inet1, "inet1"}, {&t.Inet2, "inet2"}, {&t.Router, "router"}, {&t.GW, "gw"},
		{&t.Switch, "switch"}, {&t.VM1, "vm1"}, {&t.VM2, "vm2"}, {&t.VM3, "vm3"}} {
		if *p.h, err = host(p.name); err != nil {
			return nil, err
		}
	}

	steps := []func() error{
		// Internet side: two hosts on the router's bridge, the router's link to the gateway.
		func() error { return Veth(t.Inet1, HostIface, t.Router, "inet1") },
		func() error { return Veth(t.Inet2, HostIface, t.Router, "inet2") },
		func() error { return t.Router.Bridge("br-inet", "inet1", "inet2") },
		func() error { return t.Router.Addr("br-inet", RouterInetAddr+"/25") },
		func() error { return Veth(t.Router, "gw", t.GW, GWUplink) },
		func() error { return t.Router.Addr("gw", RouterGWAddr+"/30") },
		func() error { return t.Router.Route(EIPPool, GWUplinkAddr, "") },
		func() error { return t.GW.Addr(GWUplink, GWUplinkAddr+"/30") },
		func() error { return t.GW.Route("default", RouterGWAddr, "") },
		// VPC side: the switch bridges the gateway and the instances.
		func() error { return Veth(t.Switch, "gw", t.GW, GWVPC) },
		func() error { return t.GW.Addr(GWVPC, GWVPCAddr+"/16") },
		func() error { return Veth(t.Switch, "vm1", t.VM1, HostIface) },
		func() error { return Veth(t.Switch, "vm2", t.VM2, HostIface) },
		func() error { return Veth(t.Switch, "vm3", t.VM3, HostIface) },
		func() error { return t.Switch.Bridge("br0", "gw", "vm1", "vm2", "vm3") },
	}
	for _, vm := range []struct {
		h    *Host
		addr string
	}{{t.VM1, VM1Addr}, {t.VM2, VM2Addr}, {t.VM3, VM3Addr}} {
		vm := vm
		steps = append(steps,
			func() error { return vm.h.Addr(HostIface, vm.addr+"/16") },
			func() error { return vm.h.Route("default", GWVPCAddr, "") })
	}
	for _, inet := range []struct {
		h    *Host
		addr string
	}{{t.Inet1, Inet1Addr}, {t.Inet2, Inet2Addr}} {
		inet := inet
		steps = append(steps,
			func() error { return inet.h.Addr(HostIface, inet.addr+"/25") },
			func() error { return inet.h.Route("default", RouterInetAddr, "") })
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}

	if err := t.Router.forwarder(); err != nil {
		return nil, err
	}
	if err := t.GW.forwarder(GWUplink, GWVPC); err != nil {
		return nil, err
	}
	for _, h := range []*Host{t.Router, t.GW} {
		// Tests count ICMP errors; the default rate limit would hide some.
		if err := h.Sysctl("net/ipv4/icmp_ratelimit", "0"); err != nil {
			return nil, err
		}
	}
	for _, h := range []*Host{t.Inet1, t.Inet2, t.VM1, t.VM2, t.VM3} {
		if err := h.Sysctl("net/ipv4/icmp_ratelimit", "0"); err != nil {
			return nil, err
		}
		if err := h.SetTXChecksum(HostIface, opts.EndpointTXChecksum); err != nil {
			return nil, err
		}
	}
	// The ports that feed the gateway: GRO gives them the NAPI context that
	// XDP_REDIRECT into their peer needs.
	for _, p := range []struct {
		h      *Host
		ifname string
	}{{t.Router, "gw"}, {t.Switch, "gw"}} {
		if err := p.h.SetGRO(p.ifname, true); err != nil {
			return nil, err
		}
		// VLAN tags reach the gateway in the frame, as over a wire to a NIC whose
		// receive VLAN offload is off (docs/security.md).
		if err := p.h.SetTXVLANOffload(p.ifname, false); err != nil {
			return nil, err
		}
		if opts.WireChecksums {
			if err := p.h.SetTXChecksum(p.ifname, false); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// Close deletes every namespace, killing what runs there.
func (t *Topology) Close() error {
	err := closeHosts(t.hosts)
	t.hosts = nil
	return err
}

// forwarder makes h forward IPv4 without reverse-path filtering (on every interface,
// and on ifaces, made before): a gateway forwards translated packets whose source
// routes out of the other side, which strict filtering would drop.
func (h *Host) forwarder(ifaces ...string) error {
	keys := []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter"}
	for _, i := range ifaces {
		keys = append(keys, "net/ipv4/conf/"+i+"/rp_filter")
	}
	if err := h.Sysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	for _, k := range keys {
		if err := h.Sysctl(k, "0"); err != nil {
			return err
		}
	}
	return nil
}

// closeHosts closes hosts, the last made first.
func closeHosts(hosts []*Host) error {
	var errs []error
	for i := len(hosts) - 1; i >= 0; i-- {
		errs = append(errs, hosts[i].Close())
	}
	return errors.Join(errs...)
}
