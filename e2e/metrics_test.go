package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
)

// parseMetrics parses an HTTP response of eipd's /metrics with the Prometheus text
// parser: the families by name, nil when it does not parse.
func parseMetrics(response string) map[string]*dto.MetricFamily {
	_, body, _ := strings.Cut(response, "\r\n\r\n")
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		return nil
	}
	return families
}

// metricValue finds one series in an HTTP response of /metrics, named as a selector
// (`name{label="value",...}`, labels in any order, all of the series' labels given),
// and returns its value as text ("" when absent).
func metricValue(response, selector string) string {
	name, rest, _ := strings.Cut(selector, "{")
	want := map[string]string{}
	for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				want[k] = u
			}
		}
	}
	f := parseMetrics(response)[name]
	if f == nil {
		return ""
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Untyped != nil:
			v = m.Untyped.GetValue()
		default:
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// TestMetricsExposition: after requests of every kind (a write, a read, a refused
// write, a request with a bad signature, a NAT gateway association), eipd's whole /metrics
// parses with the Prometheus text parser, and holds the standard process and Go
// series, the build, reconcile outcomes, each pool's size and allocated EIPs, port
// capacity per NAT EIP beside ports in use, and the per-EIP and per-reason series.
// Its log has an audit line for each write and no line for reads; eipd --check run
// beside it finds everything in place.
func TestMetricsExposition(t *testing.T) {
	d := newDaemonWith(t, "xdp", func(s *eipd.LocalSetup) { s.EIPGateway = testbed.GWVPCAddr })
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	one := d.must(t, "allocate-eip-address")
	d.must(t, "associate-eip-address", "--allocation-id", one["AllocationId"].(string), "--instance-id", "i-vm1")
	d.must(t, "describe-eip-addresses")
	if _, errText := d.ctl(t, "release-eip-address", "--allocation-id", "eip-none"); errText == "" {
		t.Fatal("releasing an EIP that does not exist succeeded")
	}
	// A request signed with the wrong secret.
	raw, err := os.ReadFile(d.profile)
	if err != nil {
		t.Fatal(err)
	}
	var profile map[string]any
	if err := json.Unmarshal(raw, &profile); err != nil {
		t.Fatal(err)
	}
	profile["access_key_secret"] = "not-the-secret"
	wrong := filepath.Join(t.TempDir(), "wrong.json")
	raw, _ = json.Marshal(profile)
	if err := os.WriteFile(wrong, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var out []byte
	_ = d.GW.Do(func() error {
		out, err = exec.Command(bin("eipctl"), "--profile", wrong, "describe-eip-addresses").CombinedOutput()
		return nil
	})
	if err == nil || !strings.Contains(string(out), "SignatureDoesNotMatch") {
		t.Errorf("a request signed with the wrong secret: %v, %s", err, out)
	}
	d.must(t, "create-nat-gateway", "--nat-gateway-id", "ngw-1", "--vpc-id", "vpc-1")
	nat := d.must(t, "allocate-eip-address")
	d.must(t, "associate-eip-address", "--allocation-id", nat["AllocationId"].(string), "--instance-id", "ngw-1", "--instance-type", "Nat")
	natEIP := nat["EipAddress"].(string)
	// The NAT collector reports capacity at its next pass (nat.collect_interval).
	waitFor(t, "the NAT collector's pass", 10*time.Second, func() bool {
		return metricValue(d.metrics(t), fmt.Sprintf(`eipgw_nat_port_capacity{eip=%q}`, natEIP)) != ""
	})

	m := d.metrics(t)
	families := parseMetrics(m)
	if families == nil {
		t.Fatalf("the exposition does not parse:\n%s", m)
	}
	for name, kind := range map[string]dto.MetricType{
		"process_cpu_seconds_total": dto.MetricType_COUNTER, "process_resident_memory_bytes": dto.MetricType_GAUGE,
		"go_goroutines": dto.MetricType_GAUGE, "eipgw_build_info": dto.MetricType_GAUGE,
		"eipgw_reconcile_runs_total": dto.MetricType_COUNTER, "eipgw_pool_addresses": dto.MetricType_GAUGE,
		"eipgw_pool_allocated_eips": dto.MetricType_GAUGE, "eipgw_nat_port_capacity": dto.MetricType_GAUGE,
		"eipgw_nat_ports_in_use": dto.MetricType_GAUGE, "eipgw_api_requests_total": dto.MetricType_COUNTER,
		"eipgw_api_request_duration_seconds": dto.MetricType_HISTOGRAM, "eipgw_eip_packets_total": dto.MetricType_COUNTER,
		"eipgw_eip_dropped_bytes_total": dto.MetricType_COUNTER, "eipgw_dataplane_packets_total": dto.MetricType_COUNTER,
		"eipgw_next_hop_fallbacks_total": dto.MetricType_COUNTER, "eipgw_ready": dto.MetricType_GAUGE,
		"eipgw_dataplane_repairs_total": dto.MetricType_COUNTER, "eipgw_nat_refusals_total": dto.MetricType_COUNTER,
	} {
		if f := families[name]; f == nil || f.GetType() != kind {
			t.Errorf("family %s: %v, want a %v", name, f, kind)
		}
	}
	for selector, want := range map[string]string{
		`eipgw_pool_addresses{pool="` + testbed.EIPPool + `"}`:                                                  "254",
		`eipgw_pool_allocated_eips{pool="` + testbed.EIPPool + `"}`:                                             "2",
		fmt.Sprintf(`eipgw_nat_port_capacity{eip=%q}`, natEIP):                                                  "64512", // the default range, 1024-65535
		`eipgw_api_requests_total{action="ReleaseEipAddress",code="InvalidAllocationId.NotFound",status="404"}`: "1",
		`eipgw_api_requests_total{action="DescribeEipAddresses",code="OK",status="200"}`:                        "1",
		`eipgw_ready`: "1",
		`eipgw_api_requests_total{action="unauthenticated",code="SignatureDoesNotMatch",status="400"}`: "1",
	} {
		if got := metricValue(m, selector); got != want {
			t.Errorf("%s = %q, want %s", selector, got, want)
		}
	}
	if v, _ := strconv.Atoi(metricValue(m, `eipgw_reconcile_runs_total{result="ok"}`)); v < 1 {
		t.Errorf("no reconcile run counted")
	}
	// The log: an audit line for each write, with who and what; reads only at debug.
	logText := d.log.String()
	audited := false
	for _, line := range strings.Split(logText, "\n") {
		if strings.Contains(line, "msg=audit") && strings.Contains(line, "action=AssociateEipAddress") &&
			strings.Contains(line, "access_key_id=") && strings.Contains(line, "AllocationId="+nat["AllocationId"].(string)) &&
			strings.Contains(line, "InstanceId=ngw-1") && strings.Contains(line, "code=OK") && strings.Contains(line, "remote=") {
			audited = true
		}
		if strings.Contains(line, "action=DescribeEipAddresses") {
			t.Errorf("a read logged at the default level: %s", line)
		}
	}
	if !audited {
		t.Errorf("no audit line for the NAT gateway association:\n%s", logText)
	}
	// eipd --check beside the running daemon: everything in place, the state file
	// left to it, nothing changed.
	var checkOut []byte
	_ = d.GW.Do(func() error {
		checkOut, err = exec.Command(bin("eipd"), "--check", "--config", filepath.Join(d.dir, "eipd.json")).CombinedOutput()
		return nil
	})
	if err != nil || !strings.Contains(string(checkOut), "held by a running eipd") || !strings.Contains(string(checkOut), "present; a start adopts them") ||
		!strings.HasSuffix(string(checkOut), "ok\n") {
		t.Errorf("eipd --check beside a running eipd: %v\n%s", err, checkOut)
	}

	build := families["eipgw_build_info"].GetMetric()
	if len(build) != 1 || build[0].GetGauge().GetValue() != 1 || len(build[0].GetLabel()) != 3 {
		t.Errorf("eipgw_build_info: %v", build)
	}
}
