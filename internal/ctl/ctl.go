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

const usage = `usage: eipctl [--profile FILE] [--output table|json] COMMAND [--param value ...]

The profile (default $EIPGW_PROFILE, else ~/.eipgw/profile.json) is JSON:
  {"endpoint": "https://gateway:8443", "access_key_id": "...", "access_key_secret": "...", "region_id": "eipgw-1",
   "ca_file": "/etc/eipgw/ca.pem"}
ca_file (optional) adds certificates to trust for an https endpoint; signature_method
(optional) is v3 (ACS3-HMAC-SHA256, the default) or hmac-sha1 (the legacy signature).
Parameters are the API's, in kebab case or as the API spells them:
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

// Run executes one eipctl command line and returns the exit status.
func Run(args []string, env Env) int {
	profilePath, output := "", "table"
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		name, value, rest, err := flagValue(args)
		if err != nil {
			return usageErr(env, err.Error())
		}
		switch name {
		case "profile":
			profilePath = value
		case "output":
			output = value
		default:
			return usageErr(env, fmt.Sprintf("unknown option --%s before the command", name))
		}
		args = rest
	}
	if output != "table" && output != "json" {
		return usageErr(env, fmt.Sprintf("--output %q: want table or json", output))
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" {
		return usageErr(env, "")
	}
	action, ok := commands()[args[0]]
	if !ok {
		return usageErr(env, fmt.Sprintf("unknown command %q", args[0]))
	}
	params := map[string]string{}
	for rest := args[1:]; len(rest) > 0; {
		if !strings.HasPrefix(rest[0], "--") {
			return usageErr(env, fmt.Sprintf("unexpected argument %q: parameters are --name value", rest[0]))
		}
		name, value, next, err := flagValue(rest)
		if err != nil {
			return usageErr(env, err.Error())
		}
		params[paramName(name)] = value
		rest = next
	}
	prof, err := loadProfile(profilePath, env)
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
	resp, err := client.Call(action, params)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		fmt.Fprintf(env.Stderr, "eipctl: %s: %s (RequestId %v)\n", apiErr.Code, apiErr.Message, resp["RequestId"])
		return 1
	} else if err != nil {
		fmt.Fprintln(env.Stderr, "eipctl:", err)
		return 1
	}
	if output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
		return 0
	}
	printTable(env.Stdout, resp)
	return 0
}

func usageErr(env Env, msg string) int {
	if msg != "" {
		fmt.Fprintln(env.Stderr, "eipctl:", msg)
	}
	fmt.Fprint(env.Stderr, usage)
	names := make([]string, 0)
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintln(env.Stderr, "  "+n)
	}
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

func loadProfile(path string, env Env) (*Profile, error) {
	if path == "" {
		path = env.Getenv("EIPGW_PROFILE")
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no profile: %w", err)
		}
		path = filepath.Join(home, ".eipgw", "profile.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	var p Profile
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	if p.Endpoint == "" || p.AccessKeyID == "" || p.AccessKeySecret == "" {
		return nil, fmt.Errorf("profile %s: endpoint, access_key_id and access_key_secret are required", path)
	}
	return &p, nil
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
