package e2e

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

// udpTo checks a datagram from inet1 to dial reaches a listener on listen in vm,
// and returns the address the VM saw it from and whether the answer came back from
// the EIP.
func udpTo(t *testing.T, d *daemon, vm *testbed.Host, listen, dial string) (vmSaw, inetSaw string) {
	t.Helper()
	vmSaw, inetSaw, err := testbed.UDPExchange(vm, listen, d.Inet1, dial, []byte("hello "+listen))
	if err != nil {
		t.Fatalf("%s -> %s: %v", dial, listen, err)
	}
	return vmSaw, inetSaw
}

// udpFrom sends from a chosen local address in vm to inet1 and returns the source
// inet1 saw.
func udpFrom(t *testing.T, d *daemon, vm *testbed.Host, local string) string {
	t.Helper()
	srv, err := d.Inet1.ListenPacket("udp4", testbed.Inet1Addr+":7300")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := vm.ListenPacket("udp4", local+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	dst, _ := net.ResolveUDPAddr("udp4", testbed.Inet1Addr+":7300")
	if _, err := cli.WriteTo([]byte("from "+local), dst); err != nil {
		t.Fatal(err)
	}
	_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
	_, from, err := srv.ReadFrom(make([]byte, 100))
	if err != nil {
		t.Fatalf("from %s: %v", local, err)
	}
	return from.(*net.UDPAddr).IP.String()
}

func (d *daemon) allocate(t *testing.T) (id, ip string) {
	t.Helper()
	m := d.must(t, "allocate-eip-address")
	return m["AllocationId"].(string), m["EipAddress"].(string)
}

// TestEipdAssociationTypes associates EIPs with each kind of resource that has a
// dataplane here, through eipctl, and sends traffic through each.
func TestEipdAssociationTypes(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)

	t.Run("network interface, two EIPs on two private addresses", func(t *testing.T) {
		m := d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
		eni := m["NetworkInterfaceId"].(string)
		const second = "10.0.1.22"
		d.must(t, "assign-private-ip-addresses", "--network-interface-id", eni, "--private-ip-address.1", second)
		if err := d.VM2.Addr(testbed.HostIface, second+"/16"); err != nil {
			t.Fatal(err)
		}
		idA, eipA := d.allocate(t)
		idB, eipB := d.allocate(t)
		d.must(t, "associate-eip-address", "--allocation-id", idA, "--instance-id", eni, "--instance-type", "NetworkInterface",
			"--private-ip-address", testbed.VM2Addr)
		d.must(t, "associate-eip-address", "--allocation-id", idB, "--instance-id", eni, "--instance-type", "NetworkInterface",
			"--private-ip-address", second)
		if _, errText := d.ctl(t, "associate-eip-address", "--allocation-id", idB, "--instance-id", eni,
			"--instance-type", "NetworkInterface", "--private-ip-address", second); !strings.Contains(errText, "IncorrectEipStatus") {
			t.Errorf("associating B twice: %q", errText)
		}
		for _, c := range []struct{ eip, priv string }{{eipA, testbed.VM2Addr}, {eipB, second}} {
			vmSaw, inetSaw := udpTo(t, d, d.VM2, c.priv+":7200", c.eip+":7200")
			if vmSaw != testbed.Inet1Addr || inetSaw != c.eip {
				t.Errorf("%s -> %s: VM saw %s, inet saw the answer from %s", c.eip, c.priv, vmSaw, inetSaw)
			}
			if got := udpFrom(t, d, d.VM2, c.priv); got != c.eip {
				t.Errorf("from %s the internet sees %s, want %s", c.priv, got, c.eip)
			}
		}
	})

	t.Run("load balancer VIP", func(t *testing.T) {
		const vip = "10.0.2.100"
		d.must(t, "register-load-balancer", "--load-balancer-id", "lb-1", "--vpc-id", "vpc-1", "--address", vip,
			"--mac-address", d.mac(t, d.VM3))
		if err := d.VM3.Addr(testbed.HostIface, vip+"/16"); err != nil {
			t.Fatal(err)
		}
		id, eip := d.allocate(t)
		d.lbEIP = eip
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "lb-1", "--instance-type", "SlbInstance")
		vmSaw, inetSaw := udpTo(t, d, d.VM3, vip+":7201", eip+":7201")
		if vmSaw != testbed.Inet1Addr || inetSaw != eip {
			t.Errorf("through the CLB's EIP: VM saw %s, inet saw %s", vmSaw, inetSaw)
		}
	})

	t.Run("SIGTERM leaves the dataplane forwarding", func(t *testing.T) {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Wait(); err != nil {
			t.Fatalf("eipd on SIGTERM: %v\n%s", err, d.log.String())
		}
		if !strings.Contains(d.log.String(), "the dataplane keeps forwarding") {
			t.Errorf("eipd log:\n%s", d.log.String())
		}
		vmSaw, _ := udpTo(t, d, d.VM3, "10.0.2.100:7210", d.lbEIP+":7210")
		if vmSaw != testbed.Inet1Addr {
			t.Errorf("with eipd stopped the CLB's EIP delivered from %s", vmSaw)
		}
		d.start(t, false)
	})

	t.Run("havip moving between VMs under ping", func(t *testing.T) {
		const vip = "10.0.1.200"
		d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
		d.must(t, "create-ha-vip", "--ha-vip-id", "havip-1", "--vpc-id", "vpc-1", "--ip-address", vip)
		d.must(t, "associate-ha-vip", "--ha-vip-id", "havip-1", "--instance-id", "i-vm1")
		d.must(t, "associate-ha-vip", "--ha-vip-id", "havip-1", "--instance-id", "i-vm2")
		id, eip := d.allocate(t)
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "havip-1", "--instance-type", "HaVip")
		vipAddr := netip.MustParseAddr(vip)
		if err := d.VM1.Addr(testbed.HostIface, vip+"/16"); err != nil {
			t.Fatal(err)
		}
		if err := d.VM1.GratuitousARP(testbed.HostIface, vipAddr); err != nil {
			t.Fatal(err)
		}
		udpTo(t, d, d.VM1, vip+":7202", eip+":7202")

		// 400 pings 10 ms apart; the HaVip moves to vm2 after one second.
		const interval, count = 10 * time.Millisecond, 400
		out := make(chan string, 1)
		go func() {
			o, _ := d.Inet1.Run(30*time.Second, "ping", "-n", "-i", "0.01", "-c", strconv.Itoa(count), "-W", "1", eip)
			out <- string(o)
		}()
		time.Sleep(time.Second)
		if err := d.VM1.DelAddr(testbed.HostIface, vip+"/16"); err != nil {
			t.Fatal(err)
		}
		if err := d.VM2.Addr(testbed.HostIface, vip+"/16"); err != nil {
			t.Fatal(err)
		}
		if err := d.VM2.GratuitousARP(testbed.HostIface, vipAddr); err != nil {
			t.Fatal(err)
		}
		text := <-out
		seen := map[int]bool{}
		for _, m := range regexp.MustCompile(`icmp_seq=(\d+) `).FindAllStringSubmatch(text, -1) {
			n, _ := strconv.Atoi(m[1])
			seen[n] = true
		}
		gap, run := 0, 0
		for i := 1; i <= count; i++ {
			if seen[i] {
				run = 0
				continue
			}
			run++
			gap = max(gap, run)
		}
		t.Logf("HaVip failover: %d of %d pings answered, longest gap %d pings (%v)", len(seen), count, gap, time.Duration(gap)*interval)
		if !seen[count] && !seen[count-1] {
			t.Errorf("pings did not come back after the HaVip moved:\n%s", text)
		}
		if len(seen) < count/2 {
			t.Errorf("most pings were lost:\n%s", text)
		}
		vmSaw, _ := udpTo(t, d, d.VM2, vip+":7203", eip+":7203")
		if vmSaw != testbed.Inet1Addr {
			t.Errorf("after the move vm2 saw %s", vmSaw)
		}
	})
}
