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
	if c := kebab("AssociateEipAddress"); c != "associate-eip-address" {
		t.Errorf("associate-eip-address maps to %q", c)
	}
}

// newServer is eipd's API over a fresh state, signing key "k" with secret
// 0123456789abcdef, pool 203.0.113.0/29.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "s.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(&api.Server{
		Verifier: &api.Verifier{Secrets: secrets{"k": "0123456789abcdef"}, Window: time.Minute, MaxNonces: 100, Now: time.Now},
		Model:    &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/29")}},
		Store:    st, Now: time.Now,
	})
	t.Cleanup(srv.Close)
	return srv
}

func TestAgainstAServer(t *testing.T) {
	srv := newServer(t)
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

// TestCredentialOrder: the key pair comes whole from the first of the options, the
// environment, eipctl's profile and the aliyun CLI's current profile; the endpoint
// from the option, $EIPGW_ENDPOINT or the profile; a profile named but missing is an
// error, an absent default one is not.
func TestCredentialOrder(t *testing.T) {
	home := t.TempDir()
	write := func(path string, v any) {
		t.Helper()
		raw, _ := json.Marshal(v)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(home, ".aliyun", "config.json"), map[string]any{"current": "work", "profiles": []map[string]string{
		{"name": "default", "mode": "AK", "access_key_id": "aliyun-default", "access_key_secret": "s0"},
		{"name": "work", "mode": "AK", "access_key_id": "aliyun-work", "access_key_secret": "s1", "region_id": "cn-hangzhou"},
	}})
	vars := map[string]string{"HOME": home}
	env := Env{Getenv: func(k string) string { return vars[k] }}
	resolve := func(o options) *Profile {
		t.Helper()
		p, err := resolveProfile(o, env)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Only the aliyun CLI's profile has a key; the endpoint from the option.
	if p := resolve(options{endpoint: "https://gw:8443"}); p.AccessKeyID != "aliyun-work" || p.RegionID != "cn-hangzhou" {
		t.Errorf("from the aliyun profile: %+v", p)
	}
	vars["ALIBABA_CLOUD_PROFILE"] = "default"
	if p := resolve(options{endpoint: "https://gw:8443"}); p.AccessKeyID != "aliyun-default" {
		t.Errorf("the aliyun profile $ALIBABA_CLOUD_PROFILE names: %+v", p)
	}
	write(filepath.Join(home, ".eipgw", "profile.json"), Profile{Endpoint: "https://file:8443", AccessKeyID: "file", AccessKeySecret: "s2"})
	if p := resolve(options{}); p.AccessKeyID != "file" || p.Endpoint != "https://file:8443" {
		t.Errorf("eipctl's profile before the aliyun one: %+v", p)
	}
	vars["ALIBABA_CLOUD_ACCESS_KEY_ID"], vars["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "env", "s3"
	vars["EIPGW_ENDPOINT"] = "https://env:8443"
	if p := resolve(options{}); p.AccessKeyID != "env" || p.AccessKeySecret != "s3" || p.Endpoint != "https://env:8443" {
		t.Errorf("the environment before eipctl's profile: %+v", p)
	}
	vars["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = "" // half a pair is no pair
	if p := resolve(options{}); p.AccessKeyID != "file" {
		t.Errorf("an ID without its secret in the environment: %+v", p)
	}
	if p := resolve(options{accessKeyID: "flag", accessKeySecret: "s4", endpoint: "https://flag:8443"}); p.AccessKeyID != "flag" ||
		p.Endpoint != "https://flag:8443" {
		t.Errorf("the options first: %+v", p)
	}
	if _, err := resolveProfile(options{profile: filepath.Join(home, "nope.json")}, env); err == nil {
		t.Error("a profile named but missing was accepted")
	}
	if _, err := resolveProfile(options{}, Env{Getenv: func(k string) string { return map[string]string{"HOME": t.TempDir()}[k] }}); err == nil ||
		!strings.Contains(err.Error(), "no endpoint") {
		t.Errorf("nothing configured: %v", err)
	}
}

// TestOptionsAndHelp: options after the command are eipctl's, not API parameters
// (--output json prints JSON); help and version at the top and per command.
func TestOptionsAndHelp(t *testing.T) {
	srv := newServer(t)
	vars := map[string]string{"HOME": t.TempDir(), "EIPGW_ENDPOINT": srv.URL,
		"ALIBABA_CLOUD_ACCESS_KEY_ID": "k", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "0123456789abcdef"}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Run(args, Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return vars[k] }})
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := run("allocate-eip-address", "--bandwidth", "10", "--output", "json"); code != 0 || !json.Valid([]byte(out)) {
		t.Errorf("--output after the command: %d %q %q", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Available Commands:"}, {[]string{"-h"}, "allocate-eip-address"},
		{[]string{"help", "release-eip-address"}, "--allocation-id string   required; the API's AllocationId"},
		{[]string{"associate-eip-address", "--help"}, "one of EcsInstance, NetworkInterface, Nat, SlbInstance, HaVip; default EcsInstance"},
		{[]string{"describe-eip-addresses", "-h"}, "1 to 100; default 10"},
		{[]string{"assign-private-ip-addresses", "--help"}, "a list: repeat the flag"},
		{[]string{"version"}, "eipctl "}, {[]string{"--version"}, "eipctl version"},
		{[]string{"completion", "bash"}, "bash completion"}, {[]string{"completion", "zsh"}, "compdef"},
		{[]string{"completion", "fish"}, "complete -c eipctl"},
	} {
		if code, out, errOut := run(c.args...); code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("eipctl %v: %d, want %q in\n%s%s", c.args, code, c.want, out, errOut)
		}
	}
	// Refusals: exit 2, nothing sent, with a suggestion where there is a close one.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"describe-eip-addresses", "--alocation-id", "x"}, "did you mean --allocation-id?"},
		{[]string{"allocate-eip-address", "--instance-id", "i-1"}, "unknown flag: --instance-id"},
		{[]string{"describe-eip-adresses"}, "Did you mean this?"},
		{[]string{"allocate-eip-address", "stray"}, "unknown command"},
	} {
		if code, _, errOut := run(c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("eipctl %v: exit %d, want 2 and %q in %q", c.args, code, c.want, errOut)
		}
	}
	// The API's spelling, and a list given by repeating the flag or by index.
	if code, out, errOut := run("--output", "json", "allocate-eip-address", "--Bandwidth", "7"); code != 0 || !strings.Contains(out, "AllocationId") {
		t.Fatalf("--Bandwidth: %d %q %q", code, out, errOut)
	}
	// A Describe's Filter as Key=values.
	if code, out, errOut := run("--output", "json", "describe-ha-vips", "--filter", "Status=Available,InUse"); code != 0 || !strings.Contains(out, `"TotalCount": 0`) {
		t.Errorf("--filter Status=Available,InUse: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run("describe-ha-vips", "--filter", "Status"); code != 2 || !strings.Contains(errOut, "Key=value") {
		t.Errorf("--filter without values: %d %q", code, errOut)
	}
	// Tags as Key=value.
	if code, out, errOut := run("--output", "json", "allocate-eip-address", "--name", "tagged"); code != 0 {
		t.Fatalf("allocate: %d %q %q", code, out, errOut)
	} else {
		id := jsonField(t, out, "AllocationId")
		if code, _, errOut := run("tag-resources", "--resource-type", "EIP", "--resource-id", id, "--tag", "env=prod", "--tag", "team=net"); code != 0 {
			t.Fatalf("tag-resources: %d %q", code, errOut)
		}
		code, out, errOut := run("--output", "json", "describe-eip-addresses", "--tag", "env=prod", "--tag", "team")
		if code != 0 || !strings.Contains(out, `"TotalCount": 1`) || !strings.Contains(out, `"Value": "net"`) {
			t.Errorf("describe-eip-addresses --tag env=prod --tag team: %d %s %q", code, out, errOut)
		}
		if code, _, errOut := run("tag-resources", "--resource-type", "EIP", "--resource-id", id, "--tag", "=x"); code != 2 || !strings.Contains(errOut, "Key=value") {
			t.Errorf("--tag =x: %d %q", code, errOut)
		}
	}
	code, out, _ := run("--output", "json", "describe-eip-addresses", "--page-size", "1")
	if code != 0 || !strings.Contains(out, `"PageSize": 1`) {
		t.Errorf("--page-size 1: %d %s", code, out)
	}
}

// TestFlagNames: every parameter of every action has its own flag, and the spellings a
// user may type for it (the flag, the API's name) normalize to that flag, so a flag
// always sends the parameter it names (the request is built from the API's names).
func TestFlagNames(t *testing.T) {
	for _, a := range model.Actions() {
		seen := map[string]string{}
		for _, p := range model.ActionParams(a) {
			flag := flagName(p.Name)
			if other, ok := seen[flag]; ok {
				t.Errorf("%s: %s and %s share --%s", a, other, p.Name, flag)
			}
			seen[flag] = p.Name
			for _, typed := range []string{flag, p.Name} {
				if got := flagName(paramName(typed)); got != flag {
					t.Errorf("%s: %s typed as %q normalizes to --%s, not --%s", a, p.Name, typed, got, flag)
				}
			}
		}
	}
}

// jsonField reads a top-level string field of a JSON reply.
func jsonField(t *testing.T, out, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("reply %q: %v", out, err)
	}
	v, _ := m[name].(string)
	return v
}
