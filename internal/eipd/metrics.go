package eipd

import (
	"log/slog"
	"net/netip"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/prometheus/client_golang/prometheus"
)

// The daemon's metrics beside the API's (api.Metrics): collectors that read the
// dataplane, the NAT collector's last pass, the guard and the store at scrape time,
// and the reconcile outcomes counted as they happen. The names are the exposition's
// contract with dashboards: they do not change.

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// dataplaneMetrics is per-EIP traffic and drops, the pass and drop reasons and the
// next-hop cache's fallbacks, read from the dataplane's counters.
type dataplaneMetrics struct {
	dp  *dataplane.Dataplane
	log *slog.Logger
}

var (
	eipPacketsDesc      = desc("eipgw_eip_packets_total", "Packets through each EIP; in is internet to instance.", "eip", "direction")
	eipBytesDesc        = desc("eipgw_eip_bytes_total", "IP bytes through each EIP.", "eip", "direction")
	eipDroppedDesc      = desc("eipgw_eip_dropped_packets_total", "Packets dropped for being over their EIP's bandwidth.", "eip", "direction")
	eipDroppedBytesDesc = desc("eipgw_eip_dropped_bytes_total", "IP bytes dropped for being over their EIP's bandwidth.", "eip", "direction")
	fallbacksDesc       = desc("eipgw_next_hop_fallbacks_total", "Packets whose next hop came from the kernel's FIB and not the cache, by why.", "why")
	reasonsDesc         = desc("eipgw_dataplane_packets_total", "Packets the fast path passed to the kernel or dropped, by reason.", "verdict", "reason")
)

func (m dataplaneMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eipPacketsDesc, eipBytesDesc, eipDroppedDesc, eipDroppedBytesDesc, fallbacksDesc, reasonsDesc} {
		ch <- d
	}
}

func (m dataplaneMetrics) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	eips, err := m.dp.CountedEIPs()
	if err != nil {
		m.log.Error("metrics: EIPs", "error", err)
		ch <- prometheus.NewInvalidMetric(eipPacketsDesc, err)
	}
	for _, eip := range eips {
		c, err := m.dp.Counters(eip)
		if err != nil {
			continue // unbound since the listing
		}
		e := eip.String()
		counter(eipPacketsDesc, c.InPackets, e, "in")
		counter(eipPacketsDesc, c.OutPackets, e, "out")
		counter(eipBytesDesc, c.InBytes, e, "in")
		counter(eipBytesDesc, c.OutBytes, e, "out")
		counter(eipDroppedDesc, c.InDroppedPackets, e, "in")
		counter(eipDroppedDesc, c.OutDroppedPackets, e, "out")
		counter(eipDroppedBytesDesc, c.InDroppedBytes, e, "in")
		counter(eipDroppedBytesDesc, c.OutDroppedBytes, e, "out")
	}
	if fb, err := m.dp.NextHopFallbacks(); err == nil {
		counter(fallbacksDesc, fb.Off, "off")
		counter(fallbacksDesc, fb.Miss, "miss")
		counter(fallbacksDesc, fb.Stale, "stale")
		counter(fallbacksDesc, fb.Size, "size")
	} else {
		m.log.Error("metrics: next-hop fallbacks", "error", err)
		ch <- prometheus.NewInvalidMetric(fallbacksDesc, err)
	}
	rc, err := m.dp.ReasonCounts()
	if err != nil {
		m.log.Error("metrics: reasons", "error", err)
		ch <- prometheus.NewInvalidMetric(reasonsDesc, err)
		return
	}
	for r := dataplane.Reason(0); r < dataplane.ReasonMax; r++ {
		verdict := "pass"
		switch {
		case r.IsDrop():
			verdict = "drop"
		case r == dataplane.ReasonHeldFragment:
			verdict = "held"
		}
		counter(reasonsDesc, rc[r], verdict, r.String())
	}
}

// natMetrics is session counts, port use and capacity and expirations per NAT EIP, as
// of the NAT collector's last pass, and the refusals of new sessions by cause.
type natMetrics struct{ c *natCollector }

var (
	natSessionsDesc = desc("eipgw_nat_sessions", "Live NAT gateway sessions per EIP.", "eip")
	natPortsDesc    = desc("eipgw_nat_ports_in_use", "External ports (ICMP: identifiers) mapped per EIP and protocol.", "eip", "protocol")
	natCapacityDesc = desc("eipgw_nat_port_capacity", "External ports (ICMP: identifiers) the port range offers each NAT EIP, per protocol.", "eip")
	natExpiredDesc  = desc("eipgw_nat_sessions_expired_total", "Sessions the collector removed after their idle timeout.")
	natRefusalsDesc = desc("eipgw_nat_refusals_total", "New NAT sessions refused (answered with ICMP 3/13), by cause.", "cause")
)

func (m natMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{natSessionsDesc, natPortsDesc, natCapacityDesc, natExpiredDesc, natRefusalsDesc} {
		ch <- d
	}
}

func (m natMetrics) Collect(ch chan<- prometheus.Metric) {
	m.c.mu.Lock()
	us := m.c.usage
	m.c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for _, u := range us {
		e := u.EIP.String()
		gauge(natSessionsDesc, u.Sessions, e)
		gauge(natPortsDesc, u.TCP, e, "tcp")
		gauge(natPortsDesc, u.UDP, e, "udp")
		gauge(natPortsDesc, u.ICMP, e, "icmp")
		gauge(natCapacityDesc, u.PortRangeCapacity, e)
	}
	ch <- prometheus.MustNewConstMetric(natExpiredDesc, prometheus.CounterValue, float64(m.c.expired.Load()))
	rc, err := m.c.dp.ReasonCounts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(natRefusalsDesc, err)
		return
	}
	for _, r := range []struct {
		cause  string
		reason dataplane.Reason
	}{{"ports_exhausted", dataplane.ReasonDropNatPortsExhausted}, {"port_quota", dataplane.ReasonDropNatPortQuota},
		{"session_quota", dataplane.ReasonDropNatSessionQuota}, {"table_full", dataplane.ReasonDropNatTableFull}} {
		ch <- prometheus.MustNewConstMetric(natRefusalsDesc, prometheus.CounterValue, float64(rc[r.reason]), r.cause)
	}
}

// guardMetrics is what the guard repaired and whether all is in place.
type guardMetrics struct{ g *dataplaneGuard }

var (
	repairsDesc = desc("eipgw_dataplane_repairs_total", "Missing pins and attachments the daemon put back, and those it could not.", "result")
	readyDesc   = desc("eipgw_ready", "1 when every pin and attachment of the dataplane is in place.")
)

func (m guardMetrics) Describe(ch chan<- *prometheus.Desc) { ch <- repairsDesc; ch <- readyDesc }

func (m guardMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(repairsDesc, prometheus.CounterValue, float64(m.g.restored.Load()), "restored")
	ch <- prometheus.MustNewConstMetric(repairsDesc, prometheus.CounterValue, float64(m.g.failed.Load()), "failed")
	ready := 1.0
	if m.g.ready() != nil {
		ready = 0
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
}

// poolMetrics is each pool's size and how many of its addresses are allocated, the
// first thing to alert on: read from the store's address index (one walk a scrape).
type poolMetrics struct {
	st    stateStore
	pools []netip.Prefix
	log   *slog.Logger
}

var (
	poolSizeDesc      = desc("eipgw_pool_addresses", "Addresses an EIP pool can give out (network and broadcast addresses left out).", "pool")
	poolAllocatedDesc = desc("eipgw_pool_allocated_eips", "EIPs allocated from a pool.", "pool")
)

func (m poolMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolSizeDesc
	ch <- poolAllocatedDesc
}

func (m poolMetrics) Collect(ch chan<- prometheus.Metric) {
	var usage []model.PoolUsage
	if err := m.st.View(func(tx model.Tx) error {
		var err error
		usage, err = model.PoolUsages(tx, m.pools)
		return err
	}); err != nil {
		m.log.Error("metrics: pools", "error", err)
		ch <- prometheus.NewInvalidMetric(poolAllocatedDesc, err)
		return
	}
	for _, u := range usage {
		ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(u.Size), u.Pool.String())
		ch <- prometheus.MustNewConstMetric(poolAllocatedDesc, prometheus.GaugeValue, float64(u.Allocated), u.Pool.String())
	}
}

// reconcileRuns counts reconcile passes by outcome.
var reconcileRunsOpts = prometheus.CounterOpts{Name: "eipgw_reconcile_runs_total",
	Help: "Reconcile passes (after writes, at start and periodically) by result."}
