package eipd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/bgp"
	"github.com/eipgw/eipgw/control/cluster"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/netcfg"
	"github.com/eipgw/eipgw/control/reconcile"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
)

// StateFile is the store's file name in the state directory.
const StateFile = "eipgw.db"

// Run starts the daemon and serves until ctx ends. The order matters: the store is
// opened first, so a missing or corrupt state file stops the daemon before it
// touches the pinned dataplane; the dataplane is adopted and reconciled (applying
// only the difference) before the API answers. On the way out the dataplane is
// closed, never removed: traffic keeps flowing without the daemon.
func Run(ctx context.Context, cfg *Config, initState bool, log *slog.Logger, ready func(addr string)) error {
	creds, err := LoadCredentials(cfg.CredentialsFile)
	if err != nil {
		return err
	}
	var st stateStore
	var shared *store.Etcd // the cluster's shared store, when the config names one
	if cfg.Store != nil && cfg.Store.Etcd != nil {
		ec, err := cfg.Store.Etcd.etcdConfig()
		if err != nil {
			return err
		}
		if shared, err = store.OpenEtcd(ec); err != nil {
			return err
		}
		st = shared
		log.Info("state in etcd, shared with the cluster", "endpoints", ec.Endpoints, "prefix", cfg.Store.Etcd.Prefix)
	} else {
		file, err := store.Open(filepath.Join(cfg.StateDir, StateFile), initState)
		if err != nil {
			return err
		}
		st = file
		// eipd backup copies the state through this socket while eipd runs; closed
		// before the store (the defers run in reverse).
		if stopBackups, err := serveBackups(file, cfg.StateDir, log); err != nil {
			// Not a reason to leave the gateway down: eipd backup then needs eipd stopped.
			log.Warn("no online backups", "error", err)
		} else {
			defer stopBackups()
		}
	}
	defer st.Close()
	// A cluster's state in etcd from before the bandwidth index gets it once (the
	// state file's indexes are rebuilt at each open: there this finds it complete).
	if err := model.UpdateRetrying(st.Update, func(tx model.Tx) error {
		n, err := model.EnsureBandwidthIndex(tx)
		if n > 0 {
			log.Info("bandwidth index built", "eips", n)
		}
		return err
	}); err != nil {
		return fmt.Errorf("build the bandwidth index: %w", err)
	}

	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lift memlock limit: %w", err)
	}
	dp, err := dataplane.Open(dataplane.Config{PinDir: cfg.BPFFSDir, MaxBindings: cfg.MaxBindings, MaxSources: cfg.MaxSources,
		MaxSessions: cfg.Nat.MaxSessions, MaxNatEIPs: cfg.Nat.MaxEIPs})
	if err != nil {
		return err
	}
	defer dp.Close()
	// Before anything is written to a dataplane that may be refused.
	if !initState {
		if err := refuseEmptyOverLive(st, dp); err != nil {
			return err
		}
	}
	if err := dp.SetNatConfig(cfg.nat); err != nil {
		return err
	}
	if err := dp.SetEdgeConfig(cfg.edge); err != nil {
		return err
	}
	log.Info("dataplane open", "pins", cfg.BPFFSDir, "adopted", dp.Adopted())
	for _, i := range []struct {
		iface Interface
		role  dataplane.Role
	}{{cfg.Uplink, dataplane.RoleUplink}, {cfg.VPC, dataplane.RoleVPC}} {
		used, err := dp.Attach(i.iface.Name, i.role, dataplane.Hook(i.iface.Hook))
		if err != nil {
			return err
		}
		log.Info("attached", "interface", i.iface.Name, "role", i.role, "hook", used)
	}

	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	rec := &reconcile.Reconciler{Store: st, Dataplane: dp, Nat: dp,
		Routes: netcfg.GatewayRoutes{Handle: nl, Interface: cfg.VPC.Name}}
	// In a cluster this gateway is a member while it runs, and carries the NAT
	// gateways it owns; leaving on the way out hands them over at once.
	var member *cluster.Member
	var ownership <-chan struct{}
	if shared != nil {
		s := cfg.Store.Etcd
		if member, err = cluster.Join(context.Background(), shared.Client(), shared.Prefix(), s.Name, s.leaseTTL); err != nil {
			return err
		}
		defer func() {
			if err := member.Leave(); err != nil {
				log.Warn("leaving the cluster", "error", err)
			}
		}()
		rec.OwnsNatGateway = member.Owns
		ownership = member.Changes()
		log.Info("cluster member", "name", s.Name, "members", member.Members())
	}
	// Passes run under their own context, ended on the way out after the API has
	// drained; then Stop waits for the last pass, so that the dataplane and the store
	// (closed by the deferred calls above) never close under one.
	reconcileCtx, stopReconciling := context.WithCancel(context.Background())
	defer func() { stopReconciling(); rec.Stop() }()
	reconcileRuns := prometheus.NewCounterVec(reconcileRunsOpts, []string{"result"})
	res, err := rec.Reconcile(reconcileCtx)
	if err != nil {
		return fmt.Errorf("reconcile at start: %w", err)
	}
	reconcileRuns.WithLabelValues("ok").Inc()
	log.Info("reconciled at start", "result", res.String())
	// Next hops are cached from the kernel's tables once the bindings are in, and
	// kept current while eipd runs. Nobody watches the tables while it is stopped, so
	// it turns the cache off on the way out: until the next start every packet asks
	// the FIB (docs/dataplane.md says what a crash leaves).
	hopsCtx, stopHops := context.WithCancel(context.Background())
	hopWatcher := &dataplane.NextHopWatcher{DP: dp, Resync: cfg.reconcileInterval,
		Log: func(msg string, args ...any) { log.Error(msg, args...) }}
	waitHops, err := hopWatcher.Start(hopsCtx)
	if err != nil {
		stopHops()
		return err
	}
	defer func() {
		stopHops()
		waitHops()
		if err := dp.DisableNextHops(); err != nil {
			log.Error("next-hop cache: turning it off on the way out", "error", err)
		}
	}()
	var ann *announcer // BGP, when configured: told after each pass
	logged := func(res reconcile.Result, err error) error {
		if ann != nil {
			ann.poke()
		}
		if err != nil {
			reconcileRuns.WithLabelValues("failed").Inc()
			log.Error("reconcile", "error", err)
			return err
		}
		reconcileRuns.WithLabelValues("ok").Inc()
		if res.Changed() || res.Settled > 0 {
			log.Info("reconciled", "result", res.String())
		}
		return nil
	}
	reconcileNow := func() error { return logged(rec.Reconcile(reconcileCtx)) }
	// An API write's reply waits for the dataplane to carry it: for an association
	// of a 1:1 EIP, a pass over its pending transitions; for anything else, a full one.
	afterWrite := func(action string) error { return logged(ReconcileAfter(reconcileCtx, rec, action)) }

	verifier := &api.Verifier{Secrets: creds, Window: cfg.timestampWindow, MaxNonces: 1 << 20, Now: time.Now}
	restored, err := verifier.RestoreNonces(st)
	if err != nil {
		return err
	}
	log.Info("nonces restored", "count", restored)
	journalCtx, stopJournal := context.WithCancel(context.Background())
	nonces := &api.NonceJournal{Store: st}
	nonces.Start(journalCtx, func(err error) { log.Error("nonce journal", "error", err) })
	// Stopped, with its last batch stored, before the store closes.
	defer func() { stopJournal(); nonces.Wait() }()

	// The collector runs in its own goroutine; it is stopped, and its pass finished,
	// before anything it uses closes (this defer runs before the earlier ones).
	collector := &natCollector{dp: dp, log: log}
	collectCtx, stopCollector := context.WithCancel(context.Background())
	collectorDone := make(chan struct{})
	go collector.run(collectCtx, cfg.natCollect, collectorDone)
	defer func() { stopCollector(); <-collectorDone }()
	// The traffic sampler too: stopped, its last write done, before the store closes.
	// In a cluster each gateway carries part of an EIP's traffic and no gateway's
	// counters are the EIP's: no samples (docs/cluster.md).
	if shared == nil {
		sampler := &trafficSampler{counters: dp, store: st, retention: cfg.monitorRetention, log: log}
		sampleCtx, stopSampler := context.WithCancel(context.Background())
		samplerDone := make(chan struct{})
		go sampler.run(sampleCtx, samplerDone)
		defer func() { stopSampler(); <-samplerDone }()
	}
	guard := &dataplaneGuard{dp: dp, log: log}
	if cfg.BGP != nil {
		conf := cfg.BGP.speaker
		conf.Log = log
		speaker, err := bgp.Start(context.Background(), conf)
		if err != nil {
			return err
		}
		ann = newAnnouncer(speaker, dp, guard, member, log)
		announceCtx, stopAnnouncing := context.WithCancel(context.Background())
		announceDone := make(chan struct{})
		go ann.run(announceCtx, announceDone)
		// On the way out the sessions close: the routers withdraw this gateway's
		// routes at once, before the dataplane or the store close.
		defer func() {
			stopAnnouncing()
			<-announceDone
			stop, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := speaker.Stop(stop); err != nil {
				log.Warn("bgp: stop", "error", err)
			}
		}()
		log.Info("bgp speaker started", "asn", conf.ASN, "next_hop", conf.NextHop, "peers", len(conf.Peers))
	}
	metrics := api.NewMetrics()
	if err := metrics.Register(dataplaneMetrics{dp: dp, log: log}, natMetrics{collector}, guardMetrics{guard},
		poolMetrics{st: st, pools: cfg.pools, log: log}, reconcileRuns); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var staleState func() bool
	if shared != nil {
		staleState = shared.Stale
		if err := metrics.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eipgw_state_stale",
			Help: "1 while the cluster's store (etcd) cannot be reached or this gateway's copy is behind it: reads are served from the copy, writes are refused."},
			func() float64 {
				if shared.Stale() {
					return 1
				}
				return 0
			})); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	apiServer := &api.Server{
		Verifier: verifier,
		Nonces:   nonces,
		Model: &model.Service{Region: cfg.Region, Pool: cfg.pools, EIPGateway: cfg.eipGateway, Nat: natObserver{dp},
			Capacity: modelCapacity(dp.Capacities())},
		Store:      &reconcile.Committer{Reconciler: rec},
		AfterWrite: afterWrite,
		StaleState: staleState,
		Metrics:    metrics,
		Log:        log,
		Now:        time.Now,
	}
	if shared != nil {
		// Each request's nonce is claimed in etcd: a replay through another gateway is
		// refused too (docs/cluster.md).
		apiServer.Shared = shared
	}
	srv := api.NewHTTPServer(apiServer, cfg.apiLimits)
	opsLn, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("listen for metrics: %w", err)
	}
	opsSrv := api.NewHTTPServer(api.OpsHandler(metrics, guard.ready), cfg.apiLimits)
	log.Info("serving metrics and health, unauthenticated", "listen", opsLn.Addr().String())
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		opsLn.Close()
		return fmt.Errorf("listen: %w", err)
	}
	var cert *api.Certificate
	var tlsConfig *tls.Config
	if cfg.TLS != nil {
		cert = &api.Certificate{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile}
		if err := cert.Reload(); err != nil {
			ln.Close()
			opsLn.Close()
			return err
		}
		tlsConfig = cert.TLSConfig()
	}
	ln = api.Listener(ln, cfg.apiLimits, tlsConfig)
	if cfg.TLS != nil {
		log.Info("serving the API", "listen", ln.Addr().String(), "protocol", "https", "certificate", cfg.TLS.CertFile)
	} else {
		log.Warn("the API is plain HTTP: signatures and requests cross the listener readable; configure tls to serve HTTPS")
		log.Info("serving the API", "listen", ln.Addr().String(), "protocol", "http")
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() { serveErr <- opsSrv.Serve(opsLn) }()

	tick := time.NewTicker(cfg.reconcileInterval)
	defer tick.Stop()
	// In a cluster, a write through any gateway reaches this one's dataplane by a
	// pass as soon as etcd reports it.
	var changes <-chan struct{}
	if shared != nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		defer stopWatch()
		changes = shared.Watch(watchCtx) // ends only with watchCtx: the store reloads its copy itself
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if cert == nil {
				log.Info("SIGHUP: no TLS certificate to reload")
			} else if err := cert.Reload(); err != nil {
				log.Error("SIGHUP: certificate not reloaded; serving the one loaded before", "error", err)
			} else {
				log.Info("SIGHUP: certificate reloaded", "certificate", cfg.TLS.CertFile)
			}
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			_ = opsSrv.Shutdown(shutdown)
			log.Info("stopping; the dataplane keeps forwarding")
			return nil
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("serve: %w", err)
		case <-tick.C:
			guard.repair()
			_ = reconcileNow() // logged; the next pass retries
		case <-changes:
			_ = reconcileNow()
		case <-ownership:
			log.Info("cluster members changed", "members", member.Members(), "member", member.Alive())
			_ = reconcileNow()
		}
	}
}

func modelCapacity(c dataplane.Capacities) model.Capacity {
	return model.Capacity{Slots: int(c.Bindings), Sources: int(c.Sources), NatEIPs: int(c.NatEIPs),
		SnatRules: int(c.SnatRules), ForwardPorts: int(c.ForwardPorts), SharedBandwidths: dataplane.MaxSharedBandwidths}
}

// stateStore is what eipd needs of its state: the state file (store.Store) or a
// cluster's etcd (store.Etcd).
type stateStore interface {
	View(func(model.Tx) error) error
	Update(func(model.Tx) error) error
	Close() error
}

// ErrEmptyStateOverLiveDataplane means the state holds no EIP while the pinned
// dataplane carries some: reconciling would remove them all, so eipd refuses unless
// started with --init.
var ErrEmptyStateOverLiveDataplane = errors.New("the state holds no EIP but the pinned dataplane carries some")

// refuseEmptyOverLive stops a start that would reconcile an empty store over a live
// dataplane: a lost, replaced or emptied state file must not unbind every EIP.
func refuseEmptyOverLive(st stateStore, dp *dataplane.Dataplane) error {
	empty := true
	if err := st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindEIP, func(string, []byte) error { empty = false; return nil })
	}); err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	if !empty || !dp.Adopted() {
		return nil
	}
	bindings, err := dp.Bindings()
	if err != nil {
		return err
	}
	cuts, err := dp.CutThroughs()
	if err != nil {
		return err
	}
	nat, err := dp.NatEIPs()
	if err != nil {
		return err
	}
	if n := len(bindings) + len(cuts) + len(nat); n > 0 {
		return fmt.Errorf("%w (%d bindings, %d cut-through and %d NAT gateway EIPs in %s): restore the state file, "+
			"or start with --init to clear them", ErrEmptyStateOverLiveDataplane, len(bindings), len(cuts), len(nat), dp.PinDir())
	}
	return nil
}

// ReconcileAfter runs the pass an API write of action needs before its reply:
// associating or disassociating an EIP changes only pending transitions, which
// ReconcilePending applies (falling back to a full pass when they need more); any
// other write gets a full pass.
func ReconcileAfter(ctx context.Context, rec *reconcile.Reconciler, action string) (reconcile.Result, error) {
	switch action {
	case "AssociateEipAddress", "UnassociateEipAddress":
		return rec.ReconcilePending(ctx)
	}
	return rec.Reconcile(ctx)
}

// The reconciler takes the dataplane as it is: both speak the desired state's types.
var (
	_ reconcile.Dataplane      = (*dataplane.Dataplane)(nil)
	_ reconcile.NatDataplane   = (*dataplane.Dataplane)(nil)
	_ reconcile.BindingBatcher = (*dataplane.Dataplane)(nil)
	_ reconcile.SourceBatcher  = (*dataplane.Dataplane)(nil)
	_ reconcile.Policer        = (*dataplane.Dataplane)(nil)
)
