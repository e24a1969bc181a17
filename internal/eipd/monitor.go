package eipd

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/dataplane"
)

// eipCounters is what the traffic sampler reads of the dataplane.
type eipCounters interface {
	CountedEIPs() ([]netip.Addr, error)
	Counters(eip netip.Addr) (dataplane.EIPCounters, error)
}

// trafficSampler records each EIP's traffic into the store a minute at a time, for
// DescribeEipMonitorData: at each minute it reads every counted EIP's counters and
// stores what moved since the last read as the minute that just ended. The first read,
// at start, only takes the counters as they are, so what passed while eipd was down
// is not recorded. Samples older than the retention go once an hour.
type trafficSampler struct {
	counters eipCounters
	store    interface {
		Update(func(model.Tx) error) error
	}
	retention time.Duration
	log       *slog.Logger

	last      map[netip.Addr]dataplane.EIPCounters
	lastPrune time.Time
}

// run reads the counters once at start (the baseline: traffic from then on is
// recorded), then samples at every minute until ctx ends, and closes done.
func (s *trafficSampler) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if err := s.sample(time.Now()); err != nil {
		s.log.Error("traffic sampler", "error", err)
	}
	for {
		now := time.Now()
		next := now.Truncate(time.Minute).Add(time.Minute)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.sample(time.Now()); err != nil {
			s.log.Error("traffic sampler", "error", err)
		}
	}
}

// sample reads the counters at now and records what moved since the last read as the
// minute before now's.
func (s *trafficSampler) sample(now time.Time) error {
	eips, err := s.counters.CountedEIPs()
	if err != nil {
		return fmt.Errorf("list counted EIPs: %w", err)
	}
	current := make(map[netip.Addr]dataplane.EIPCounters, len(eips))
	moved := map[netip.Addr]model.TrafficSample{}
	for _, eip := range eips {
		c, err := s.counters.Counters(eip)
		if err != nil {
			continue // unbound since the listing
		}
		current[eip] = c
		if s.last == nil {
			continue
		}
		prev := s.last[eip]
		// Counters only grow while an EIP keeps its slot; smaller ones are a new
		// slot's (the EIP was unbound and bound again), counted from zero.
		if c.InPackets < prev.InPackets || c.OutPackets < prev.OutPackets || c.InBytes < prev.InBytes || c.OutBytes < prev.OutBytes ||
			c.InDroppedPackets < prev.InDroppedPackets || c.OutDroppedPackets < prev.OutDroppedPackets ||
			c.InDroppedBytes < prev.InDroppedBytes || c.OutDroppedBytes < prev.OutDroppedBytes {
			prev = dataplane.EIPCounters{}
		}
		d := model.TrafficSample{RX: c.InBytes - prev.InBytes, TX: c.OutBytes - prev.OutBytes,
			Packets:        c.InPackets - prev.InPackets + c.OutPackets - prev.OutPackets,
			DroppedPackets: c.InDroppedPackets - prev.InDroppedPackets + c.OutDroppedPackets - prev.OutDroppedPackets,
			DroppedBytes:   c.InDroppedBytes - prev.InDroppedBytes + c.OutDroppedBytes - prev.OutDroppedBytes}
		if d != (model.TrafficSample{}) {
			moved[eip] = d
		}
	}
	first := s.last == nil
	s.last = current
	prune := now.Sub(s.lastPrune) >= time.Hour
	if (first || len(moved) == 0) && !prune {
		return nil
	}
	minute := now.UTC().Truncate(time.Minute).Add(-time.Minute)
	err = s.store.Update(func(tx model.Tx) error {
		if err := model.RecordTraffic(tx, minute, moved); err != nil {
			return err
		}
		if prune {
			_, err = model.PruneTraffic(tx, now.Add(-s.retention))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("record traffic: %w", err)
	}
	if prune {
		s.lastPrune = now
	}
	return nil
}
