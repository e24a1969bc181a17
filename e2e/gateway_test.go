package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

// gateway is the standard topology with the dataplane attached to the gateway through
// the eipdp binary.
type gateway struct {
	*testbed.Topology
	pinDir string
	hook   string
}

func newGateway(t *testing.T, hook string, endpointTXChecksum bool) *gateway {
	t.Helper()
	testbed.Require(t)
	topo, err := testbed.New(testbed.Options{
		EndpointTXChecksum: endpointTXChecksum,
		// XDP cannot see a partial checksum: the wire into the gateway must carry
		// full ones, as a physical link does. At TC the partial ones reach us.
		WireChecksums: hook == "xdp",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Error(err)
		}
	})
	fs, err := testbed.MountBPFFS()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{Topology: topo, pinDir: filepath.Join(fs.Dir, "eipgw"), hook: hook}
	t.Cleanup(func() {
		defer fs.Close() // also when remove fails the test
		g.remove(t)
	})
	return g
}

// remove deletes the gateway's dataplane: it detaches, so the namespaces go without
// our programs on them. eipd and eipdp serve hold the dataplane, and remove refuses
// it while they do: they are stopped first.
func (g *gateway) remove(t *testing.T) {
	t.Helper()
	g.GW.StopProcesses()
	g.eipdp(t, "remove")
}

// eipdp runs the CLI inside the gateway's namespace and returns its output.
// mac is the MAC of host's interface, as eipdp and eipctl take it.
func (g *gateway) mac(t *testing.T, host *testbed.Host) string {
	t.Helper()
	mac, err := host.MAC(testbed.HostIface)
	if err != nil {
		t.Fatal(err)
	}
	return mac.String()
}

func (g *gateway) eipdp(t *testing.T, args ...string) string {
	t.Helper()
	out, err := g.GW.Run(20*time.Second, bin("eipdp"), append([]string{"--pin-dir", g.pinDir}, args...)...)
	if err != nil {
		t.Fatalf("eipdp %v: %v", args, err)
	}
	return string(out)
}

func (g *gateway) attach(t *testing.T) {
	t.Helper()
	g.eipdp(t, "attach", testbed.GWUplink, "--role", "uplink", "--hook", g.hook)
	g.eipdp(t, "attach", testbed.GWVPC, "--role", "vpc", "--hook", g.hook)
}

type counters struct {
	EIPs map[string]struct {
		InPackets, InBytes, OutPackets, OutBytes uint64
	} `json:"eips"`
	Reasons map[string]uint64 `json:"reasons"`
}

func (g *gateway) counters(t *testing.T) counters {
	t.Helper()
	var c counters
	out := g.eipdp(t, "--output", "json", "counters")
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("counters output %q: %v", out, err)
	}
	return c
}

func (c counters) String() string { return fmt.Sprintf("eips=%v reasons=%v", c.EIPs, c.Reasons) }
