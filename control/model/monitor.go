package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

func init() {
	register("DescribeEipMonitorData", false, (*Service).describeMonitorData)
}

// KindMonitor holds each EIP's traffic a minute at a time, as eipd samples it from the
// dataplane's counters: AllocationId "/" the minute (Unix seconds / 60, 10 hex digits,
// so that an EIP's samples sort by time) -> RX, TX and packets (big-endian uint64s). A
// minute without traffic has no entry. Samples older than the retention eipd keeps go
// (PruneTraffic), and an EIP's go with it when it is released.
const KindMonitor = "eip_monitor"

// TrafficSample is one minute of an EIP's traffic: RX is internet to the resource, TX
// the other way; bytes are IP bytes. Dropped is what its bandwidth held back, both
// ways (not in the others).
type TrafficSample struct {
	RX, TX, Packets              uint64
	DroppedPackets, DroppedBytes uint64
}

// A stored sample: RX, TX, Packets, DroppedPackets, DroppedBytes, big-endian. A sample
// written before drops were kept has the first three only.
const sampleSize, sampleSizeWithoutDrops = 40, 24

// add adds a stored sample to s.
func (s *TrafficSample) add(v []byte) bool {
	if len(v) != sampleSize && len(v) != sampleSizeWithoutDrops {
		return false
	}
	fields := []*uint64{&s.RX, &s.TX, &s.Packets, &s.DroppedPackets, &s.DroppedBytes}
	for i := 0; i*8 < len(v); i++ {
		*fields[i] += binary.BigEndian.Uint64(v[i*8:])
	}
	return true
}

// encode is s as stored.
func (s TrafficSample) encode() []byte {
	v := make([]byte, 0, sampleSize)
	for _, f := range []uint64{s.RX, s.TX, s.Packets, s.DroppedPackets, s.DroppedBytes} {
		v = binary.BigEndian.AppendUint64(v, f)
	}
	return v
}

// MonitorRetentionMax is the longest retention: the reference API answers for the
// last 30 days.
const MonitorRetentionMax = 30 * 24 * time.Hour

func monitorKey(allocationID string, minute time.Time) string {
	return fmt.Sprintf("%s/%010x", allocationID, minute.Unix()/60)
}

func monitorMinute(key string) (time.Time, bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return time.Time{}, false
	}
	m, err := strconv.ParseInt(key[i+1:], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(m*60, 0).UTC(), true
}

// RecordTraffic stores the traffic of the minute that starts at minute, by EIP
// address, adding to what that minute already holds (a sampler that ran twice in a
// minute). An address no EIP has any more (released since it was read) is skipped.
func RecordTraffic(tx Tx, minute time.Time, samples map[netip.Addr]TrafficSample) error {
	minute = minute.UTC().Truncate(time.Minute)
	for addr, s := range samples {
		if s == (TrafficSample{}) {
			continue
		}
		id, err := tx.Get(kindEIPByIP, addr.String())
		if err != nil {
			return err
		}
		if id == nil {
			continue
		}
		key := monitorKey(string(id), minute)
		old, err := tx.Get(KindMonitor, key)
		if err != nil {
			return err
		}
		if old != nil && !s.add(old) {
			return fmt.Errorf("monitor sample %q is damaged", key)
		}
		if err := tx.Put(KindMonitor, key, s.encode()); err != nil {
			return err
		}
	}
	return nil
}

// PruneTraffic removes the samples of minutes before cutoff, and returns how many.
func PruneTraffic(tx Tx, cutoff time.Time) (int, error) {
	var old []string
	err := tx.ForEach(KindMonitor, func(key string, _ []byte) error {
		if m, ok := monitorMinute(key); !ok || m.Before(cutoff) {
			old = append(old, key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range old {
		if err := tx.Delete(KindMonitor, k); err != nil {
			return 0, err
		}
	}
	return len(old), nil
}

// dropTraffic removes every sample of an EIP (released).
func dropTraffic(tx Tx, allocationID string) error {
	var keys []string
	if err := tx.ForEachPrefix(KindMonitor, allocationID+"/", func(key string, _ []byte) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(KindMonitor, k); err != nil {
			return err
		}
	}
	return nil
}

// EipMonitorDataView is one data point of DescribeEipMonitorData, with the SDK's
// field names: the period's traffic, RX internet to the resource, Flow both ways,
// Bandwidth the average over the period in bytes per second.
type EipMonitorDataView struct {
	EipRX        uint64 `json:"EipRX"`
	EipTX        uint64 `json:"EipTX"`
	EipFlow      uint64 `json:"EipFlow"`
	EipBandwidth uint64 `json:"EipBandwidth"`
	EipPackets   uint64 `json:"EipPackets"`
	TimeStamp    string `json:"TimeStamp"`
	// eipgw's, not the reference API's: what the EIP's bandwidth dropped, both ways.
	EipDroppedPackets uint64 `json:"EipDroppedPackets"`
	EipDroppedBytes   uint64 `json:"EipDroppedBytes"`
}

type eipMonitorDatas struct {
	EipMonitorData []EipMonitorDataView `json:"EipMonitorData"`
}

type describeMonitorResponse struct {
	EipMonitorDatas eipMonitorDatas `json:"EipMonitorDatas"`
}

// monitorPointsMax is the most data points one request may ask for.
const monitorPointsMax = 400

var (
	errStartTimeMalformed = badRequest("InvalidStartTime.Malformed", "The specified parameter \"StartTime\" is not valid.")
	errEndTimeMalformed   = badRequest("InvalidEndTime.Malformed", "The specified parameter \"EndTime\" is not valid.")
	errMonitorTooMany     = badRequest("InvalidParameter.TooMany", "monitor parameter too many data required.")
	errEndBeforeStart     = badRequest("InvalidParameter", "The specified EndTime is earlier than StartTime.")
)

// monitorTime reads a UTC time as the reference API takes it (YYYY-MM-DDThh:mm:ssZ,
// or without seconds), rounded up to the next minute when not on one.
func monitorTime(v string) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05Z", "2006-01-02T15:04Z"} {
		if t, err := time.Parse(layout, v); err == nil {
			if r := t.Truncate(time.Minute); !r.Equal(t) {
				return r.Add(time.Minute), true
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// describeMonitorData answers DescribeEipMonitorData: one point a Period from
// StartTime up to EndTime, each summing the minutes sampled inside it (zero where
// the EIP carried nothing, or before the samples eipd keeps). Points after now are
// not given: they have not happened.
func (s *Service) describeMonitorData(c *Call) (any, error) {
	e, err := ownEIP(c)
	if err != nil {
		return nil, err
	}
	rawStart, err := c.Params.required("StartTime")
	if err != nil {
		return nil, err
	}
	rawEnd, err := c.Params.required("EndTime")
	if err != nil {
		return nil, err
	}
	start, ok := monitorTime(rawStart)
	if !ok {
		return nil, errStartTimeMalformed
	}
	end, ok := monitorTime(rawEnd)
	if !ok {
		return nil, errEndTimeMalformed
	}
	periodText, err := c.Params.oneOf("Period", "60", "60", "300", "900", "3600")
	if err != nil {
		return nil, err
	}
	periodSeconds, _ := strconv.Atoi(periodText)
	period := time.Duration(periodSeconds) * time.Second
	if end.Before(start) {
		return nil, errEndBeforeStart
	}
	if end.Sub(start)/period > monitorPointsMax {
		return nil, errMonitorTooMany
	}
	now := c.Now.UTC()
	if end.After(now) {
		end = now
	}
	var points []EipMonitorDataView
	for t := start; t.Before(end); t = t.Add(period) {
		points = append(points, EipMonitorDataView{TimeStamp: t.Format("2006-01-02T15:04:05Z")})
	}
	if len(points) == 0 {
		return describeMonitorResponse{EipMonitorDatas: eipMonitorDatas{EipMonitorData: []EipMonitorDataView{}}}, nil
	}
	first := monitorKey(e.AllocationID, start)
	stop := errors.New("past the range")
	err = c.Tx.ForEachPrefix(KindMonitor, e.AllocationID+"/", func(key string, v []byte) error {
		if key < first {
			return nil
		}
		m, ok := monitorMinute(key)
		var sample TrafficSample
		if !ok || !sample.add(v) {
			return fmt.Errorf("monitor sample %q is damaged", key)
		}
		if !m.Before(end) {
			return stop
		}
		p := &points[int(m.Sub(start)/period)]
		p.EipRX += sample.RX
		p.EipTX += sample.TX
		p.EipPackets += sample.Packets
		p.EipDroppedPackets += sample.DroppedPackets
		p.EipDroppedBytes += sample.DroppedBytes
		return nil
	})
	if err != nil && !errors.Is(err, stop) {
		return nil, err
	}
	for i := range points {
		p := &points[i]
		p.EipFlow = p.EipRX + p.EipTX
		p.EipBandwidth = p.EipFlow / uint64(periodSeconds)
	}
	return describeMonitorResponse{EipMonitorDatas: eipMonitorDatas{EipMonitorData: points}}, nil
}
