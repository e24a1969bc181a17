package eipd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipgw/eipgw/control/store"
)

// TestCheck: eipd --check says what a start would do with a good setup and changes
// nothing (no pin directory made, the state file's bytes the same); it names every
// problem of a bad one (a missing interface, credentials others can read, a missing
// state file) in one answer.
func TestCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("credentials must be owned by root") // unit tests run as root in CI too
	}
	dir := t.TempDir()
	creds := write(t, "credentials.json", `{"keys": [{"access_key_id": "a", "access_key_secret": "0123456789abcdef"}]}`, 0o600)
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(stateDir, StateFile), true)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	before, _ := os.ReadFile(filepath.Join(stateDir, StateFile))
	pins := filepath.Join(dir, "pins")
	config := func(iface, credentials string) *Config {
		t.Helper()
		c, err := LoadConfig(write(t, "eipd.json", fmt.Sprintf(`{"uplink": {"interface": %q}, "vpc": {"interface": "lo", "hook": "tc"},
			"pools": ["203.0.113.0/24"], "state_dir": %q, "bpffs_dir": %q, "credentials_file": %q}`, iface, stateDir, pins, credentials), 0o644))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	var out bytes.Buffer
	if err := Check(config("lo", creds), &out); err != nil {
		t.Fatalf("a good setup: %v\n%s", err, out.String())
	}
	for _, want := range []string{"credentials: " + creds + ": 1 access keys", "interface lo (vpc): up", "attaches the vpc program at tc",
		"pins: " + pins + ": absent", "intact, 0 EIPs, 0 associated", "\nok\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("the check made the pin directory (%v)", err)
	}
	if after, _ := os.ReadFile(filepath.Join(stateDir, StateFile)); !bytes.Equal(before, after) {
		t.Error("the check changed the state file")
	}

	readable := write(t, "open.json", `{"keys": [{"access_key_id": "a", "access_key_secret": "0123456789abcdef"}]}`, 0o644)
	if err := os.Remove(filepath.Join(stateDir, StateFile)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = Check(config("eipgw-no-such-if", readable), &out)
	for _, want := range []string{"interface eipgw-no-such-if (uplink)", "lets others read it", "create it with eipd --init"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a bad setup: %v, want it to name %q", err, want)
		}
	}
}
