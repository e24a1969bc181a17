// Package packaging holds the systemd units and Debian maintainer scripts, and tests
// the package scripts/package.sh builds from them.
package packaging

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/internal/testbed"
)

// TestDebianPackage: the package builds; it ships the binaries, the units and the
// example configuration (a conffile) and no credentials; its postinst makes the
// directories and credentials with a random secret, and never replaces them; its
// units pass systemd-analyze verify; and the shipped eipd, on the shipped example
// configuration, checks out on a host with its interfaces: first naming the missing
// state file, then "ok".
func TestDebianPackage(t *testing.T) {
	testbed.Require(t)
	for _, tool := range []string{"dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (Debian and Ubuntu have it)", tool, err)
		}
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	dist := t.TempDir()
	deb := strings.TrimSpace(run("../scripts/package.sh", dist))
	if fields := run("dpkg-deb", "-f", deb, "Package", "Version"); !strings.Contains(fields, "Package: eipgw") {
		t.Errorf("control fields: %s", fields)
	}
	contents := run("dpkg-deb", "-c", deb)
	for _, want := range []string{"./usr/bin/eipd", "./usr/bin/eipctl", "./usr/bin/eipdp", "./lib/systemd/system/eipd.service",
		"./lib/systemd/system/eipd-agent.service", "./etc/eipgw/eipd.json", "./usr/share/doc/eipgw/examples/agent.json"} {
		if !strings.Contains(contents, want) {
			t.Errorf("the package lacks %s:\n%s", want, contents)
		}
	}
	if strings.Contains(contents, "./etc/eipgw/credentials.json") {
		t.Error("the package ships credentials: every install would share a secret")
	}
	root := t.TempDir()
	run("dpkg-deb", "-x", deb, root)
	control := filepath.Join(t.TempDir(), "DEBIAN")
	run("dpkg-deb", "-e", deb, control)
	if conffiles, _ := os.ReadFile(filepath.Join(control, "conffiles")); string(conffiles) != "/etc/eipgw/eipd.json\n" {
		t.Errorf("conffiles: %q", conffiles)
	}

	postinst := exec.Command(filepath.Join(control, "postinst"), "configure")
	postinst.Env = append(os.Environ(), "DPKG_ROOT="+root)
	if out, err := postinst.CombinedOutput(); err != nil {
		t.Fatalf("postinst: %v\n%s", err, out)
	}
	creds := filepath.Join(root, "etc/eipgw/credentials.json")
	first, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(creds); st.Mode().Perm() != 0o600 {
		t.Errorf("credentials mode %v, want 0600", st.Mode().Perm())
	}
	if st, err := os.Stat(filepath.Join(root, "var/lib/eipgw")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, %v", st, err)
	}
	again := exec.Command(filepath.Join(control, "postinst"), "configure")
	again.Env = postinst.Env
	if out, err := again.CombinedOutput(); err != nil {
		t.Fatalf("postinst again: %v\n%s", err, out)
	}
	if second, _ := os.ReadFile(creds); !bytes.Equal(first, second) {
		t.Error("a second postinst replaced the credentials")
	}

	// The units, pointed at the extracted binary.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		for _, unit := range []string{"eipd.service", "eipd-agent.service"} {
			raw, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", unit))
			if err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(t.TempDir(), unit)
			_ = os.WriteFile(local, bytes.ReplaceAll(raw, []byte("/usr/bin/eipd"), []byte(filepath.Join(root, "usr/bin/eipd"))), 0o644)
			if out, err := exec.Command("systemd-analyze", "verify", local).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
		}
	}

	// The example configuration on a host that has its interfaces, with its paths
	// moved under root.
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(root, "etc/eipgw/eipd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"credentials_file", "state_dir", "bpffs_dir"} {
		cfg[key] = filepath.Join(root, cfg[key].(string))
	}
	raw, _ = json.Marshal(cfg)
	config := filepath.Join(t.TempDir(), "eipd.json")
	if err := os.WriteFile(config, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	host, err := testbed.NewHost("eipgw-pkg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	// The two ends of one veth pair: interfaces by the example's names.
	if err := testbed.Veth(host, "eth0", host, "eth1"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eth0", "eth1"} {
		if err := host.LinkUp(name); err != nil {
			t.Fatal(err)
		}
	}
	check := func() (string, error) {
		out, err := host.Run(30*time.Second, filepath.Join(root, "usr/bin/eipd"), "--check", "--config", config)
		return string(out), err
	}
	out, err := check()
	if err == nil || !strings.Contains(out, "create it with eipd --init") ||
		!strings.Contains(out, "interface eth0 (uplink): up") || !strings.Contains(out, "interface eth1 (vpc): up") {
		t.Errorf("eipd --check before the first start: %v\n%s", err, out)
	}
	st, err := store.Open(filepath.Join(cfg["state_dir"].(string), "eipgw.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if out, err := check(); err != nil || !strings.HasSuffix(out, "ok\n") {
		t.Errorf("eipd --check with a state file: %v\n%s", err, out)
	}
}
