package model

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

//go:generate go run ./paramspec/genparams

// Param is one request parameter of an action, as its handler reads it (params_gen.go,
// generated from the handlers by paramspec).
type Param struct {
	Name     string   // as the API spells it; a list's items are Name.1, Name.2, ...
	Required bool     // missing: MissingParameter
	List     bool     // Name.1, Name.2, ...
	Default  string   // what an absent one means, where the handler says
	Values   []string // the only values accepted, where the handler has a fixed set
	Range    [2]int   // an integer's bounds, where the handler checks them
}

// placesInventory are the actions that register, list or remove a resource in the
// region RegionId names, which may be another one than eipd's (to model the cloud's
// cross-region rules); every other action answers for eipd's region only.
var placesInventory = map[string]bool{"RegisterInstance": true, "CreateNetworkInterface": true, "CreateHaVip": true,
	"RegisterLoadBalancer": true, "CreateNatGateway": true, "DescribeInstances": true, "DeleteInstance": true,
	"DescribeNetworkInterfaces": true, "DeleteNetworkInterface": true, "DescribeLoadBalancers": true, "DeleteLoadBalancer": true,
	"CreateVSwitch": true, "DescribeVSwitches": true, "DeleteVSwitch": true}

var errRegionNotFound = fail(http.StatusNotFound, "InvalidRegionId.NotFound", "The specified RegionId does not exist in our records.")

// commonParams are what every action takes besides its own: the region every SDK
// sends, and for writes the idempotence token and DryRun (Do reads them).
var commonParams = []Param{{Name: "RegionId"}}
var writeParams = []Param{{Name: "ClientToken"}, {Name: "DryRun", Values: []string{"true", "false"}}}

// ActionParams lists an action's parameters: its handler's, then the common ones. Nil
// for an unknown action.
func ActionParams(action string) []Param {
	a, ok := actions[action]
	if !ok {
		return nil
	}
	out := append([]Param{}, actionParams[action]...)
	have := map[string]bool{}
	for _, p := range out {
		have[p.Name] = true
	}
	extra := commonParams
	if a.write {
		extra = append(append([]Param{}, commonParams...), writeParams...)
	}
	for _, p := range extra {
		if !have[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

// Params are a request's parameters, flattened as the RPC style sends them
// (PrivateIpAddress.1, PrivateIpAddress.2, ...).
type Params map[string]string

func (p Params) required(name string) (string, error) {
	if v := strings.TrimSpace(p[name]); v != "" {
		return v, nil
	}
	return "", missing(name)
}

func (p Params) intIn(name string, def, lo, hi int) (int, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, invalid(name, v)
	}
	return n, nil
}

func (p Params) oneOf(name, def string, allowed ...string) (string, error) {
	v, ok := p[name]
	if !ok || v == "" {
		return def, nil
	}
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return "", invalid(name, v)
}

// matches is a describe action's filter: true when the optional parameter is absent
// or empty, or equals value.
func (p Params) matches(name, value string) bool { v := p[name]; return v == "" || v == value }

// commaSet reads a filter that takes up to max values separated by commas (as
// DescribeEipAddresses' AllocationId): nil when absent, every value a key otherwise.
func (p Params) commaSet(name string, max int) (map[string]bool, error) {
	v := strings.TrimSpace(p[name])
	if v == "" {
		return nil, nil
	}
	items := strings.Split(v, ",")
	set := make(map[string]bool, len(items))
	for _, item := range items {
		if item = strings.TrimSpace(item); item == "" {
			return nil, invalid(name, v)
		}
		set[item] = true
	}
	if len(items) > max {
		return nil, badRequest("InvalidParameter", "The parameter %q takes at most %d values.", name, max)
	}
	return set, nil
}

// Filter is one of a Describe's Filter.N: a key and the values it may have.
type Filter struct {
	Key    string
	Values []string
}

// filters reads Name.N.Key and Name.N.Value.M (DescribeHaVips' Filter), in order; a
// key without a value is refused.
func (p Params) filters(name string) ([]Filter, error) {
	var out []Filter
	for i := 1; ; i++ {
		prefix := name + "." + strconv.Itoa(i)
		key, ok := p[prefix+".Key"]
		if !ok {
			return out, nil
		}
		f := Filter{Key: key, Values: p.list(prefix + ".Value")}
		if len(f.Values) == 0 {
			return nil, missing(prefix + ".Value.1")
		}
		out = append(out, f)
	}
}

// matchesFilters: every filter has the value field(key) gives among its values.
func matchesFilters(fs []Filter, field func(key string) string) bool {
	for _, f := range fs {
		if !slices.Contains(f.Values, field(f.Key)) {
			return false
		}
	}
	return true
}

// requiredList is list, refused as missing when Name.1 is absent.
func (p Params) requiredList(name string) ([]string, error) {
	if v := p.list(name); len(v) > 0 {
		return v, nil
	}
	return nil, missing(name + ".1")
}

// list reads Name.1, Name.2, ... in order.
func (p Params) list(name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := p[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

func (p Params) ipv4(name string, required bool) (string, error) {
	v := strings.TrimSpace(p[name])
	if v == "" {
		if required {
			return "", missing(name)
		}
		return "", nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return "", invalid(name, v)
	}
	return a.String(), nil
}

// Call is one API request inside its transaction.
type Call struct {
	Tx      Tx
	Account string // the caller's AccessKeyId: EIPs belong to it
	Params  Params
	Now     time.Time
}

type handler func(*Service, *Call) (any, error)

type action struct {
	run   handler
	write bool
}

// Service answers API actions against the store.
type Service struct {
	Region string
	Pool   []netip.Prefix
	// EIPGateway is the gateway's address on the VPC side, the next hop of a
	// cut-through EIP's traffic (DescribeEipGatewayInfo's IpGw).
	EIPGateway netip.Addr
	// Nat reads NAT gateway sessions from the dataplane; nil where there is none.
	Nat NatObserver
	// Capacity is what the dataplane can carry: writes past it are refused.
	Capacity Capacity
}

var actions = map[string]action{}

func register(name string, write bool, h handler) { actions[name] = action{run: h, write: write} }

// Actions lists the actions the model answers.
func Actions() []string {
	out := make([]string, 0, len(actions))
	for a := range actions {
		out = append(out, a)
	}
	return out
}

// IsWrite tells whether an action changes state.
func IsWrite(name string) bool { return actions[name].write }

// IsAction tells whether the model answers the action.
func IsAction(name string) bool { _, ok := actions[name]; return ok }

// ErrUnknownAction is returned for an action the model does not know.
var ErrUnknownAction = errors.New("unknown action")

// Do runs one action in tx and returns its response. With DryRun=true it validates
// and returns DryRunOperation, and the caller must roll the transaction back (any
// error means: roll back). A write with a ClientToken seen before from the same
// account returns the first answer again and changes nothing.
func (s *Service) Do(tx Tx, account, name string, params Params, now time.Time) (any, error) {
	a, ok := actions[name]
	if !ok {
		return nil, ErrUnknownAction
	}
	if err := params.checkValues(); err != nil {
		return nil, err
	}
	if r := params["RegionId"]; r != "" && r != s.Region && !placesInventory[name] {
		return nil, errRegionNotFound
	}
	call := &Call{Tx: tx, Account: account, Params: params, Now: now}
	token := ""
	if a.write && params["ClientToken"] != "" {
		token = account + "\x00" + name + "\x00" + params["ClientToken"]
		raw, err := tx.Get(KindToken, token)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			return json.RawMessage(raw), nil
		}
	}
	resp, err := a.run(s, call)
	if err != nil {
		return nil, err
	}
	if a.write {
		if err := s.Capacity.check(tx, name, params); err != nil {
			return nil, err
		}
	}
	if params["DryRun"] == "true" {
		return nil, errDryRun
	}
	if token != "" {
		raw, err := json.Marshal(resp)
		if err != nil {
			return nil, err
		}
		if err := tx.Put(KindToken, token, raw); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// newID makes a cloud-style resource ID: a prefix and 20 random characters.
func newID(prefix string) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + "-" + string(b)
}

// idParam is an optional caller-chosen ID (for the eipgw-only register actions),
// else a new one.
func idParam(p Params, name, prefix string) string {
	if v := strings.TrimSpace(p[name]); v != "" {
		return v
	}
	return newID(prefix)
}

// text reads an optional name or description with the reference API's rules: min to
// max characters (not bytes), not starting with http:// or https://, starting with a
// letter where the API says so, and for names only letters, digits, '.', '_' and '-'.
// ok is false when the parameter is absent.
func (p Params) text(name string, min, max int, startLetter, isName bool) (v string, ok bool, err error) {
	v, ok = p[name]
	if !ok {
		return "", false, nil
	}
	runes := []rune(v)
	bad := len(runes) < min || len(runes) > max ||
		strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") ||
		(startLetter && len(runes) > 0 && !unicode.IsLetter(runes[0]))
	for _, r := range runes {
		if isName && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("._-", r) {
			bad = true
		}
		if unicode.IsControl(r) {
			bad = true
		}
	}
	if bad {
		return "", true, invalid(name, v)
	}
	return v, true, nil
}

// entryName is an SNAT or forward entry's name: 2-128 characters from a letter.
func (p Params) entryName(name string) (string, bool, error) {
	return p.text(name, 2, 128, true, false)
}

// checkValues refuses a request whose values are not text: invalid UTF-8 or control
// characters, which no parameter of the reference API takes; and a ClientToken that
// is not at most 64 ASCII characters.
func (p Params) checkValues() error {
	for k, v := range p {
		if !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return invalid(k, v)
		}
	}
	if t := p["ClientToken"]; len(t) > 64 || strings.IndexFunc(t, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
		return invalid("ClientToken", t)
	}
	return nil
}

// eipName and eipDescription are an EIP's: Name 1-128 characters, Description 2-256
// starting with a letter.
func (p Params) eipName() (string, bool, error) { return p.text("Name", 1, 128, false, true) }
func (p Params) eipDescription() (string, bool, error) {
	return p.text("Description", 2, 256, true, false)
}
