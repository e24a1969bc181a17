package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/reconcile"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// controlReport is the control plane's figures: eipd's own parts (store, model,
// reconciler, API server, real BPF maps) in one process, without traffic.
type controlReport struct {
	// The API figures are taken with this many associations in the store (and in
	// the maps) already: each write's reply waits for the dataplane to carry it.
	ExistingAssociations int     `json:"existing_associations"`
	APIAssociations      int     `json:"api_associations"`
	APIAssocPerSec       float64 `json:"api_associations_per_second"`
	APIToDataplaneP50Ms  float64 `json:"api_to_dataplane_p50_ms"`
	APIToDataplaneP99Ms  float64 `json:"api_to_dataplane_p99_ms"`
	// Writes a second with ConcurrentClients signed clients at once, each reply
	// meaning the map carries it: the median of ConcurrentRounds rounds of
	// ConcurrentWrites writes each, with the slowest and fastest round.
	ConcurrentClients           int        `json:"concurrent_clients"`
	ConcurrentRounds            int        `json:"concurrent_rounds"`
	ConcurrentWrites            int        `json:"concurrent_writes_per_round"`
	APIWritesPerSecConcurr      float64    `json:"api_writes_per_second_concurrent"`
	APIWritesPerSecConcurrRange [2]float64 `json:"api_writes_per_second_concurrent_range"`
	ReconcilerBindings          int        `json:"reconciler_bindings"`
	ReconcilerPerSec            float64    `json:"reconciler_bindings_per_second"`
	StartReconcileMs            float64    `json:"start_reconcile_ms"`       // adopted maps already match: no change (median of restarts)
	StartReconcileRangeMs       [2]float64 `json:"start_reconcile_range_ms"` // the fastest and slowest of those restarts
	StartReconcileFullMs        float64    `json:"start_reconcile_full_ms"`  // empty maps: every binding applied
	// Opening the dataplane over the pinned maps of a running gateway (a restart of
	// eipd, before its first reconcile): the owner's copies are read from the maps.
	StartOpenMs float64 `json:"start_open_ms"`
	// Opening the state file of ReconcilerBindings associations as a new eipd does:
	// the file checked and the EIP indexes rebuilt from its records (the starts below
	// run on the store so opened).
	StartStoreOpenMs float64 `json:"start_store_open_ms"`
	// Verifying and loading the four NAT programs (both roles, XDP and TC) after that
	// open: they load on first use, when Attach needs them.
	StartProgramsMs float64 `json:"start_programs_ms"`
	// Deleting a forward entry of ForwardDeletePorts ports while ForwardDeleteSessions
	// sessions through it are live (dataplane's BenchmarkForwardDelete).
	ForwardDeletePorts    int     `json:"forward_delete_ports,omitempty"`
	ForwardDeleteSessions int     `json:"forward_delete_sessions,omitempty"`
	ForwardDeleteMs       float64 `json:"forward_delete_ms,omitempty"`
	// The eipd binary started over EipdStart.Associations associations.
	EipdStart *eipdStart `json:"eipd_start,omitempty"`
}

// forwardDeleteLine is BenchmarkForwardDelete's result line.
var forwardDeleteLine = regexp.MustCompile(`^BenchmarkForwardDelete-\d+\s+\d+\s+\d+ ns/op\s+([0-9.]+) ms/delete\s+([0-9]+) ports\s+([0-9]+) sessions`)

// measureForwardDelete runs the dataplane's BenchmarkForwardDelete (a developer
// reproduces it with go test -bench) into rep.
func measureForwardDelete(moduleDir string, rep *controlReport) error {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^BenchmarkForwardDelete$", "-benchtime", "1x", "./dataplane")
	cmd.Dir = moduleDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("forward delete benchmark: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := forwardDeleteLine.FindStringSubmatch(line); m != nil {
			rep.ForwardDeleteMs, _ = strconv.ParseFloat(m[1], 64)
			rep.ForwardDeletePorts, _ = strconv.Atoi(m[2])
			rep.ForwardDeleteSessions, _ = strconv.Atoi(m[3])
			return nil
		}
	}
	return fmt.Errorf("forward delete benchmark printed no result:\n%s", out)
}

// agent is the control plane under measurement.
type agent struct {
	st  *store.Store
	dp  *dataplane.Dataplane
	rec *reconcile.Reconciler
	svc *model.Service
	fs  *testbed.BPFFS
	dir string
}

// The pool is RFC 2544's benchmarking range: these addresses only ever sit in maps.
var benchPool = netip.MustParsePrefix("198.18.0.0/15")

func newAgent() (*agent, error) {
	a := &agent{svc: &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{benchPool}}}
	var err error
	if a.dir, err = os.MkdirTemp("", "eipgw-bench-control-"); err != nil {
		return nil, err
	}
	if a.st, err = store.Open(filepath.Join(a.dir, "state.db"), true); err != nil {
		return nil, err
	}
	if a.fs, err = testbed.MountBPFFS(); err != nil {
		return nil, err
	}
	if a.dp, err = dataplane.Open(dataplane.Config{PinDir: filepath.Join(a.fs.Dir, "eipgw")}); err != nil {
		return nil, err
	}
	// As eipd makes it: NAT gateways carried too.
	a.rec = &reconcile.Reconciler{Store: a.st, Dataplane: a.dp, Nat: a.dp}
	return a, nil
}

func (a *agent) close() {
	if a.dp != nil {
		a.dp.Close()
	}
	if a.fs != nil {
		a.fs.Close()
	}
	if a.st != nil {
		a.st.Close()
	}
	os.RemoveAll(a.dir)
}

// seed registers n instances and allocates n EIPs, and returns their IDs; the first
// `associated` EIPs are associated with their instances too.
func (a *agent) seed(n, associated int) (instances, eips []string, err error) {
	return seedStore(a.st, a.svc, n, associated, false)
}

// seedStore registers n instances and allocates n EIPs from svc's first pool, each
// address named (picking a free one walks the pool), and associates the first
// `associated`; with settle they are InUse, as a running gateway leaves them. It
// commits every seedChunk instances: bbolt splits a node only at commit, so one
// transaction of 100,000 inserts spends minutes moving a node's keys on each insert.
func seedStore(st storeUpdater, svc *model.Service, n, associated int, settle bool) (instances, eips []string, err error) {
	const seedChunk = 2000
	priv := netip.MustParseAddr("10.1.0.1")
	pub := svc.Pool[0].Addr().Next()
	for first := 0; first < n; first += seedChunk {
		err = st.Update(func(tx model.Tx) error {
			for i := first; i < min(n, first+seedChunk); i++ {
				id := fmt.Sprintf("i-%08d", i)
				if _, err := svc.Do(tx, "admin", "RegisterInstance", model.Params{"InstanceId": id, "VpcId": "v", "PrivateIpAddress": priv.String(),
					"MacAddress": fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", i>>24&0xff, i>>16&0xff, i>>8&0xff, i&0xff)}, time.Now()); err != nil {
					return err
				}
				priv = priv.Next()
				resp, err := svc.Do(tx, "bench", "AllocateEipAddress", model.Params{"IpAddress": pub.String()}, time.Now())
				pub = pub.Next()
				if err != nil {
					return err
				}
				eips = append(eips, jsonString(resp, "AllocationId"))
				instances = append(instances, id)
				if i < associated {
					if _, err := svc.Do(tx, "bench", "AssociateEipAddress", model.Params{"AllocationId": eips[i], "InstanceId": id}, time.Now()); err != nil {
						return err
					}
				}
			}
			if !settle {
				return nil
			}
			pending, err := model.Pending(tx)
			if err != nil {
				return err
			}
			_, err = model.Settle(tx, pending)
			return err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("seed %d instances: %w", n, err)
		}
	}
	return instances, eips, nil
}

func jsonString(resp any, field string) string {
	m, _ := withFields(resp)
	s, _ := m[field].(string)
	return s
}

func percentile(xs []time.Duration, q float64) float64 {
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}

// measureControl runs the control-plane measurements.
func measureControl(apiN, concurrentN, existing, bigN int) (*controlReport, error) {
	const clients = 32
	rep := &controlReport{ExistingAssociations: existing, APIAssociations: apiN, ConcurrentClients: clients,
		ConcurrentRounds: concurrentRounds, ConcurrentWrites: concurrentN, ReconcilerBindings: bigN}

	// Through the API: a signed request each, the store write and the reconcile
	// pass that puts the binding in the map, as eipd does before replying; with
	// `existing` associations in the store and the maps already.
	a, err := newAgent()
	if err != nil {
		return nil, err
	}
	instances, eips, err := a.seed(existing+apiN+concurrentRounds*concurrentN, existing)
	if err != nil {
		a.close()
		return nil, err
	}
	if _, err := a.rec.Reconcile(context.Background()); err != nil {
		a.close()
		return nil, err
	}
	instances, eips = instances[existing:], eips[existing:]
	srv := httptest.NewServer(&api.Server{
		Verifier: &api.Verifier{Secrets: benchSecrets{}, Window: time.Minute, MaxNonces: 1 << 20, Now: time.Now},
		Model:    a.svc, Store: &reconcile.Committer{Reconciler: a.rec}, Now: time.Now,
		AfterWrite: func(action string) error {
			_, err := eipd.ReconcileAfter(context.Background(), a.rec, action)
			return err
		},
	})
	client := &api.Client{Endpoint: srv.URL, AccessKeyID: "bench", AccessSecret: benchSecret}
	lat := make([]time.Duration, 0, apiN)
	start := time.Now()
	for i := 0; i < apiN; i++ {
		t0 := time.Now()
		if _, err := client.Call("AssociateEipAddress", map[string]string{"AllocationId": eips[i], "InstanceId": instances[i]}); err != nil {
			srv.Close()
			a.close()
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	rep.APIAssocPerSec = float64(apiN) / time.Since(start).Seconds()
	// Then rounds of the rest from 32 clients at once. One round's rate on this
	// 2-core machine moves by a fifth from the next (the disk's syncs, a garbage
	// collection): the figure is the median round's.
	var rates []float64
	for round := range concurrentRounds {
		first := apiN + round*concurrentN
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		start = time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &api.Client{Endpoint: srv.URL, AccessKeyID: "bench", AccessSecret: benchSecret}
				for i := first + c; i < first+concurrentN; i += clients {
					if _, err := client.Call("AssociateEipAddress", map[string]string{"AllocationId": eips[i], "InstanceId": instances[i]}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		rates = append(rates, float64(concurrentN)/time.Since(start).Seconds())
		close(errs)
		if err := <-errs; err != nil {
			srv.Close()
			a.close()
			return nil, fmt.Errorf("concurrent associations: %w", err)
		}
	}
	srv.Close()
	slices.Sort(rates)
	rep.APIWritesPerSecConcurr = rates[len(rates)/2]
	rep.APIWritesPerSecConcurrRange = [2]float64{rates[0], rates[len(rates)-1]}
	want := existing + apiN + concurrentRounds*concurrentN
	if bs, err := a.dp.Bindings(); err != nil || len(bs) != want {
		a.close()
		return nil, fmt.Errorf("after %d associations the dataplane holds %d bindings (%v)", want, len(bs), err)
	}
	rep.APIToDataplaneP50Ms, rep.APIToDataplaneP99Ms = percentile(lat, 0.5), percentile(lat, 0.99)
	a.close()

	// Start-up with bigN associations, settled in the store as a running gateway
	// leaves them: each start is a new process, so a new Reconciler with nothing
	// cached. First into empty maps (a new pin directory: a reboot), then adopting
	// the maps that start filled (a restart of eipd).
	if a, err = newAgent(); err != nil {
		return nil, err
	}
	defer a.close()
	if _, _, err := a.seed(bigN, bigN); err != nil {
		return nil, err
	}
	if _, err := a.rec.Reconcile(context.Background()); err != nil {
		return nil, err
	}
	a.dp.Close()
	// A new process opens the state file: its indexes are rebuilt from the records.
	if err := a.st.Close(); err != nil {
		return nil, err
	}
	runtime.GC()
	t0 := time.Now()
	if a.st, err = store.Open(filepath.Join(a.dir, "state.db"), false); err != nil {
		return nil, err
	}
	rep.StartStoreOpenMs = float64(time.Since(t0).Microseconds()) / 1000
	pins := filepath.Join(a.fs.Dir, "eipgw-started")
	if a.dp, err = dataplane.Open(dataplane.Config{PinDir: pins}); err != nil {
		return nil, err
	}
	// A new process starts with a small heap: the seeding's garbage is collected
	// first, so its collection does not land in the measured start.
	runtime.GC()
	t0 = time.Now()
	res, err := (&reconcile.Reconciler{Store: a.st, Dataplane: a.dp, Nat: a.dp}).Reconcile(context.Background())
	if err != nil {
		return nil, err
	}
	full := time.Since(t0)
	// Each association is a binding and its instance's source (address and MAC).
	if res.Added != 2*bigN {
		return nil, fmt.Errorf("starting with %d associations added %d bindings and sources, want %d", bigN, res.Added, 2*bigN)
	}
	rep.ReconcilerPerSec = float64(bigN) / full.Seconds()
	rep.StartReconcileFullMs = float64(full.Microseconds()) / 1000
	// Then restarts over the maps that start filled: each a new dataplane opened on the
	// pins, its programs loaded, a new Reconciler. One restart on this 2-core machine
	// varies by a third from the next (a garbage collection lands in it or not), so
	// the figures are the median of startRestarts.
	var opens, programs, passes []time.Duration
	for range startRestarts {
		a.dp.Close()
		runtime.GC()
		t0 = time.Now()
		if a.dp, err = dataplane.Open(dataplane.Config{PinDir: pins}); err != nil {
			return nil, err
		}
		opens = append(opens, time.Since(t0))
		t0 = time.Now()
		if _, err := a.dp.ProgramStats(); err != nil { // loads the four NAT programs
			return nil, err
		}
		programs = append(programs, time.Since(t0))
		runtime.GC()
		t0 = time.Now()
		if res, err = (&reconcile.Reconciler{Store: a.st, Dataplane: a.dp, Nat: a.dp}).Reconcile(context.Background()); err != nil || res.Changed() {
			return nil, fmt.Errorf("restart over %d: %v, %v", bigN, res, err)
		}
		passes = append(passes, time.Since(t0))
	}
	rep.StartOpenMs, rep.StartProgramsMs = percentile(opens, 0.5), percentile(programs, 0.5)
	rep.StartReconcileMs = percentile(passes, 0.5)
	rep.StartReconcileRangeMs = [2]float64{percentile(passes, 0), percentile(passes, 1)}
	return rep, nil
}

// startRestarts is how many restarts over matching maps are measured.
const startRestarts = 5

// concurrentRounds is how many rounds of concurrent writes are measured.
const concurrentRounds = 3

const benchSecret = "bench-secret-0123456789"

type benchSecrets struct{}

func (benchSecrets) Secret(id string) (string, bool) { return benchSecret, id == "bench" }

// withFields turns a model response into a field map.
func withFields(resp any) (map[string]any, error) {
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	return m, json.Unmarshal(raw, &m)
}
