package eipd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfig(t *testing.T) {
	good := `{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1", "hook": "tc"}, "pools": ["203.0.113.0/24"]}`
	c, err := LoadConfig(write(t, "c.json", good, 0o644))
	if err != nil {
		t.Fatal(err)
	}
	if c.Uplink.Hook != "xdp" || c.Listen != "127.0.0.1:8080" || len(c.pools) != 1 || c.timestampWindow.Minutes() != 15 {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []struct{ body, want string }{
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": []}`, "pools"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["2001:db8::/64"]}`, "not an IPv4 prefix"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1", "hook": "ebpf"}, "pools": ["203.0.113.0/24"]}`, "unknown hook"},
		{`{"uplink": {}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"]}`, "interface are required"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "timestamp_window": "soon"}`, "timestamp_window"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "colour": "blue"}`, "unknown field"},
		{`{not json`, "invalid character"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "store": {}}`, "etcd is the one store"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "bgp": {"router_id": "10.0.0.1", "next_hop": "10.0.0.1", "peers": [{"address": "10.0.0.2", "asn": 1}]}}`, "bgp.asn"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "bgp": {"asn": 2, "router_id": "me", "next_hop": "10.0.0.1", "peers": [{"address": "10.0.0.2", "asn": 1}]}}`, "bgp.router_id"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "bgp": {"asn": 2, "router_id": "10.0.0.1", "next_hop": "10.0.0.1"}}`, "bgp.peers"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "bgp": {"asn": 2, "router_id": "10.0.0.1", "next_hop": "10.0.0.1", "peers": [{"address": "10.0.0.2", "asn": 1}], "hold_time": "1s"}}`, "bgp.hold_time"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "store": {"etcd": {"endpoints": ["h:2379"], "lease_ttl": "1s"}}}`, "store.etcd.lease_ttl"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "store": {"etcd": {}}}`, "store.etcd.endpoints"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "store": {"etcd": {"endpoints": ["h:2379"], "timeout": "-1s"}}}`, "store.etcd.timeout"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "store": {"etcd": {"endpoints": ["h:2379"], "tls": {"cert_file": "c"}}}}`, "ca_file is required"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "listen": "10.0.0.1:8080"}`, "allow_plain_http"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "listen": ":8080"}`, "not a loopback address"},
		{`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "tls": {"cert_file": "c.pem"}}`, "key_file"},
	} {
		if _, err := LoadConfig(write(t, "c.json", bad.body, 0o644)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config %s: %v, want an error about %q", bad.body, err, bad.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	good := `{"keys": [{"access_key_id": "a", "access_key_secret": "0123456789abcdef"}]}`
	c, err := LoadCredentials(write(t, "k.json", good, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := c.Secret("a"); !ok || s != "0123456789abcdef" {
		t.Errorf("secret of a: %q %v", s, ok)
	}
	if _, ok := c.Secret("b"); ok {
		t.Error("an unknown key has a secret")
	}
	if _, err := LoadCredentials(write(t, "k.json", good, 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable credentials file: %v", err)
	}
	if _, err := LoadCredentials(write(t, "k.json", `{"keys": [{"access_key_id": "a", "access_key_secret": "short"}]}`, 0o600)); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := LoadCredentials(write(t, "k.json", `{"keys": []}`, 0o600)); err == nil {
		t.Error("a file without keys was accepted")
	}
	if os.Geteuid() == 0 {
		p := write(t, "k.json", good, 0o600)
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCredentials(p); err == nil || !strings.Contains(err.Error(), "owned by root") {
			t.Errorf("a file owned by another user: %v", err)
		}
	}
}

// TestPlainHTTPOptIn: a plain-HTTP API off loopback needs allow_plain_http; with tls,
// any listen address will do.
func TestPlainHTTPOptIn(t *testing.T) {
	for _, body := range []string{
		`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "listen": "10.0.0.1:8080", "allow_plain_http": true}`,
		`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "listen": "[::1]:8080"}`,
		`{"uplink": {"interface": "eth0"}, "vpc": {"interface": "eth1"}, "pools": ["203.0.113.0/24"], "listen": "0.0.0.0:8443", "tls": {"cert_file": "c.pem", "key_file": "k.pem"}}`,
	} {
		if _, err := LoadConfig(write(t, "c.json", body, 0o644)); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
