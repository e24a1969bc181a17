package eipd

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/dataplane"
)

// fakeCounters is a dataplane's per-EIP counters, set by the test.
type fakeCounters map[netip.Addr]dataplane.EIPCounters

func (f fakeCounters) CountedEIPs() ([]netip.Addr, error) {
	var out []netip.Addr
	for a := range f {
		out = append(out, a)
	}
	return out, nil
}

func (f fakeCounters) Counters(eip netip.Addr) (dataplane.EIPCounters, error) {
	return f[eip], nil
}

// TestTrafficSampler: each minute's sample is what the counters moved since the last,
// stored under the minute that ended, by AllocationId; the first read after a start
// records nothing; a counter that went back (a new binding) counts from zero; old
// samples are pruned; DescribeEipMonitorData gives them back.
func TestTrafficSampler(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc := &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/29")}}
	var id, ip string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	must(st.Update(func(tx model.Tx) error {
		resp, err := svc.Do(tx, "acct", "AllocateEipAddress", model.Params{}, now)
		if err != nil {
			return err
		}
		m := toMap(t, resp)
		id, ip = m["AllocationId"].(string), m["EipAddress"].(string)
		return nil
	}))
	eip := netip.MustParseAddr(ip)
	counters := fakeCounters{eip: {InPackets: 10, InBytes: 1000, OutPackets: 5, OutBytes: 500}}
	s := &trafficSampler{counters: counters, store: st, retention: 2 * time.Hour, log: slog.New(slog.DiscardHandler)}

	must(s.sample(now.Add(time.Minute))) // the first read: a baseline
	counters[eip] = dataplane.EIPCounters{InPackets: 30, InBytes: 4000, OutPackets: 6, OutBytes: 600,
		InDroppedPackets: 3, InDroppedBytes: 3000, OutDroppedPackets: 1, OutDroppedBytes: 100}
	must(s.sample(now.Add(2 * time.Minute)))                          // 10:01: +3000 RX, +100 TX, 21 packets, 4 dropped
	counters[eip] = dataplane.EIPCounters{InPackets: 2, InBytes: 200} // bound again: a new slot
	must(s.sample(now.Add(3 * time.Minute)))                          // 10:02: 200 RX, 2 packets

	var got map[string]any
	must(st.View(func(tx model.Tx) error {
		resp, err := svc.Do(tx, "acct", "DescribeEipMonitorData", model.Params{"AllocationId": id,
			"StartTime": "2026-11-30T10:00:00Z", "EndTime": "2026-11-30T10:03:00Z"}, now.Add(4*time.Minute))
		if err != nil {
			return err
		}
		got = toMap(t, resp)
		return nil
	}))
	points := got["EipMonitorDatas"].(map[string]any)["EipMonitorData"].([]any)
	want := []struct{ rx, tx, packets, dropped, droppedBytes float64 }{{0, 0, 0, 0, 0}, {3000, 100, 21, 4, 3100}, {200, 0, 2, 0, 0}}
	if len(points) != len(want) {
		t.Fatalf("%d points: %v", len(points), points)
	}
	for i, w := range want {
		p := points[i].(map[string]any)
		if p["EipRX"] != w.rx || p["EipTX"] != w.tx || p["EipPackets"] != w.packets ||
			p["EipDroppedPackets"] != w.dropped || p["EipDroppedBytes"] != w.droppedBytes {
			t.Errorf("minute %d: %v, want %+v", i, p, w)
		}
	}

	// Three hours on, the pass prunes what is older than the two-hour retention.
	counters[eip] = dataplane.EIPCounters{InPackets: 3, InBytes: 300}
	must(s.sample(now.Add(3 * time.Hour)))
	var keys int
	must(st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindMonitor, func(string, []byte) error { keys++; return nil })
	}))
	if keys != 1 {
		t.Errorf("%d samples kept after pruning, want the last minute's only", keys)
	}
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
