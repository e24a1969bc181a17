package eipd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
	Nat               NatSettings
}

// Files are the paths WriteLocalSetup wrote.
type Files struct {
	Config, Credentials, Profile, StateDir string
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
	if s.MetricsListen != "" {
		config["metrics_listen"] = s.MetricsListen
	}
	for _, w := range []struct {
		path string
		mode os.FileMode
		v    any
	}{
		{f.Config, 0o644, config},
		{f.Credentials, 0o600, map[string]any{"keys": []map[string]string{{"access_key_id": key, "access_key_secret": hex.EncodeToString(secret)}}}},
		{f.Profile, 0o600, map[string]string{"endpoint": "http://" + s.Listen, "access_key_id": key,
			"access_key_secret": hex.EncodeToString(secret), "region_id": "eipgw-1"}},
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
