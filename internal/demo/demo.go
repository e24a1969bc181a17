// Package demo builds the standard testbed, starts eipd on the gateway, drives it with
// eipctl to register a VM and give it an EIP, sends traffic both ways through it and
// prints what each side saw and the gateway's counters. `sudo make demo` runs it.
package demo

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// Options choose the demo's hook and where its binaries are.
type Options struct {
	Hook   string // xdp, tc, tcx or clsact
	BinDir string // holds eipd, eipctl and eipdp
	Out    io.Writer
}

const listen = "127.0.0.1:8080" // inside the gateway's namespace

// Run performs the demo and removes everything it made, also on failure.
func Run(opts Options) (err error) {
	out := opts.Out
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n== "+format+"\n", args...) }
	bin := func(name string) string { return filepath.Join(opts.BinDir, name) }

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
	dir, err := os.MkdirTemp("", "eipgw-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pinDir := filepath.Join(fs.Dir, "eipgw")
	files, err := eipd.WriteLocalSetup(dir, eipd.LocalSetup{Uplink: testbed.GWUplink, VPC: testbed.GWVPC, Hook: opts.Hook,
		Pools: []string{testbed.EIPPool}, Listen: listen, BPFFSDir: pinDir})
	if err != nil {
		return err
	}

	step("starting eipd on the gateway (NAT at %s on its uplink and VPC interfaces)", opts.Hook)
	logPath := filepath.Join(dir, "eipd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	daemon := exec.Command(bin("eipd"), "--config", files.Config, "--init")
	daemon.Stdout, daemon.Stderr = logFile, logFile
	if err := topo.GW.Start(daemon); err != nil {
		return err
	}
	defer func() {
		// The dataplane outlives eipd by design; the demo removes it on the way out.
		_ = daemon.Process.Kill()
		_, _ = topo.GW.Run(20*time.Second, bin("eipdp"), "--pin-dir", pinDir, "remove")
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "serving the API") {
			break
		}
		if time.Now().After(deadline) || daemon.ProcessState != nil {
			return fmt.Errorf("eipd did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	eipctl := func(args ...string) (string, error) {
		fmt.Fprintf(out, "$ eipctl %s\n", strings.Join(args, " "))
		b, err := topo.GW.Run(20*time.Second, bin("eipctl"), append([]string{"--profile", files.Profile}, args...)...)
		fmt.Fprint(out, string(b))
		return string(b), err
	}
	vm1MAC, err := topo.VM1.MAC(testbed.HostIface)
	if err != nil {
		return err
	}
	// The gateway translates only frames from the MAC an address is registered with.
	if _, err := eipctl("register-instance", "--instance-id", "i-vm1", "--vpc-id", "vpc-demo", "--private-ip-address", testbed.VM1Addr,
		"--mac-address", vm1MAC.String()); err != nil {
		return err
	}
	alloc, err := eipctl("--output", "json", "allocate-eip-address", "--bandwidth", "10", "--name", "demo")
	if err != nil {
		return err
	}
	id, eip := jsonField(alloc, "AllocationId"), jsonField(alloc, "EipAddress")
	if _, err := eipctl("associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1", "--instance-type", "EcsInstance"); err != nil {
		return err
	}
	if _, err := eipctl("describe-eip-addresses"); err != nil {
		return err
	}

	step("ping from inet1 (%s) to the EIP %s", testbed.Inet1Addr, eip)
	o, err := topo.Inet1.Run(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", eip)
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
	fmt.Fprintf(out, "in %.1f s: %.1f Mbit/s (the EIP's bandwidth: 10 Mbit/s)\n", tr.Elapsed.Seconds(),
		float64(tr.Bytes)*8/tr.Elapsed.Seconds()/1e6)
	step("TCP: inet2 (%s) sends 10 MiB to the EIP", testbed.Inet2Addr)
	tr, err = testbed.TCPTransfer(topo.VM1, ":5002", topo.Inet2, eip+":5002", size)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vm1 received %d bytes, intact: %v, from %s (the internet host's real address)\n", tr.Bytes, tr.Intact, tr.RemoteAddr)
	fmt.Fprintf(out, "in %.1f s: %.1f Mbit/s (the EIP's bandwidth: 10 Mbit/s)\n", tr.Elapsed.Seconds(),
		float64(tr.Bytes)*8/tr.Elapsed.Seconds()/1e6)
	step("UDP: inet1 sends a datagram to the EIP and vm1 answers")
	vmSaw, inetSaw, err := testbed.UDPExchange(topo.VM1, ":6000", topo.Inet1, eip+":6000", []byte("hello, vm1"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "vm1 saw the datagram from %s; inet1 saw the answer from %s\n", vmSaw, inetSaw)

	step("the gateway's counters (eipdp reads the pinned maps beside eipd)")
	o, err = topo.GW.Run(20*time.Second, bin("eipdp"), "--pin-dir", pinDir, "counters")
	fmt.Fprint(out, string(o))
	if err != nil {
		return err
	}
	step("disassociating: inbound stops at once")
	if _, err := eipctl("unassociate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1"); err != nil {
		return err
	}
	if _, _, err := testbed.UDPExchange(topo.VM1, ":6001", topo.Inet1, eip+":6001", []byte("still there?")); err == nil {
		return fmt.Errorf("the EIP still carries traffic after disassociation")
	}
	fmt.Fprintln(out, "a datagram to the EIP no longer reaches vm1")
	step("done: stopping eipd, removing the dataplane and the testbed")
	return nil
}

// jsonField pulls one string field out of eipctl's JSON output.
func jsonField(s, name string) string {
	i := strings.Index(s, `"`+name+`": "`)
	if i < 0 {
		return ""
	}
	rest := s[i+len(name)+5:]
	return rest[:strings.IndexByte(rest, '"')]
}

// DefaultBinDir is the running executable's directory.
func DefaultBinDir() string {
	self, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(self)
}
