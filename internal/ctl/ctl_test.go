package ctl

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
)

type secrets map[string]string

func (s secrets) Secret(id string) (string, bool) { v, ok := s[id]; return v, ok }

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"allocation-id": "AllocationId", "private-ip-address.2": "PrivateIpAddress.2", "havip-id": "HaVipId",
		"vpc-id": "VpcId", "InstanceId": "InstanceId", "dry-run": "DryRun",
	} {
		if got := paramName(in); got != want {
			t.Errorf("paramName(%q) = %q, want %q", in, got, want)
		}
	}
	if c := commands()["associate-eip-address"]; c != "AssociateEipAddress" {
		t.Errorf("associate-eip-address maps to %q", c)
	}
}

func TestAgainstAServer(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(&api.Server{
		Verifier: &api.Verifier{Secrets: secrets{"k": "0123456789abcdef"}, Window: time.Minute, MaxNonces: 100, Now: time.Now},
		Model:    &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/29")}},
		Store:    st, Now: time.Now,
	})
	defer srv.Close()
	prof := filepath.Join(t.TempDir(), "profile.json")
	raw, _ := json.Marshal(Profile{Endpoint: srv.URL, AccessKeyID: "k", AccessKeySecret: "0123456789abcdef", RegionID: "eipgw-1"})
	if err := os.WriteFile(prof, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Run(append([]string{"--profile", prof}, args...), Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run("--output", "json", "allocate-eip-address", "--bandwidth", "10", "--name", "web")
	var alloc map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &alloc) != nil || alloc["EipAddress"] != "203.0.113.1" {
		t.Fatalf("allocate: %d %q %q", code, out, errOut)
	}
	code, out, _ = run("describe-eip-addresses")
	if code != 0 || !strings.Contains(out, "203.0.113.1") || !strings.Contains(out, "Available") || !strings.Contains(out, "(1 EipAddresses of 1)") {
		t.Errorf("describe as a table: %d\n%s", code, out)
	}
	code, _, errOut = run("release-eip-address", "--allocation-id", "eip-nope")
	if code != 1 || !strings.Contains(errOut, "InvalidAllocationId.NotFound") {
		t.Errorf("release of nothing: %d %q", code, errOut)
	}
	code, _, errOut = run("allocate-eip-address", "--bandwidth", "999")
	if code != 1 || !strings.Contains(errOut, "InvalidBandwidth.ValueNotSupported") {
		t.Errorf("bad bandwidth: %d %q", code, errOut)
	}
	for _, bad := range [][]string{{"frobnicate"}, {"allocate-eip-address", "stray"}, {"allocate-eip-address", "--bandwidth"}, {"--output", "xml", "describe-eip-addresses"}} {
		if code, _, _ := run(bad...); code != 2 {
			t.Errorf("eipctl %v: exit %d, want 2", bad, code)
		}
	}
}
