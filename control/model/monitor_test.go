package model

import (
	"net/netip"
	"testing"
	"time"
)

// TestDescribeEipMonitorData: the recorded minutes come back summed a Period at a
// time from StartTime (rounded up to the minute), zero where nothing was recorded,
// none after now; the reference API's time, period and size rules; a released EIP's
// samples go with it.
func TestDescribeEipMonitorData(t *testing.T) {
	w := newWorld(t)
	const acct = "acct-1"
	id, ip := w.allocate(acct)
	other, otherIP := w.allocate(acct)
	addr, otherAddr := netip.MustParseAddr(ip), netip.MustParseAddr(otherIP)
	base := w.now.Add(-10 * time.Minute) // 11:50
	for i, s := range []TrafficSample{{RX: 100, TX: 10, Packets: 3, DroppedPackets: 4, DroppedBytes: 4000}, {}, {RX: 50, TX: 5, Packets: 2}} {
		if err := RecordTraffic(w.tx, base.Add(time.Duration(i)*time.Minute), map[netip.Addr]TrafficSample{addr: s, otherAddr: {RX: 7, Packets: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	// A second sample of the same minute adds to it.
	if err := RecordTraffic(w.tx, base.Add(2*time.Minute+30*time.Second), map[netip.Addr]TrafficSample{addr: {RX: 1, Packets: 1}}); err != nil {
		t.Fatal(err)
	}
	// A sample written before drops were kept (24 bytes) reads as one without drops.
	legacy := TrafficSample{RX: 9, TX: 1, Packets: 2}.encode()[:sampleSizeWithoutDrops]
	if err := w.tx.Put(KindMonitor, monitorKey(id, base.Add(3*time.Minute)), legacy); err != nil {
		t.Fatal(err)
	}
	points := func(m map[string]any) []map[string]any {
		var out []map[string]any
		for _, p := range m["EipMonitorDatas"].(map[string]any)["EipMonitorData"].([]any) {
			out = append(out, p.(map[string]any))
		}
		return out
	}
	// Per minute, from 11:49:30 (rounded up to 11:50) to 11:54.
	ps := points(w.ok(acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:49:30Z", "EndTime", "2026-11-22T11:54:00Z"))
	want := []struct {
		ts                    string
		rx, tx, packets, flow float64
		dropped, droppedBytes float64
	}{
		{"2026-11-22T11:50:00Z", 100, 10, 3, 110, 4, 4000},
		{"2026-11-22T11:51:00Z", 0, 0, 0, 0, 0, 0},
		{"2026-11-22T11:52:00Z", 51, 5, 3, 56, 0, 0},
		{"2026-11-22T11:53:00Z", 9, 1, 2, 10, 0, 0},
	}
	if len(ps) != len(want) {
		t.Fatalf("%d points, want %d: %v", len(ps), len(want), ps)
	}
	for i, wp := range want {
		p := ps[i]
		if p["TimeStamp"] != wp.ts || p["EipRX"] != wp.rx || p["EipTX"] != wp.tx || p["EipPackets"] != wp.packets ||
			p["EipFlow"] != wp.flow || p["EipBandwidth"] != float64(int(wp.flow)/60) ||
			p["EipDroppedPackets"] != wp.dropped || p["EipDroppedBytes"] != wp.droppedBytes {
			t.Errorf("point %d: %v, want %+v", i, p, wp)
		}
	}
	// Five minutes a point; the end is now at the latest.
	ps = points(w.ok(acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:50:00Z",
		"EndTime", "2026-11-22T13:00:00Z", "Period", "300"))
	if len(ps) != 2 || ps[0]["EipRX"] != float64(160) || ps[0]["EipBandwidth"] != float64(176/300) || ps[1]["EipFlow"] != float64(0) {
		t.Errorf("5-minute points: %v", ps)
	}
	w.wantCode("InvalidStartTime.Malformed", acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22 11:50", "EndTime", "2026-11-22T11:54:00Z")
	w.wantCode("InvalidEndTime.Malformed", acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:50:00Z", "EndTime", "yesterday")
	w.wantCode("InvalidParameter", acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:50:00Z", "EndTime", "2026-11-22T11:54:00Z", "Period", "120")
	w.wantCode("InvalidParameter", acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:54:00Z", "EndTime", "2026-11-22T11:50:00Z")
	w.wantCode("InvalidParameter.TooMany", acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T00:00:00Z", "EndTime", "2026-11-22T06:41:00Z")
	w.ok(acct, "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T00:00:00Z", "EndTime", "2026-11-22T06:40:00Z")
	w.wantCode("MissingParameter", acct, "DescribeEipMonitorData", "AllocationId", id, "EndTime", "2026-11-22T11:54:00Z")
	w.wantCode("InvalidAllocationId.NotFound", "acct-2", "DescribeEipMonitorData", "AllocationId", id, "StartTime", "2026-11-22T11:50:00Z", "EndTime", "2026-11-22T11:54:00Z")

	// Pruning keeps the minutes from the cutoff on.
	if n, err := PruneTraffic(w.tx, base.Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("pruned %d samples (%v), want the two of 11:50", n, err)
	}
	// Released: its samples go, the other EIP's stay.
	w.ok(acct, "ReleaseEipAddress", "AllocationId", id)
	var left []string
	if err := w.tx.ForEach(KindMonitor, func(k string, _ []byte) error { left = append(left, k); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != monitorKey(other, base.Add(time.Minute)) || left[1] != monitorKey(other, base.Add(2*time.Minute)) {
		t.Errorf("samples left after the release: %v", left)
	}
}
