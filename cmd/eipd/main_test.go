package main

import (
	"bytes"
	"strings"
	"testing"
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
