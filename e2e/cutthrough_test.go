package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
	"github.com/vishvananda/netlink"
)

// The address of the internal-service host that cut-through instances must still
// reach through their primary ENI (100.64.0.0/10 is used for nothing else).
const (
	svcAddr   = "100.64.0.2"
	svcGWAddr = "100.64.0.1"
	ctListen  = testbed.GWVPCAddr + ":18080" // the API where instances' agents reach it
)

// secondaryENI gives a VM a second interface on the VPC switch and returns its MAC.
func secondaryENI(t *testing.T, d *daemon, vm *testbed.Host, port, addr string) string {
	t.Helper()
	ip, _, _ := strings.Cut(addr, "/")
	pfx := netip.MustParsePrefix(addr).Masked()
	for _, s := range []func() error{
		func() error { return testbed.Veth(d.Switch, port, vm, "eth1") },
		func() error { return d.Switch.Enslave(port, "br0") },
		// Not the defaults, so that an undo that rebuilds the address instead of
		// restoring it shows: no broadcast, noprefixroute, metric 50, and the subnet
		// routed by hand with the address as its source (the kernel drops that route
		// when the address goes).
		func() error { return vm.AddrNoPrefixRoute("eth1", addr, 50) },
		func() error {
			l, err := vm.Link("eth1")
			if err != nil {
				return err
			}
			_, subnet, _ := net.ParseCIDR(pfx.String())
			return vm.Netlink().RouteAdd(&netlink.Route{LinkIndex: l.Index, Dst: subnet, Src: net.ParseIP(ip),
				Priority: 50, Scope: netlink.SCOPE_LINK})
		},
		// The instance answers ARP for an address only on the interface that has it.
		func() error { return vm.Sysctl("net/ipv4/conf/all/arp_ignore", "1") },
	} {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := vm.Link("eth1")
	if err != nil {
		t.Fatal(err)
	}
	// What the ENI's address sends leaves through the ENI, as a cloud's source check
	// requires and the gateway enforces: the primary interface's MAC may not send it.
	const table = 31
	gw := &netlink.Route{LinkIndex: a.Index, Gw: net.ParseIP(testbed.GWVPCAddr), Table: table}
	if err := vm.Netlink().RouteAdd(gw); err != nil {
		t.Fatalf("route the ENI's address out of eth1: %v", err)
	}
	rule := netlink.NewRule()
	rule.Src = &net.IPNet{IP: net.ParseIP(ip).To4(), Mask: net.CIDRMask(32, 32)}
	rule.Table = table
	if err := vm.Netlink().RuleAdd(rule); err != nil {
		t.Fatalf("route the ENI's address out of eth1: %v", err)
	}
	return a.HardwareAddr.String()
}

// internalService adds a host on 100.64.0.0/10 behind the gateway.
func internalService(t *testing.T, d *daemon) *testbed.Host {
	t.Helper()
	svc, err := testbed.NewHost(d.GW.Name + "-svc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	for _, s := range []func() error{
		func() error { return testbed.Veth(d.GW, "svc", svc, testbed.HostIface) },
		func() error { return d.GW.Addr("svc", svcGWAddr+"/30") },
		func() error { return svc.Addr(testbed.HostIface, svcAddr+"/30") },
		func() error { return svc.Route("default", svcGWAddr, "") },
	} {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	return svc
}

// startAgent runs `eipd agent` in the VM for one ENI.
func startAgent(t *testing.T, d *daemon, vm *testbed.Host, eni, private string) *testbed.OutputBuffer {
	t.Helper()
	var prof map[string]string
	raw, _ := os.ReadFile(d.profile)
	_ = json.Unmarshal(raw, &prof)
	cfg := map[string]any{"endpoint": "https://" + ctListen, "ca_file": d.cert, "access_key_id": prof["access_key_id"],
		"access_key_secret": prof["access_key_secret"], "network_interface_id": eni, "interface": "eth1",
		"private_address": private, "primary_interface": "eth0", "primary_gateway": testbed.GWVPCAddr,
		"poll_interval": "200ms", "state_file": filepath.Join(d.dir, "agent-state-"+vm.Name+".json")}
	path := filepath.Join(d.dir, "agent-"+vm.Name+".json")
	raw, _ = json.Marshal(cfg)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testbed.OutputBuffer{}
	cmd := exec.Command(bin("eipd"), "agent", "--config", path)
	cmd.Stdout, cmd.Stderr = out, out
	if err := vm.Start(cmd); err != nil {
		t.Fatal(err)
	}
	return out
}

// ifaceState is the VM's IPv4 addresses, routes (every table) and rules as iproute2
// reports them with every attribute, to compare before and after. IPv6 is left out:
// its link-local addresses change flags by themselves (duplicate address detection).
func ifaceState(t *testing.T, vm *testbed.Host) string {
	t.Helper()
	var out []string
	for _, args := range [][]string{{"-4", "-j", "-d", "addr", "show"}, {"-4", "-j", "-d", "route", "show", "table", "all"},
		{"-4", "-j", "-d", "rule", "show"}} {
		b, err := vm.Run(5*time.Second, "ip", args...)
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, b)
		}
		out = append(out, string(b))
	}
	return strings.Join(out, "\n")
}

// hasAddr tells whether an ifaceState lists the address with that prefix length.
func hasAddr(state, ip string, bits int) bool {
	return strings.Contains(state, fmt.Sprintf(`"local":"%s","prefixlen":%d`, ip, bits))
}

// activeModeTransfer is the shape of active-mode FTP: the client tells the server,
// inside the payload, the address to connect back to, and the server sends data
// there. A NAT that does not rewrite payloads breaks it.
func activeModeTransfer(t *testing.T, client *testbed.Host, local string, server *testbed.Host) error {
	t.Helper()
	ctrlL, err := server.Listen("tcp", testbed.Inet1Addr+":7021")
	if err != nil {
		t.Fatal(err)
	}
	defer ctrlL.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ctrlL.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			serverErr <- err
			return
		}
		addr := strings.TrimSpace(strings.TrimPrefix(line, "PORT "))
		data, err := server.Dial("tcp", addr, 2*time.Second)
		if err != nil {
			serverErr <- fmt.Errorf("connect back to %s: %w", addr, err)
			return
		}
		_, err = io.WriteString(data, "the file\n")
		data.Close()
		serverErr <- err
	}()
	dataL, err := client.Listen("tcp", local+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer dataL.Close()
	var ctrl net.Conn
	err = client.Do(func() error {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		var err error
		ctrl, err = d.Dial("tcp", testbed.Inet1Addr+":7021")
		return err
	})
	if err != nil {
		return fmt.Errorf("control connection: %w", err)
	}
	defer ctrl.Close()
	// The address the client believes it has, as FTP's PORT command carries it.
	fmt.Fprintf(ctrl, "PORT %s:%d\n", ctrl.LocalAddr().(*net.TCPAddr).IP, dataL.Addr().(*net.TCPAddr).Port)
	got := make(chan string, 1)
	go func() {
		_ = dataL.(*net.TCPListener).SetDeadline(time.Now().Add(4 * time.Second))
		c, err := dataL.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	if err := <-serverErr; err != nil {
		return err
	}
	if s := <-got; s != "the file\n" {
		return fmt.Errorf("data connection delivered %q", s)
	}
	return nil
}

func waitAddr(t *testing.T, vm *testbed.Host, want string, present bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s on %s's eth1 (present=%v)", want, vm.Name, present), 10*time.Second, func() bool {
		return hasAddr(ifaceState(t, vm), want, 32) == present
	})
}

func TestCutThrough(t *testing.T) {
	d := newDaemonAt(t, "xdp", ctListen, testbed.GWVPCAddr)
	d.start(t, true)
	internalService(t, d)
	vm1MAC, _ := d.VM1.Link(testbed.HostIface)
	const ctPrivate = "10.0.1.31"
	ctMAC := secondaryENI(t, d, d.VM1, "vm1b", ctPrivate+"/16")
	before := ifaceState(t, d.VM1)

	d.must(t, "register-instance", "--instance-id", "i-vm1", "--vpc-id", "vpc-1", "--private-ip-address", testbed.VM1Addr,
		"--mac-address", vm1MAC.HardwareAddr.String())
	d.must(t, "create-network-interface", "--network-interface-id", "eni-ct", "--vpc-id", "vpc-1",
		"--primary-ip-address", ctPrivate, "--mac-address", ctMAC)
	id, eip := d.allocate(t)
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "eni-ct", "--instance-type", "NetworkInterface", "--mode", "BINDED")
	d.must(t, "attach-network-interface", "--network-interface-id", "eni-ct", "--instance-id", "i-vm1")
	agentLog := startAgent(t, d, d.VM1, "eni-ct", ctPrivate+"/16")
	waitAddr(t, d.VM1, eip, true)
	if hasAddr(ifaceState(t, d.VM1), ctPrivate, 16) {
		t.Errorf("BINDED mode kept the private address on eth1")
	}

	// A server on the VM at the EIP sees the internet host's real address.
	got := tcpTransfer(t, d.VM1, eip+":7020", d.Inet1, eip+":7020", 1<<20)
	if !got.Intact || got.RemoteAddr != testbed.Inet1Addr {
		t.Errorf("inet -> cut-through EIP: %+v", got)
	}
	// The VM still reaches the internal-service range, through its primary ENI.
	if _, err := d.VM1.Run(10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "2", svcAddr); err != nil {
		t.Errorf("the VM cannot reach %s: %v", svcAddr, err)
	}
	// Addresses in the payload work, because nothing is translated.
	if err := activeModeTransfer(t, d.VM1, eip, d.Inet1); err != nil {
		t.Errorf("active-mode transfer through the cut-through EIP: %v", err)
	}
	// Through a NAT-mode EIP the same exchange fails: the payload carries the
	// private address.
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	natID, natEIP := d.allocate(t)
	d.must(t, "associate-eip-address", "--allocation-id", natID, "--instance-id", "i-vm2")
	if err := activeModeTransfer(t, d.VM2, testbed.VM2Addr, d.Inet1); err == nil {
		t.Error("active-mode transfer worked through a NAT-mode EIP; it cannot")
	}
	// Metering as for a NAT-mode EIP.
	c := d.counters(t)
	if c.EIPs[eip].InPackets == 0 || c.EIPs[eip].OutPackets == 0 {
		t.Errorf("cut-through EIP counters: %v", c.EIPs[eip])
	}

	// Disassociation undoes it all and gives the interface back as it was.
	d.must(t, "unassociate-eip-address", "--allocation-id", id, "--instance-id", "eni-ct")
	waitAddr(t, d.VM1, eip, false)
	waitFor(t, "eth1 restored", 10*time.Second, func() bool { return ifaceState(t, d.VM1) == before })
	if after := ifaceState(t, d.VM1); after != before {
		t.Errorf("eth1 after disassociation:\n%s\nbefore:\n%s\nagent:\n%s", after, before, agentLog.String())
	}

	// Switching modes is a disassociation and an association: the same EIP now in
	// NAT mode on the ENI's private address, while the other EIP carries on.
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "eni-ct", "--instance-type", "NetworkInterface",
		"--private-ip-address", ctPrivate)
	vmSaw, inetSaw := udpTo(t, d, d.VM1, ctPrivate+":7040", eip+":7040")
	if vmSaw != testbed.Inet1Addr || inetSaw != eip {
		t.Errorf("the EIP in NAT mode: VM saw %s, inet saw %s", vmSaw, inetSaw)
	}
	if ifaceState(t, d.VM1) != before {
		t.Errorf("a NAT-mode association changed the instance's interface")
	}
	if vmSaw, _ := udpTo(t, d, d.VM2, ":7041", natEIP+":7041"); vmSaw != testbed.Inet1Addr {
		t.Errorf("the other EIP stopped working across the switch")
	}
}

func TestMultiEIPCutThrough(t *testing.T) {
	d := newDaemonAt(t, "tc", ctListen, testbed.GWVPCAddr)
	d.start(t, true)
	const private = "10.0.1.32"
	mac := secondaryENI(t, d, d.VM2, "vm2b", private+"/16")
	before := ifaceState(t, d.VM2)
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	d.must(t, "create-network-interface", "--network-interface-id", "eni-m", "--vpc-id", "vpc-1",
		"--primary-ip-address", private, "--mac-address", mac)
	d.must(t, "attach-network-interface", "--network-interface-id", "eni-m", "--instance-id", "i-vm2")
	var eips []string
	for i := 0; i < 3; i++ {
		id, eip := d.allocate(t)
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "eni-m", "--instance-type", "NetworkInterface", "--mode", "MULTI_BINDED")
		eips = append(eips, eip)
	}
	startAgent(t, d, d.VM2, "eni-m", private+"/16")
	for _, e := range eips {
		waitAddr(t, d.VM2, e, true)
	}
	state := ifaceState(t, d.VM2)
	if !hasAddr(state, private, 16) {
		t.Errorf("MULTI_BINDED mode removed the private address:\n%s", state)
	}
	// What DescribeEipGatewayInfo says is what is on the interface.
	info := d.must(t, "describe-eip-gateway-info", "--instance-id", "eni-m")
	list := info["EipInfos"].(map[string]any)["EipInfo"].([]any)
	if len(list) != 3 {
		t.Fatalf("gateway info: %v", info)
	}
	for _, raw := range list {
		e := raw.(map[string]any)
		if !hasAddr(state, e["Ip"].(string), 32) || e["IpGw"] != testbed.GWVPCAddr || e["IpMask"] != "255.255.255.0" {
			t.Errorf("gateway info %v does not match eth1:\n%s", e, state)
		}
	}
	// Each EIP serves its own listener.
	for i, e := range eips {
		port := 7030 + i
		vmSaw, inetSaw := udpTo(t, d, d.VM2, fmt.Sprintf("%s:%d", e, port), fmt.Sprintf("%s:%d", e, port))
		if vmSaw != testbed.Inet1Addr || inetSaw != e {
			t.Errorf("EIP %s: VM saw %s, inet saw the answer from %s", e, vmSaw, inetSaw)
		}
	}
	for i := range eips {
		m := d.must(t, "describe-eip-addresses", "--eip-address", eips[i])
		id := m["EipAddresses"].(map[string]any)["EipAddress"].([]any)[0].(map[string]any)["AllocationId"].(string)
		d.must(t, "unassociate-eip-address", "--allocation-id", id, "--instance-id", "eni-m")
	}
	waitFor(t, "eth1 restored", 10*time.Second, func() bool { return ifaceState(t, d.VM2) == before })
}
