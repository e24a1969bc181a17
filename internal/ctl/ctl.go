// Package ctl is the eipctl command: every API action as a subcommand, named in
// kebab case (allocate-eip-address), its parameters as flags (--bandwidth 5, or the
// API's own spelling --Bandwidth 5). I/O is injected so it is tested in-process.
package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/internal/buildinfo"
)

// Profile says where eipd is and which key to sign with.
type Profile struct {
	Endpoint        string `json:"endpoint"`
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	RegionID        string `json:"region_id"`
	// CAFile is a PEM file of certificates to trust for an https endpoint besides
	// the system's (a gateway's self-signed certificate).
	CAFile string `json:"ca_file,omitempty"`
	// SignatureMethod is "v3" (ACS3-HMAC-SHA256, the default) or "hmac-sha1".
	SignatureMethod string `json:"signature_method,omitempty"`
}

const usage = `usage: eipctl [options] COMMAND [--param value ...] [options]
       eipctl COMMAND --help | eipctl --help | eipctl version

Options, before or after the command:
  --output table|json          how replies are printed (default table)
  --profile FILE               eipctl's profile (default $EIPGW_PROFILE, else ~/.eipgw/profile.json)
  --endpoint URL               eipd's API (else $EIPGW_ENDPOINT, else the profile's)
  --access-key-id ID --access-key-secret SECRET
  --region-id ID  --ca-file FILE

The access key comes from the first of: the two --access-key options; the
ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET environment variables;
eipctl's profile; the aliyun CLI's current profile (~/.aliyun/config.json, or the one
$ALIBABA_CLOUD_PROFILE names; AK mode). eipctl's profile is JSON:
  {"endpoint": "https://gateway:8443", "access_key_id": "...", "access_key_secret": "...", "region_id": "eipgw-1",
   "ca_file": "/etc/eipgw/ca.pem"}
ca_file (optional) adds certificates to trust for an https endpoint; signature_method
(optional) is v3 (ACS3-HMAC-SHA256, the default) or hmac-sha1 (the legacy signature).
Parameters are the API's (docs/api.md), in kebab case or as the API spells them:
  eipctl allocate-eip-address --bandwidth 10
  eipctl associate-eip-address --allocation-id eip-... --instance-id i-... --instance-type EcsInstance
  eipctl assign-private-ip-addresses --network-interface-id eni-... --private-ip-address.1 10.0.3.2
Commands:
`

// Env is what the command needs from its process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// options are eipctl's own flags, accepted before or after the command: everything
// else after the command is an API parameter.
type options struct {
	output, profile, endpoint, accessKeyID, accessKeySecret, regionID, caFile string
}

// option sets an eipctl option by flag name; false when name is not one.
func (o *options) option(name, value string) bool {
	field := map[string]*string{"output": &o.output, "profile": &o.profile, "endpoint": &o.endpoint,
		"access-key-id": &o.accessKeyID, "access-key-secret": &o.accessKeySecret, "region-id": &o.regionID,
		"ca-file": &o.caFile}[name]
	if field == nil {
		return false
	}
	*field = value
	return true
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// Run executes one eipctl command line and returns the exit status.
func Run(args []string, env Env) int {
	opts := options{output: "table"}
	var command string
	params := map[string]string{}
	for len(args) > 0 {
		arg := args[0]
		switch {
		case isHelp(arg) && command == "":
			printUsage(env.Stdout)
			return 0
		case isHelp(arg):
			fmt.Fprintf(env.Stdout, "usage: eipctl %s [--param value ...] [options]\n\nThe API action %s: its parameters, "+
				"which are required and their values are in docs/api.md; eipctl --help lists the options.\n", command, commands()[command])
			return 0
		case arg == "--version" || (arg == "version" && command == ""):
			fmt.Fprintln(env.Stdout, "eipctl", buildinfo.Read())
			return 0
		case !strings.HasPrefix(arg, "--"):
			if command != "" {
				return usageErr(env, fmt.Sprintf("unexpected argument %q: parameters are --name value", arg))
			}
			if _, ok := commands()[arg]; !ok {
				return usageErr(env, fmt.Sprintf("unknown command %q", arg))
			}
			command, args = arg, args[1:]
			continue
		}
		name, value, rest, err := flagValue(args)
		if err != nil {
			return usageErr(env, err.Error())
		}
		if !opts.option(name, value) {
			if command == "" {
				return usageErr(env, fmt.Sprintf("unknown option --%s before the command", name))
			}
			params[paramName(name)] = value
		}
		args = rest
	}
	if opts.output != "table" && opts.output != "json" {
		return usageErr(env, fmt.Sprintf("--output %q: want table or json", opts.output))
	}
	if command == "" {
		return usageErr(env, "no command")
	}
	prof, err := resolveProfile(opts, env)
	if err != nil {
		fmt.Fprintln(env.Stderr, "eipctl:", err)
		return 1
	}
	hc, err := api.NewHTTPClient(prof.CAFile)
	if err != nil {
		fmt.Fprintln(env.Stderr, "eipctl: profile:", err)
		return 1
	}
	client := &api.Client{Endpoint: prof.Endpoint, AccessKeyID: prof.AccessKeyID, AccessSecret: prof.AccessKeySecret,
		RegionID: prof.RegionID, Signature: prof.SignatureMethod, HTTP: hc}
	resp, err := client.Call(commands()[command], params)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		fmt.Fprintf(env.Stderr, "eipctl: %s: %s (RequestId %v)\n", apiErr.Code, apiErr.Message, resp["RequestId"])
		return 1
	} else if err != nil {
		fmt.Fprintln(env.Stderr, "eipctl:", err)
		return 1
	}
	if opts.output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
		return 0
	}
	printTable(env.Stdout, resp)
	return 0
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	names := make([]string, 0)
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintln(w, "  "+n)
	}
}

func usageErr(env Env, msg string) int {
	if msg != "" {
		fmt.Fprintln(env.Stderr, "eipctl:", msg)
	}
	printUsage(env.Stderr)
	return 2
}

// flagValue reads --name value or --name=value.
func flagValue(args []string) (name, value string, rest []string, err error) {
	name = strings.TrimPrefix(args[0], "--")
	if i := strings.IndexByte(name, '='); i >= 0 {
		return name[:i], name[i+1:], args[1:], nil
	}
	if len(args) < 2 {
		return "", "", nil, fmt.Errorf("--%s needs a value", name)
	}
	return name, args[1], args[2:], nil
}

// commands maps kebab-case command names to the model's actions.
func commands() map[string]string {
	out := map[string]string{}
	for _, a := range model.Actions() {
		out[kebab(a)] = a
	}
	return out
}

// kebab turns AllocateEipAddress into allocate-eip-address.
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Words the API spells with an inner capital.
var pascalWords = map[string]string{"havip": "HaVip", "eip": "Eip", "vpc": "Vpc", "cidr": "CIDR"}

// paramName turns allocation-id into AllocationId and private-ip-address.1 into
// PrivateIpAddress.1; a name already in the API's spelling is kept.
func paramName(s string) string {
	if s != "" && unicode.IsUpper(rune(s[0])) {
		return s
	}
	suffix := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, suffix = s[:i], s[i:]
	}
	var b strings.Builder
	for _, w := range strings.Split(s, "-") {
		if p, ok := pascalWords[w]; ok {
			b.WriteString(p)
		} else if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String() + suffix
}

// resolveProfile puts together where eipd is and the key to sign with. The key pair
// comes whole from the first source that has one: the options, the environment
// (ALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET, as the cloud's SDKs and CLI read them),
// eipctl's profile, the aliyun CLI's profile. The endpoint: the option,
// $EIPGW_ENDPOINT, eipctl's profile. A profile named explicitly must exist.
func resolveProfile(o options, env Env) (*Profile, error) {
	p := &Profile{}
	path, explicit := o.profile, o.profile != ""
	if path == "" {
		path, explicit = env.Getenv("EIPGW_PROFILE"), env.Getenv("EIPGW_PROFILE") != ""
	}
	if path == "" {
		path = filepath.Join(homeDir(env), ".eipgw", "profile.json")
	}
	var file Profile
	if raw, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(raw, &file); err != nil {
			return nil, fmt.Errorf("profile %s: %w", path, err)
		}
	} else if explicit || !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("profile: %w", err)
	}
	aliyun, err := aliyunProfile(env)
	if err != nil {
		return nil, err
	}
	for _, key := range [][2]string{
		{o.accessKeyID, o.accessKeySecret},
		{env.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), env.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")},
		{file.AccessKeyID, file.AccessKeySecret},
		{aliyun.AccessKeyID, aliyun.AccessKeySecret},
	} {
		if key[0] != "" && key[1] != "" {
			p.AccessKeyID, p.AccessKeySecret = key[0], key[1]
			break
		}
	}
	p.Endpoint = first(o.endpoint, env.Getenv("EIPGW_ENDPOINT"), file.Endpoint)
	p.RegionID = first(o.regionID, env.Getenv("ALIBABA_CLOUD_REGION_ID"), file.RegionID, aliyun.RegionID)
	p.CAFile = first(o.caFile, file.CAFile)
	p.SignatureMethod = file.SignatureMethod
	if p.Endpoint == "" {
		return nil, fmt.Errorf("no endpoint: give --endpoint, $EIPGW_ENDPOINT or a profile's endpoint (%s)", path)
	}
	if p.AccessKeyID == "" {
		return nil, fmt.Errorf("no access key: give --access-key-id and --access-key-secret, ALIBABA_CLOUD_ACCESS_KEY_ID "+
			"and ALIBABA_CLOUD_ACCESS_KEY_SECRET, a profile's (%s), or an aliyun CLI profile", path)
	}
	return p, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func homeDir(env Env) string {
	if h := env.Getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

// aliyunProfile reads the aliyun CLI's configuration (~/.aliyun/config.json): its
// current profile, or the one $ALIBABA_CLOUD_PROFILE names, when it is an AccessKey
// one. Absent: empty.
func aliyunProfile(env Env) (Profile, error) {
	path := filepath.Join(homeDir(env), ".aliyun", "config.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Profile{}, nil
	}
	if err != nil {
		return Profile{}, fmt.Errorf("aliyun profile: %w", err)
	}
	var cfg struct {
		Current  string `json:"current"`
		Profiles []struct {
			Name            string `json:"name"`
			Mode            string `json:"mode"`
			AccessKeyID     string `json:"access_key_id"`
			AccessKeySecret string `json:"access_key_secret"`
			RegionID        string `json:"region_id"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return Profile{}, fmt.Errorf("aliyun profile %s: %w", path, err)
	}
	name := first(env.Getenv("ALIBABA_CLOUD_PROFILE"), cfg.Current, "default")
	for _, p := range cfg.Profiles {
		if p.Name == name && (p.Mode == "AK" || p.Mode == "") {
			return Profile{AccessKeyID: p.AccessKeyID, AccessKeySecret: p.AccessKeySecret, RegionID: p.RegionID}, nil
		}
	}
	return Profile{}, nil
}

// printTable shows a list reply (such as EipAddresses.EipAddress) as a table and
// anything else as name and value lines.
func printTable(w io.Writer, resp map[string]any) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	for k, v := range resp {
		outer, ok := v.(map[string]any)
		if !ok || len(outer) != 1 {
			continue
		}
		for _, inner := range outer {
			rows, ok := inner.([]any)
			if !ok {
				continue
			}
			cols := columns(rows)
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
			for _, r := range rows {
				m, _ := r.(map[string]any)
				var cells []string
				for _, c := range cols {
					cells = append(cells, fmt.Sprint(orDash(m[c])))
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
			fmt.Fprintf(tw, "(%d %s", len(rows), k)
			if total, ok := resp["TotalCount"]; ok {
				fmt.Fprintf(tw, " of %v", total)
			}
			fmt.Fprintln(tw, ")")
			return
		}
	}
	keys := make([]string, 0, len(resp))
	for k := range resp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%v\n", k, orDash(resp[k]))
	}
}

var preferredColumns = []string{"AllocationId", "IpAddress", "Status", "InstanceType", "InstanceId", "PrivateIpAddress", "Mode", "Bandwidth", "InternetChargeType", "Name"}

func columns(rows []any) []string {
	seen := map[string]bool{}
	for _, r := range rows {
		if m, ok := r.(map[string]any); ok {
			for k := range m {
				seen[k] = true
			}
		}
	}
	var cols []string
	for _, c := range preferredColumns {
		if seen[c] {
			cols = append(cols, c)
		}
	}
	if len(cols) > 0 {
		return cols
	}
	for k := range seen {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return cols
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}
