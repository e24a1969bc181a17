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
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/internal/buildinfo"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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

const longHelp = `eipctl calls eipd's API (the cloud's VPC OpenAPI): each API action is a command in
kebab case, its parameters are flags in kebab case (--allocation-id) or as the API
spells them (--AllocationId); a list parameter repeats (--private-ip-address A
--private-ip-address B, or --private-ip-address.1 A). eipctl COMMAND --help lists a
command's parameters, which are required and the values they take.

The access key comes whole from the first of: --access-key-id with
--access-key-secret; the ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET
environment variables; eipctl's profile; the aliyun CLI's current profile
(~/.aliyun/config.json, or the one $ALIBABA_CLOUD_PROFILE names; AK mode). The endpoint
comes from --endpoint, $EIPGW_ENDPOINT or eipctl's profile. eipctl's profile is
--profile, else $EIPGW_PROFILE, else ~/.eipgw/profile.json, JSON:
  {"endpoint": "https://gateway:8443", "access_key_id": "...", "access_key_secret": "...",
   "region_id": "eipgw-1", "ca_file": "/etc/eipgw/ca.pem", "signature_method": "v3"}

Exit status: 0, 1 when the API refused the request (its Code and Message are printed),
2 for a wrong command line.`

// Env is what the command needs from its process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// options are eipctl's own flags, accepted before or after the command.
type options struct {
	output, profile, endpoint, accessKeyID, accessKeySecret, regionID, caFile string
}

// usageError is a wrong command line: exit status 2.
type usageError struct{ error }

// Run executes one eipctl command line and returns the exit status. The command line
// is parsed with cobra (help at every level, completion scripts, suggestions), over
// commands and flags made from the model's parameter table, so eipctl offers exactly
// the parameters the server reads.
func Run(args []string, env Env) int {
	opts := options{}
	root := &cobra.Command{
		Use:           "eipctl",
		Short:         "eipgw's command line: every API action of eipd as a command",
		Long:          longHelp,
		Version:       buildinfo.Read().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{suggestFlag(c, err)} })
	pf := root.PersistentFlags()
	pf.StringVar(&opts.output, "output", "table", "how replies are printed: table or json")
	pf.StringVar(&opts.profile, "profile", "", "eipctl's profile (default $EIPGW_PROFILE, else ~/.eipgw/profile.json)")
	pf.StringVar(&opts.endpoint, "endpoint", "", "eipd's API (default $EIPGW_ENDPOINT, else the profile's)")
	pf.StringVar(&opts.accessKeyID, "access-key-id", "", "the AccessKeyId to sign with (with --access-key-secret)")
	pf.StringVar(&opts.accessKeySecret, "access-key-secret", "", "its secret")
	pf.StringVar(&opts.regionID, "region-id", "", "the RegionId to send (default $ALIBABA_CLOUD_REGION_ID, else the profile's)")
	pf.StringVar(&opts.caFile, "ca-file", "", "PEM certificates to trust for an https endpoint")
	root.AddCommand(&cobra.Command{Use: "version", Short: "print eipctl's version", Args: cobra.NoArgs,
		Run: func(c *cobra.Command, _ []string) { fmt.Fprintln(env.Stdout, "eipctl", buildinfo.Read()) }})
	for _, action := range model.Actions() {
		root.AddCommand(actionCommand(action, &opts, env))
	}
	err := root.Execute()
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) || isCobraUsage(err):
		fmt.Fprintln(env.Stderr, "eipctl:", err)
		fmt.Fprintln(env.Stderr, "eipctl --help lists the commands; eipctl COMMAND --help a command's parameters")
		return 2
	default:
		fmt.Fprintln(env.Stderr, "eipctl:", err)
		return 1
	}
}

// isCobraUsage tells cobra's own command-line errors (an unknown command, stray
// arguments) from a failed call.
func isCobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.Contains(msg, "accepts 0 arg(s)") || strings.HasPrefix(msg, "unknown shorthand flag") ||
		strings.Contains(msg, "flag needs an argument") || strings.HasPrefix(msg, "invalid argument")
}

// actionCommand is one API action as a command, a flag for each of its parameters.
func actionCommand(action string, opts *options, env Env) *cobra.Command {
	params := model.ActionParams(action)
	values := map[string]*string{}
	lists := map[string]*[]string{}
	kind := "a read"
	if model.IsWrite(action) {
		kind = "a write"
	}
	cmd := &cobra.Command{
		Use:   kebab(action) + " [--param value ...]",
		Short: "the API action " + action + " (" + kind + ")",
		Long: "The API action " + action + " (" + kind + "; docs/api.md). Parameters marked required must be given; " +
			"the server checks every rule and answers with the API's error codes.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			req := map[string]string{}
			for api, v := range values {
				if c.Flags().Changed(flagName(api)) {
					req[api] = *v
				}
			}
			for api, vs := range lists {
				for i, v := range *vs {
					item := api + "." + strconv.Itoa(i+1)
					if tagParams[api] {
						// Tag.N is a key and a value: --tag Key=value (--tag Key: the key alone).
						key, value, hasValue := strings.Cut(v, "=")
						if key == "" {
							return usageError{fmt.Errorf("--%s %q: want Key=value", flagName(api), v)}
						}
						req[item+".Key"] = key
						if hasValue {
							req[item+".Value"] = value
						}
						continue
					}
					if api != filterParam {
						req[item] = v
						continue
					}
					// A Describe's Filter.N is a key and its values: --filter Key=v1,v2.
					key, values, ok := strings.Cut(v, "=")
					if !ok || key == "" || values == "" {
						return usageError{fmt.Errorf("--filter %q: want Key=value[,value...]", v)}
					}
					req[item+".Key"] = key
					for j, value := range strings.Split(values, ",") {
						req[item+".Value."+strconv.Itoa(j+1)] = value
					}
				}
			}
			return call(action, req, *opts, env)
		},
	}
	fs := cmd.Flags()
	for _, p := range params {
		if p.Name == "RegionId" {
			continue // --region-id, eipctl's own option, sends it
		}
		if p.List {
			lists[p.Name] = fs.StringArray(flagName(p.Name), nil, paramUsage(p))
			continue
		}
		values[p.Name] = fs.String(flagName(p.Name), "", paramUsage(p))
		if len(p.Values) > 0 {
			choices := p.Values
			_ = cmd.RegisterFlagCompletionFunc(flagName(p.Name), func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
				return choices, cobra.ShellCompDirectiveNoFileComp
			})
		}
	}
	// The API's spelling (--AllocationId), other kebab spellings of it, and indexed list
	// items (--private-ip-address.2) name the same flags.
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if i := strings.IndexByte(name, '.'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		// Any spelling that names the same API parameter is the same flag
		// (--AllocationId, --ha-vip-id for --havip-id).
		return pflag.NormalizedName(flagName(paramName(name)))
	})
	return cmd
}

// filterParam is the API's name of a Describe's list of key and values filters
// (Filter.N.Key, Filter.N.Value.M).
const filterParam = "Filter"

// tagParams are the API's names of tag lists (Tag.N.Key, Tag.N.Value; DescribeHaVips
// spells it Tags).
var tagParams = map[string]bool{"Tag": true, "Tags": true}

// paramUsage describes a parameter in a command's help.
func paramUsage(p model.Param) string {
	var parts []string
	if p.Required {
		parts = append(parts, "required")
	}
	parts = append(parts, "the API's "+p.Name)
	if p.List && p.Name == filterParam {
		parts = append(parts, "Key=value[,value...], repeatable")
	} else if p.List && tagParams[p.Name] {
		parts = append(parts, "Key=value (or Key alone), repeatable")
	} else if p.List {
		parts = append(parts, "a list: repeat the flag")
	}
	if len(p.Values) > 0 {
		parts = append(parts, "one of "+strings.Join(p.Values, ", "))
	}
	if p.Range != [2]int{} {
		parts = append(parts, fmt.Sprintf("%d to %d", p.Range[0], p.Range[1]))
	}
	if p.Default != "" {
		parts = append(parts, "default "+p.Default)
	}
	return strings.Join(parts, "; ")
}

// suggestFlag adds the closest flag the command has to an unknown-flag error.
func suggestFlag(c *cobra.Command, err error) error {
	msg := err.Error()
	i := strings.Index(msg, "--")
	if !strings.HasPrefix(msg, "unknown flag") || i < 0 {
		return err
	}
	given := strings.TrimPrefix(msg[i:], "--")
	best, bestDist := "", 4
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if d := distance(given, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	if best == "" {
		return err
	}
	return fmt.Errorf("%w (did you mean --%s?)", err, best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// call sends one request and prints its reply.
func call(action string, params map[string]string, opts options, env Env) error {
	if opts.output != "table" && opts.output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", opts.output)}
	}
	prof, err := resolveProfile(opts, env)
	if err != nil {
		return err
	}
	hc, err := api.NewHTTPClient(prof.CAFile)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	client := &api.Client{Endpoint: prof.Endpoint, AccessKeyID: prof.AccessKeyID, AccessSecret: prof.AccessKeySecret,
		RegionID: prof.RegionID, Signature: prof.SignatureMethod, HTTP: hc}
	resp, err := client.Call(action, params)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %s (RequestId %v)", apiErr.Code, apiErr.Message, resp["RequestId"])
	} else if err != nil {
		return err
	}
	if opts.output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	printTable(env.Stdout, resp)
	return nil
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

// Words the API spells with an inner capital, or in capitals.
var pascalWords = map[string]string{"havip": "HaVip", "eip": "Eip", "vpc": "Vpc", "cidr": "CIDR", "isp": "ISP"}

// flagName is paramName's inverse: AllocationId is allocation-id, HaVipId havip-id,
// SourceCIDR source-cidr.
func flagName(api string) string {
	var words []string
	runes := []rune(api)
	start := 0
	for i := 1; i <= len(runes); i++ {
		// A word ends before a capital that follows a lower-case letter, or before the
		// last capital of a run followed by a lower-case letter (CIDRBlock: CIDR, Block).
		if i == len(runes) || (unicode.IsUpper(runes[i]) && (unicode.IsLower(runes[i-1]) ||
			(i+1 < len(runes) && unicode.IsLower(runes[i+1])))) {
			words = append(words, strings.ToLower(string(runes[start:i])))
			start = i
		}
	}
	out := strings.Join(words, "-")
	return strings.ReplaceAll(out, "ha-vip", "havip")
}

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
