package e2e

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

// TestHookSwitchAndDetach moves a live gateway from XDP to TC and back to XDP, with
// traffic checked after each move, then detaches it: the EIP must stop working.
func TestHookSwitchAndDetach(t *testing.T) {
	g := newGateway(t, "xdp", false)
	// Software checksums on the wire for XDP; TC copes either way.
	g.attach(t)
	g.eipdp(t, "bind", eip, testbed.VM1Addr, g.mac(t, g.VM1))
	ping := func() error {
		_, err := g.Inet1.Run(10*time.Second, "ping", "-c", "2", "-i", "0.2", "-W", "1", eip)
		return err
	}
	// "tc" is tcx where the kernel has it, as here.
	for _, move := range []struct{ hook, want string }{{"tc", "tcx"}, {"clsact", "clsact"}, {"xdp", "xdp"}} {
		hook := move.hook
		g.hook = hook
		g.attach(t)
		want := map[string]string{testbed.GWUplink: move.want, testbed.GWVPC: move.want}
		if got := g.attachments(t); !maps.Equal(got, want) {
			t.Errorf("after moving to %s, attachments are %v, want %v", hook, got, want)
		}
		if err := ping(); err != nil {
			t.Errorf("after moving to %s: %v", hook, err)
		}
		got := tcpTransfer(t, g.VM1, ":5003", g.Inet1, eip+":5003", 1<<20)
		if !got.Intact {
			t.Errorf("after moving to %s: 1 MiB arrived as %d bytes or changed", hook, got.Bytes)
		}
	}
	g.eipdp(t, "detach", testbed.GWUplink)
	g.eipdp(t, "detach", testbed.GWVPC)
	if err := ping(); err == nil {
		t.Error("the EIP still answers after the NAT was detached from both interfaces")
	}
	if got := g.attachments(t); len(got) != 0 {
		t.Errorf("attachments after detach: %v", got)
	}
}

// attachments maps each interface with the NAT on it to its hook.
func (g *gateway) attachments(t *testing.T) map[string]string {
	t.Helper()
	var rows []struct{ Interface, Hook string }
	out := g.eipdp(t, "--output", "json", "attachments")
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("attachments output %q: %v", out, err)
	}
	m := map[string]string{}
	for _, r := range rows {
		if _, dup := m[r.Interface]; dup {
			t.Errorf("%s is attached twice: %s", r.Interface, out)
		}
		m[r.Interface] = r.Hook
	}
	return m
}
