// Package demo builds the standard testbed, binds an EIP to a VM through the eipdp
// binary, sends traffic both ways through it and prints what each side saw and the
// gateway's counters. `sudo make demo` runs it.
package demo

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

// EIP is the address the demo binds to vm1.
const EIP = "203.0.113.5"

// Options choose the demo's hook and where its eipdp binary is.
type Options struct {
	Hook  string // xdp, tc, tcx or clsact
	EIPDP string // path of the eipdp binary
	Out   io.Writer
}

// Run performs the demo and removes everything it made, also on failure.
func Run(opts Options) (err error) {
	out := opts.Out
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }

	step("building the testbed: 2 internet hosts, a router, the gateway, a VPC switch, 3 VMs (namespaces)")
	topo, err := testbed.New(testbed.Options{EndpointTXChecksum: true, WireChecksums: opts.Hook == "xdp"})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := topo.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fs, err := testbed.MountBPFFS()
	if err != nil {
		return err
	}
	defer fs.Close()
	pinDir := filepath.Join(fs.Dir, "eipgw")
	eipdp := func(args ...string) (string, error) {
		b, err := topo.GW.Run(20*time.Second, opts.EIPDP, append([]string{"--pin-dir", pinDir}, args...)...)
		return string(b), err
	}
	defer eipdp("remove")

	step("attaching the NAT at %s on the gateway's uplink and VPC interfaces", opts.Hook)
	for _, a := range [][]string{
		{"attach", testbed.GWUplink, "--role", "uplink", "--hook", opts.Hook},
		{"attach", testbed.GWVPC, "--role", "vpc", "--hook", opts.Hook},
		{"bind", EIP, testbed.VM1Addr},
		{"bindings"},
	} {
		fmt.Fprintf(out, "$ eipdp %v\n", a)
		o, err := eipdp(a...)
		fmt.Fprint(out, o)
		if err != nil {
			return err
		}
	}

	step("ping from inet1 (%s) to the EIP %s", testbed.Inet1Addr, EIP)
	o, err := topo.Inet1.Run(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", EIP)
	fmt.Fprint(out, string(o))
	if err != nil {
		return err
	}

	const size = 10 << 20
	step("TCP: vm1 (%s) sends 10 MiB to inet1", testbed.VM1Addr)
	tr, err := testbed.TCPTransfer(topo.Inet1, testbed.Inet1Addr+":5001", topo.VM1, testbed.Inet1Addr+":5001", size)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "inet1 received %d bytes, intact: %v, from %s (the EIP: the private address never leaves the VPC)\n",
		tr.Bytes, tr.Intact, tr.RemoteAddr)

	step("TCP: inet2 (%s) sends 10 MiB to the EIP", testbed.Inet2Addr)
	tr, err = testbed.TCPTransfer(topo.VM1, ":5002", topo.Inet2, EIP+":5002", size)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vm1 received %d bytes, intact: %v, from %s (the internet host's real address)\n",
		tr.Bytes, tr.Intact, tr.RemoteAddr)

	step("UDP: inet1 sends a datagram to the EIP and vm1 answers")
	vmSaw, inetSaw, err := testbed.UDPExchange(topo.VM1, ":6000", topo.Inet1, EIP+":6000", []byte("hello, vm1"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vm1 saw the datagram from %s; inet1 saw the answer from %s\n", vmSaw, inetSaw)

	step("the gateway's counters")
	counters, err := eipdp("counters")
	fmt.Fprint(out, counters)
	if err != nil {
		return err
	}
	step("done: removing the dataplane and the testbed")
	return nil
}

// DefaultEIPDP is eipdp beside the running executable.
func DefaultEIPDP() string {
	self, err := os.Executable()
	if err != nil {
		return "eipdp"
	}
	return filepath.Join(filepath.Dir(self), "eipdp")
}
