package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/reconcile"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// clusterReport is API write latency with the state in etcd beside the state file,
// over the same existing associations, and how long a write through one gateway takes
// to reach another gateway's dataplane (issue 19).
type clusterReport struct {
	// Unavailable says why it was not measured (no etcd here).
	Unavailable          string  `json:"unavailable,omitempty"`
	ExistingAssociations int     `json:"existing_associations"`
	Writes               int     `json:"writes"`
	BoltP50Ms            float64 `json:"bbolt_api_to_dataplane_p50_ms"`
	BoltP99Ms            float64 `json:"bbolt_api_to_dataplane_p99_ms"`
	EtcdP50Ms            float64 `json:"etcd_api_to_dataplane_p50_ms"`
	EtcdP99Ms            float64 `json:"etcd_api_to_dataplane_p99_ms"`
	PropagationP50Ms     float64 `json:"propagation_p50_ms"`
	PropagationP99Ms     float64 `json:"propagation_p99_ms"`
}

// storeUpdater is what seeding needs of a store.
type storeUpdater interface {
	Update(func(model.Tx) error) error
}

// measureCluster associates `writes` EIPs through a signed API over `existing`
// associations, once with the state file and once with etcd (a real one, in a
// namespace), the second time with a second gateway (its own reconciler and
// dataplane on the same etcd, watching it) whose dataplane is polled for each write.
func measureCluster(existing, writes int) (*clusterReport, error) {
	rep := &clusterReport{ExistingAssociations: existing, Writes: writes}
	if _, err := exec.LookPath(testbed.EtcdBinary); err != nil {
		rep.Unavailable = "etcd is not installed (Debian's etcd-server; scripts/deps.sh installs it)"
		return rep, nil
	}
	a, err := newAgent()
	if err != nil {
		return nil, err
	}
	lat, _, err := clusterWrites(a.st, a.svc, a.rec, nil, existing, writes)
	a.close()
	if err != nil {
		return nil, fmt.Errorf("with the state file: %w", err)
	}
	rep.BoltP50Ms, rep.BoltP99Ms = percentile(lat, 0.5), percentile(lat, 0.99)

	host, err := testbed.NewHost("bench-etcd")
	if err != nil {
		return nil, err
	}
	defer host.Close()
	dir, err := os.MkdirTemp("", "eipgw-bench-etcd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := testbed.StartEtcd(host, "127.0.0.1:2379", dir)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	open := func() (*store.Etcd, error) {
		return store.OpenEtcd(store.EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/bench",
			Dial: func(ctx context.Context, addr string) (net.Conn, error) { return host.Dial("tcp", addr, time.Second) }})
	}
	fs, err := testbed.MountBPFFS()
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	var gws [2]struct {
		st  *store.Etcd
		dp  *dataplane.Dataplane
		rec *reconcile.Reconciler
	}
	for i := range gws {
		if gws[i].st, err = open(); err != nil {
			return nil, err
		}
		defer gws[i].st.Close()
		if gws[i].dp, err = dataplane.Open(dataplane.Config{PinDir: filepath.Join(fs.Dir, fmt.Sprintf("gw%d", i))}); err != nil {
			return nil, err
		}
		defer func() { gws[i].dp.Close(); _ = dataplane.Remove(gws[i].dp.PinDir()) }()
		gws[i].rec = &reconcile.Reconciler{Store: gws[i].st, Dataplane: gws[i].dp, Nat: gws[i].dp}
	}
	svc := &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{benchPool}}
	// The second gateway reconciles on every change it is told of, as eipd does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follower := gws[1]
	watching := make(chan struct{})
	go func() {
		changes := follower.st.Watch(ctx)
		close(watching)
		for range changes {
			_, _ = follower.rec.Reconcile(ctx)
		}
	}()
	<-watching
	lat, prop, err := clusterWrites(gws[0].st, svc, gws[0].rec, follower.dp, existing, writes)
	if err != nil {
		return nil, fmt.Errorf("with etcd: %w", err)
	}
	rep.EtcdP50Ms, rep.EtcdP99Ms = percentile(lat, 0.5), percentile(lat, 0.99)
	rep.PropagationP50Ms, rep.PropagationP99Ms = percentile(prop, 0.5), percentile(prop, 0.99)
	return rep, nil
}

// clusterWrites seeds `existing` associations into st, reconciles them, then makes
// `writes` associations through a signed API whose writes go through rec: the API
// latency of each, and with other set, how long until other's dataplane binds it.
func clusterWrites(st storeUpdater, svc *model.Service, rec *reconcile.Reconciler, other *dataplane.Dataplane,
	existing, writes int) (lat, prop []time.Duration, err error) {
	instances, eips, err := seedStore(st, svc, existing+writes, existing, false)
	if err != nil {
		return nil, nil, err
	}
	if _, err := rec.Reconcile(context.Background()); err != nil {
		return nil, nil, err
	}
	srv := httptest.NewServer(&api.Server{
		Verifier: &api.Verifier{Secrets: benchSecrets{}, Window: time.Minute, MaxNonces: 1 << 20, Now: time.Now},
		Model:    svc, Store: &reconcile.Committer{Reconciler: rec}, Now: time.Now,
		AfterWrite: func(action string) error {
			_, err := eipd.ReconcileAfter(context.Background(), rec, action)
			return err
		},
	})
	defer srv.Close()
	client := &api.Client{Endpoint: srv.URL, AccessKeyID: "bench", AccessSecret: benchSecret}
	for i := existing; i < existing+writes; i++ {
		t0 := time.Now()
		if _, err := client.Call("AssociateEipAddress", map[string]string{"AllocationId": eips[i], "InstanceId": instances[i]}); err != nil {
			return nil, nil, err
		}
		lat = append(lat, time.Since(t0))
		if other == nil {
			continue
		}
		ip := seededEIP(svc, i)
		for deadline := t0.Add(10 * time.Second); ; {
			if bound, err := binds(other, ip); err != nil {
				return nil, nil, err
			} else if bound {
				break
			}
			if time.Now().After(deadline) {
				return nil, nil, errors.New("the second gateway did not carry a write within 10 s")
			}
			time.Sleep(200 * time.Microsecond)
		}
		prop = append(prop, time.Since(t0))
	}
	return lat, prop, nil
}

// seededEIP is the address seedStore gave the i-th EIP.
func seededEIP(svc *model.Service, i int) netip.Addr {
	a := svc.Pool[0].Addr().Next()
	for ; i > 0; i-- {
		a = a.Next()
	}
	return a
}

// binds tells whether dp binds eip.
func binds(dp *dataplane.Dataplane, eip netip.Addr) (bool, error) {
	bs, err := dp.Bindings()
	if err != nil {
		return false, err
	}
	for _, b := range bs {
		if b.EIP == eip {
			return true, nil
		}
	}
	return false, nil
}
