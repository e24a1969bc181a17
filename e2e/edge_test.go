package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// refused sends three times and checks that nothing carrying payload arrives at the
// host at, and that reason counted each.
func (d *daemon) refused(t *testing.T, at *testbed.Host, payload []byte, reason string, send func() error) {
	t.Helper()
	capture, err := at.CaptureIPv4(testbed.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()
	before := d.counters(t).Reasons[reason]
	for n := 0; n < 3; n++ {
		if err := send(); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		frame, err := capture.Next(time.Until(deadline))
		if err != nil {
			break
		}
		if bytes.Contains(frame, payload) {
			t.Fatalf("it arrived at %s", at.Name)
		}
	}
	if after := d.counters(t).Reasons[reason]; after < before+3 {
		t.Errorf("%s moved by %d, want at least 3", reason, after-before)
	}
}

// TestEdgeRefuses: what a tenant or an internet host must not get through the gateway
// is not delivered, and each refusal is counted. VM1 holds an EIP; VM2 is registered
// without one; VM3 is not registered at all.
func TestEdgeRefuses(t *testing.T) {
	d, _, eip := withVM1EIP(t, "xdp", nil)
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	// The control: VM1's own traffic goes out as its EIP.
	if vmSaw, inetSaw := udpTo(t, d, d.VM1, ":7400", eip+":7400"); vmSaw != testbed.Inet1Addr || inetSaw != eip {
		t.Fatalf("VM1's EIP does not work: VM saw %s, inet saw %s", vmSaw, inetSaw)
	}
	// An attacker on the internet side routes the VPC's range to the gateway.
	if err := d.Router.Route("10.0.0.0/8", testbed.GWUplinkAddr, ""); err != nil {
		t.Fatal(err)
	}
	eipAddr := netip.MustParseAddr(eip)
	inet1 := netip.MustParseAddr(testbed.Inet1Addr)
	vm1 := netip.MustParseAddr(testbed.VM1Addr)
	for i, c := range []struct {
		name     string
		from     *testbed.Host
		src, dst netip.Addr
		at       *testbed.Host // where it must not arrive
		reason   string
	}{
		{"a VM sending as another VM's address", d.VM2, vm1, inet1, d.Inet1, "drop_spoofed_source"},
		{"a VM sending as another VM's EIP", d.VM2, eipAddr, inet1, d.Inet1, "drop_spoofed_source"},
		{"a VM sending as an unallocated pool address", d.VM2, netip.MustParseAddr("203.0.113.250"), inet1, d.Inet1, "drop_spoofed_source"},
		{"an unregistered VM", d.VM3, netip.MustParseAddr(testbed.VM3Addr), inet1, d.Inet1, "drop_untranslated_source"},
		{"an unknown private source", d.VM3, netip.MustParseAddr("172.16.99.99"), inet1, d.Inet1, "drop_untranslated_source"},
		{"a registered VM without an EIP", d.VM2, netip.MustParseAddr(testbed.VM2Addr), inet1, d.Inet1, "drop_untranslated_source"},
		{"the internet from a private source", d.Inet1, netip.MustParseAddr("10.1.2.3"), eipAddr, d.VM1, "drop_bogon_source"},
		{"the internet from link-local", d.Inet1, netip.MustParseAddr("169.254.7.7"), eipAddr, d.VM1, "drop_bogon_source"},
		{"the internet from shared address space", d.Inet1, netip.MustParseAddr("100.64.1.1"), eipAddr, d.VM1, "drop_bogon_source"},
		{"the internet straight to a VM's private address", d.Inet1, inet1, vm1, d.VM1, "drop_unpublished_destination"},
		{"a VM's limited broadcast", d.VM1, vm1, netip.MustParseAddr("255.255.255.255"), d.Inet1, "pass_broadcast_multicast"},
		{"a VM's link-local multicast", d.VM1, vm1, netip.MustParseAddr("224.0.0.251"), d.Inet1, "pass_broadcast_multicast"},
	} {
		t.Run(c.name, func(t *testing.T) {
			payload := []byte(fmt.Sprintf("eipgw edge probe %d", i))
			pkt, err := testbed.UDPDatagram(netip.AddrPortFrom(c.src, 7500), netip.AddrPortFrom(c.dst, 7500), uint16(4000+i), payload)
			if err != nil {
				t.Fatal(err)
			}
			d.refused(t, c.at, payload, c.reason, func() error { return c.from.SendIPv4(pkt, c.dst) })
		})
	}
}

// TestEdgeVLANTaggedFramesAreNotTranslated: a bound VM sends a VLAN-tagged frame. It
// goes to the gateway's kernel (which has no such VLAN) and is counted, never
// translated and sent on untagged. At XDP the tag is in the frame; at TC the kernel has
// moved it into the packet's metadata by then, which the program reads too.
func TestEdgeVLANTaggedFramesAreNotTranslated(t *testing.T) {
	for _, hook := range []string{"xdp", "tcx"} {
		t.Run(hook, func(t *testing.T) {
			d, _, eip := withVM1EIP(t, hook, nil)
			if vmSaw, _ := udpTo(t, d, d.VM1, ":7410", eip+":7410"); vmSaw != testbed.Inet1Addr {
				t.Fatalf("VM1's EIP does not work: VM saw %s", vmSaw)
			}
			gwMAC, err := d.GW.MAC(testbed.GWVPC)
			if err != nil {
				t.Fatal(err)
			}
			vmMAC, err := d.VM1.MAC(testbed.HostIface)
			if err != nil {
				t.Fatal(err)
			}
			payload := gopacket.Payload("eipgw tagged probe")
			ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
				SrcIP: net.ParseIP(testbed.VM1Addr).To4(), DstIP: net.ParseIP(testbed.Inet1Addr).To4()}
			udp := &layers.UDP{SrcPort: 7411, DstPort: 7411}
			_ = udp.SetNetworkLayerForChecksum(ip)
			buf := gopacket.NewSerializeBuffer()
			if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
				&layers.Ethernet{SrcMAC: vmMAC, DstMAC: gwMAC, EthernetType: layers.EthernetTypeDot1Q},
				&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4}, ip, udp, payload); err != nil {
				t.Fatal(err)
			}
			d.refused(t, d.Inet1, payload, "pass_vlan_tagged", func() error { return d.VM1.SendFrame(testbed.HostIface, buf.Bytes()) })
		})
	}
}
