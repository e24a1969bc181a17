package eipd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/eipgw/eipgw/control/api"
)

// LocalSetup describes a gateway for WriteLocalSetup.
type LocalSetup struct {
	Uplink, VPC, Hook string
	Pools             []string
	Listen            string
	MetricsListen     string // "": eipd's default
	BPFFSDir          string
	ReconcileInterval string
	EIPGateway        string
	MaxBindings       uint32 // 0: the default
	MaxSources        uint32 // 0: the default
	// TLS makes the API serve HTTPS with a self-signed certificate WriteLocalSetup
	// makes for the listen address, which the profile's ca_file trusts.
	TLS bool
	Nat NatSettings
	// Etcd, when set, keeps the state in a cluster's etcd instead of the state file.
	Etcd *EtcdSettings
	// BGP, when set, announces the carried EIPs.
	BGP *BGPSettings
}

// Files are the paths WriteLocalSetup wrote.
type Files struct {
	Config, Credentials, Profile, StateDir string
	Certificate                            string // with TLS: the API's certificate, PEM
}

// WriteLocalSetup writes a config, a credentials file with a fresh random key, and an
// eipctl profile for it into dir: what the demo and the end-to-end tests run with.
func WriteLocalSetup(dir string, s LocalSetup) (Files, error) {
	f := Files{Config: filepath.Join(dir, "eipd.json"), Credentials: filepath.Join(dir, "credentials.json"),
		Profile: filepath.Join(dir, "profile.json"), StateDir: dir}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return f, err
	}
	key := "local-" + hex.EncodeToString(secret[:4])
	if s.ReconcileInterval == "" {
		s.ReconcileInterval = "10s"
	}
	config := map[string]any{
		"uplink": map[string]string{"interface": s.Uplink, "hook": s.Hook},
		"vpc":    map[string]string{"interface": s.VPC, "hook": s.Hook},
		"pools":  s.Pools, "listen": s.Listen, "credentials_file": f.Credentials,
		"state_dir": dir, "bpffs_dir": s.BPFFSDir, "reconcile_interval": s.ReconcileInterval,
		"eip_gateway": s.EIPGateway, "nat": s.Nat, "max_bindings": s.MaxBindings,
	}
	if s.MaxSources != 0 {
		config["max_sources"] = s.MaxSources
	}
	if s.Etcd != nil {
		config["store"] = map[string]any{"etcd": s.Etcd}
	}
	if s.BGP != nil {
		config["bgp"] = s.BGP
	}
	if s.MetricsListen != "" {
		config["metrics_listen"] = s.MetricsListen
	}
	profile := map[string]string{"endpoint": "http://" + s.Listen, "access_key_id": key,
		"access_key_secret": hex.EncodeToString(secret), "region_id": "eipgw-1"}
	if s.TLS {
		f.Certificate = filepath.Join(dir, "api-cert.pem")
		keyFile := filepath.Join(dir, "api-key.pem")
		host, _, err := net.SplitHostPort(s.Listen)
		if err != nil {
			return f, fmt.Errorf("listen %q: %w", s.Listen, err)
		}
		if err := api.WriteSelfSigned(f.Certificate, keyFile, "eipgw API "+host, host, "127.0.0.1", "localhost"); err != nil {
			return f, err
		}
		config["tls"] = map[string]string{"cert_file": f.Certificate, "key_file": keyFile}
		profile["endpoint"], profile["ca_file"] = "https://"+s.Listen, f.Certificate
	}
	for _, w := range []struct {
		path string
		mode os.FileMode
		v    any
	}{
		{f.Config, 0o644, config},
		{f.Credentials, 0o600, map[string]any{"keys": []map[string]string{{"access_key_id": key, "access_key_secret": hex.EncodeToString(secret)}}}},
		{f.Profile, 0o600, profile},
	} {
		raw, err := json.MarshalIndent(w.v, "", "  ")
		if err != nil {
			return f, err
		}
		if err := os.WriteFile(w.path, raw, w.mode); err != nil {
			return f, fmt.Errorf("write %s: %w", w.path, err)
		}
	}
	return f, nil
}
