package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipgw/eipgw/control/store"
)

// TestInvocation: --version, --help (naming agent), and the refusals: a stray
// argument, an unknown flag, a log level or format eipd does not have.
func TestInvocation(t *testing.T) {
	for _, c := range []struct {
		args      []string
		code      int
		stdout    string
		stderr    string
		notStderr string
	}{
		{args: []string{"--version"}, code: 0, stdout: "eipd "},
		{args: []string{"agent", "--version"}, code: 0, stdout: "eipd "},
		{args: []string{"--help"}, code: 0, stderr: "eipd agent"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unexpected argument "frobnicate"`},
		{args: []string{"--config", "x.json", "extra"}, code: 2, stderr: `unexpected argument "extra"`},
		{args: []string{"--frobnicate"}, code: 2, stderr: "flag provided but not defined: -frobnicate"},
		{args: []string{"agent", "--init"}, code: 2, stderr: "flag provided but not defined: -init"},
		{args: []string{"--log-level", "loud"}, code: 2, stderr: `log level "loud"`},
		{args: []string{"--log-format", "xml"}, code: 2, stderr: `log format "xml"`},
		{args: []string{"--check", "--config", "/nonexistent/eipd.json"}, code: 2, stderr: "/nonexistent/eipd.json"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("eipd %v: exit %d, stdout %q, stderr %q; want exit %d with %q / %q",
				c.args, code, stdout.String(), stderr.String(), c.code, c.stdout, c.stderr)
		}
	}
}

// TestBackupCommand: eipd backup as docs/operations.md runs it, with no eipd running:
// the copy is written and says what it holds; without --out it is refused.
func TestBackupCommand(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "eipgw.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	config := filepath.Join(dir, "eipd.json")
	if err := os.WriteFile(config, []byte(`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"},
		"pools": ["203.0.113.0/24"], "state_dir": "`+dir+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "backup.db")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"backup", "--config", config, "--out", out}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "0 EIPs, 0 associated") {
		t.Fatalf("eipd backup: %d %q %q", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"backup", "--config", config}, &stdout, &stderr); code != 2 {
		t.Errorf("eipd backup without --out: exit %d", code)
	}
}
