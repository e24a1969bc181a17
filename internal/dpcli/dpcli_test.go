package dpcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/testbed"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--output", "yaml", "bindings"}, `--output "yaml"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"remove", "extra"}, "remove takes no arguments"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "usage: eipdp") {
			t.Errorf("eipdp %v: exit %d, stderr %q; want exit 2 with %q and the usage", c.args, code, errOut, c.want)
		}
	}
}

func TestCommands(t *testing.T) {
	testbed.Require(t)
	fs, err := testbed.MountBPFFS()
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	pin := filepath.Join(fs.Dir, "eipgw")
	g := []string{"--pin-dir", pin, "--max-bindings", "16"}

	if code, _, errOut := runCLI(t, append(g, "bindings")...); code != 1 || !strings.Contains(errOut, "no dataplane is pinned") {
		t.Errorf("bindings before anything is pinned: exit %d, %q", code, errOut)
	}
	for _, bad := range [][]string{{"bind", "203.0.113.1"}, {"bind", "nonsense", "10.0.0.1", "02:00:00:00:00:01"},
		{"bind", "2001:db8::1", "10.0.0.1", "02:00:00:00:00:01"}, {"bind", "203.0.113.1", "10.0.0.1"},
		{"bind", "203.0.113.1", "10.0.0.1", "not-a-mac"},
		{"unbind"}, {"attach", "lo", "--role", "sideways"}, {"attach", "lo", "--role", "uplink", "--hook", "ebpf"}} {
		if code, _, _ := runCLI(t, append(g, bad...)...); code != 2 {
			t.Errorf("eipdp %v: exit %d, want 2", bad, code)
		}
	}
	if code, _, errOut := runCLI(t, append(g, "bind", "203.0.113.1", "10.0.1.1", "02:00:00:00:01:01")...); code != 0 {
		t.Fatalf("bind: %s", errOut)
	}
	code, _, errOut := runCLI(t, append(g, "bind", "203.0.113.2", "10.0.1.1", "02:00:00:00:01:01")...)
	if code != 1 || !strings.Contains(errOut, "bound to another EIP") {
		t.Errorf("a second EIP for one private address: exit %d, %q", code, errOut)
	}
	code, out, _ := runCLI(t, append(g, "--output", "json", "bindings")...)
	var rows []bindingRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0] != (bindingRow{"203.0.113.1", "10.0.1.1"}) {
		t.Errorf("bindings as JSON: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, append(g, "bindings")...)
	if code != 0 || !strings.Contains(out, "203.0.113.1  10.0.1.1") {
		t.Errorf("bindings as a table: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, append(g, "--output", "json", "counters")...)
	var rep countersReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("counters: exit %d, %q", code, out)
	}
	if _, ok := rep.EIPs["203.0.113.1"]; !ok {
		t.Errorf("counters do not list the bound EIP: %q", out)
	}
	if code, _, errOut := runCLI(t, append(g, "unbind", "203.0.113.1")...); code != 0 {
		t.Errorf("unbind: %s", errOut)
	}
	if code, _, errOut := runCLI(t, append(g, "unbind", "203.0.113.1")...); code != 1 || !strings.Contains(errOut, "not bound") {
		t.Errorf("unbind twice: exit %d, %q", code, errOut)
	}
	// eipd holding the dataplane: remove leaves it alone and says what to do.
	held, err := dataplane.Open(dataplane.Config{PinDir: pin, MaxBindings: 16})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, append(g, "remove")...)
	held.Close()
	if code != 1 || !strings.Contains(errOut, "stop the process that holds it") {
		t.Errorf("remove while the dataplane is held: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("the refused remove deleted the pins: %v", err)
	}
	if code, _, errOut := runCLI(t, append(g, "remove")...); code != 0 {
		t.Errorf("remove: %s", errOut)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pins after remove: %v", err)
	}
}
