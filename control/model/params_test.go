package model

import (
	"os"
	"testing"

	"github.com/eipgw/eipgw/control/model/paramspec"
)

// TestActionParamsCurrent: the parameter table is what the handlers read today
// (regenerated from the source and compared), and every action has one: a handler
// that starts reading a new parameter, or stops, fails here until `make generate`.
func TestActionParamsCurrent(t *testing.T) {
	specs, err := paramspec.Extract(".")
	if err != nil {
		t.Fatal(err)
	}
	want, err := paramspec.Format(specs)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("params_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != string(want) {
		t.Error("params_gen.go is stale: run make generate")
	}
	for _, a := range Actions() {
		if _, ok := specs[a]; !ok {
			t.Errorf("no parameters found for %s", a)
		}
	}
}

// TestActionParamsAreTheRules: what the table says is what the server does, for a
// sample of each rule: a required parameter missing, a value outside a fixed set, an
// integer out of range.
func TestActionParamsAreTheRules(t *testing.T) {
	find := func(action, name string) Param {
		t.Helper()
		for _, p := range ActionParams(action) {
			if p.Name == name {
				return p
			}
		}
		t.Fatalf("%s has no parameter %s", action, name)
		return Param{}
	}
	w := newWorld(t)
	if p := find("ReleaseEipAddress", "AllocationId"); !p.Required {
		t.Errorf("AllocationId of ReleaseEipAddress: %+v", p)
	}
	w.wantCode("MissingParameter", "admin", "ReleaseEipAddress")
	if p := find("AllocateEipAddress", "InternetChargeType"); len(p.Values) != 2 || p.Default != "PayByTraffic" {
		t.Errorf("InternetChargeType: %+v", p)
	}
	w.wantCode("InvalidParameter", "admin", "AllocateEipAddress", "InternetChargeType", "Free")
	if p := find("DescribeEipAddresses", "PageSize"); p.Range != [2]int{1, 100} || p.Default != "10" {
		t.Errorf("PageSize: %+v", p)
	}
	w.wantCode("InvalidParameter", "admin", "DescribeEipAddresses", "PageSize", "101")
	if p := find("AssignPrivateIpAddresses", "PrivateIpAddress"); !p.List {
		t.Errorf("PrivateIpAddress: %+v", p)
	}
	if ps := ActionParams("AllocateEipAddress"); ps[len(ps)-1].Name != "DryRun" {
		t.Errorf("a write's common parameters: %+v", ps)
	}
	if ActionParams("NoSuchAction") != nil {
		t.Error("an unknown action has parameters")
	}
}
