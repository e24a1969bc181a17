package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eipgw/eipgw/control/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Etcd keeps the state in etcd, for a cluster of gateways that share it: every kind's
// entries are keys <prefix>/<kind>/<id>. A write is a transaction over a snapshot: its
// reads see the store at one revision, its writes are buffered, and its commit is one
// etcd transaction. Each kind has a guard key (<prefix>/_meta/rev/<kind>) that every
// commit writing the kind rewrites; a commit succeeds only if no kind it read was
// written since its snapshot (it compares those guards). A write that loses that race
// changes nothing and fails with model.ErrStoreConflict; with etcd unreachable, every
// read and write fails with model.ErrStoreUnavailable. That makes the model's
// transactions mean on etcd what they mean on bbolt: serializable, all or nothing;
// writes that read nothing another writes (a batch of nonces) never conflict.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	// timeout bounds each request to etcd: past it, etcd counts as unreachable.
	timeout time.Duration
}

// EtcdConfig says where the cluster's etcd is.
type EtcdConfig struct {
	Endpoints []string
	Prefix    string // "/eipgw" when empty
	TLS       *tls.Config
	// Timeout bounds a dial and each request (2 s when zero).
	Timeout time.Duration
	// Dial, when set, opens the connections (a test's client dials from inside a
	// network namespace).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// etcdPage is how many keys one range read returns.
const etcdPage = 2000

// maxEtcdMessage bounds a request to etcd and a reply from it.
const maxEtcdMessage = 64 << 20

// OpenEtcd connects to etcd and checks that it answers.
func OpenEtcd(cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd store: no endpoints")
	}
	prefix := strings.TrimSuffix(cfg.Prefix, "/")
	if prefix == "" {
		prefix = "/eipgw"
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	conf := clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: timeout, TLS: cfg.TLS,
		DialKeepAliveTime: timeout, DialKeepAliveTimeout: timeout,
		// A pass that settles many associations, or the sources snapshot, is one large
		// transaction: the client lets it through and etcd's --max-request-bytes
		// decides (docs/cluster.md).
		MaxCallSendMsgSize: maxEtcdMessage, MaxCallRecvMsgSize: maxEtcdMessage}
	if cfg.Dial != nil {
		conf.DialOptions = []grpc.DialOption{grpc.WithContextDialer(cfg.Dial)}
	}
	cli, err := clientv3.New(conf)
	if err != nil {
		return nil, fmt.Errorf("etcd store: %w", err)
	}
	e := &Etcd{cli: cli, prefix: prefix, timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := cli.Get(ctx, e.guardPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd store: %v: %w", cfg.Endpoints, err)
	}
	return e, nil
}

// Close disconnects from etcd.
func (e *Etcd) Close() error { return e.cli.Close() }

// Client and Prefix are the connection and the key prefix, for the cluster's
// membership beside the state (control/cluster).
func (e *Etcd) Client() *clientv3.Client { return e.cli }
func (e *Etcd) Prefix() string           { return e.prefix }

func (e *Etcd) guardPrefix() string           { return e.prefix + "/_meta/rev/" }
func (e *Etcd) guardKey(kind string) string   { return e.guardPrefix() + kind }
func (e *Etcd) key(kind, id string) string    { return e.prefix + "/" + kind + "/" + id }
func (e *Etcd) kindPrefix(kind string) string { return e.prefix + "/" + kind + "/" }

// unavailable turns a failed request into the API's error, keeping the cause: etcd
// out of reach (or too slow to answer) is ErrStoreUnavailable; anything else (a
// request etcd refuses, such as one over its size limit) is an error of its own.
func unavailable(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w (%v)", model.ErrStoreUnavailable, err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (%v)", model.ErrStoreUnavailable, err)
	}
	return fmt.Errorf("etcd store: %w", err)
}

// snapshot reads the revision a transaction reads at, and each kind's guard as of it.
func (e *Etcd) snapshot() (rev int64, guards map[string]int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.guardPrefix(), clientv3.WithPrefix())
	if err != nil {
		return 0, nil, unavailable(err)
	}
	guards = map[string]int64{}
	for _, kv := range resp.Kvs {
		guards[string(kv.Key[len(e.guardPrefix()):])] = kv.ModRevision
	}
	return resp.Header.Revision, guards, nil
}

// View runs fn over a snapshot of the store.
func (e *Etcd) View(fn func(model.Tx) error) error {
	rev, _, err := e.snapshot()
	if err != nil {
		return err
	}
	return fn(&etcdTx{e: e, rev: rev, readOnly: true, read: map[string]bool{}})
}

// Update runs fn over a snapshot and commits its writes at once, if no kind it read
// was written meanwhile (model.ErrStoreConflict otherwise: nothing is written).
func (e *Etcd) Update(fn func(model.Tx) error) error {
	rev, guards, err := e.snapshot()
	if err != nil {
		return err
	}
	tx := &etcdTx{e: e, rev: rev, writes: map[string][]byte{}, deleted: map[string]bool{}, read: map[string]bool{},
		written: map[string]bool{}}
	if err := fn(tx); err != nil {
		return err
	}
	if len(tx.writes) == 0 && len(tx.deleted) == 0 {
		return nil
	}
	var cmps []clientv3.Cmp
	for kind := range tx.read {
		// A guard that did not exist has ModRevision 0, and so compares equal to
		// the absent entry of guards.
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.guardKey(kind)), "=", guards[kind]))
	}
	ops := make([]clientv3.Op, 0, len(tx.writes)+len(tx.deleted)+len(tx.written))
	for k, v := range tx.writes {
		ops = append(ops, clientv3.OpPut(k, string(v)))
	}
	for k := range tx.deleted {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for kind := range tx.written {
		ops = append(ops, clientv3.OpPut(e.guardKey(kind), strconv.FormatInt(rev, 10)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	resp, err := e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return unavailable(err)
	}
	if !resp.Succeeded {
		return model.ErrStoreConflict
	}
	return nil
}

// Watch reports changes to the store by any gateway (this one's own too) until ctx
// ends: one value a burst of changes, never blocking the watch. The guards are not
// state: their changes are not reported. The channel closes
// when the watch ends; a caller that still wants changes watches again.
func (e *Etcd) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for resp := range e.cli.Watch(clientv3.WithRequireLeader(ctx), e.prefix+"/", clientv3.WithPrefix()) {
			if resp.Err() != nil {
				return
			}
			state := false
			for _, ev := range resp.Events {
				state = state || !strings.HasPrefix(string(ev.Kv.Key), e.guardPrefix())
			}
			if !state {
				continue
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// etcdTx is one transaction: reads at rev, writes buffered until the commit, and the
// kinds it read and wrote, for the commit's guards.
type etcdTx struct {
	e             *Etcd
	rev           int64
	readOnly      bool
	writes        map[string][]byte
	deleted       map[string]bool
	read, written map[string]bool
}

func (t *etcdTx) Get(kind, id string) ([]byte, error) {
	t.read[kind] = true
	k := t.e.key(kind, id)
	if v, ok := t.writes[k]; ok {
		return v, nil
	}
	if t.deleted[k] {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.e.timeout)
	defer cancel()
	resp, err := t.e.cli.Get(ctx, k, clientv3.WithRev(t.rev))
	if err != nil {
		return nil, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

func (t *etcdTx) Put(kind, id string, v []byte) error {
	if t.readOnly {
		return errors.New("etcd store: a write in a read-only transaction")
	}
	k := t.e.key(kind, id)
	delete(t.deleted, k)
	t.writes[k] = bytes.Clone(v)
	t.written[kind] = true
	return nil
}

func (t *etcdTx) Delete(kind, id string) error {
	if t.readOnly {
		return errors.New("etcd store: a write in a read-only transaction")
	}
	k := t.e.key(kind, id)
	delete(t.writes, k)
	t.deleted[k] = true
	t.written[kind] = true
	return nil
}

func (t *etcdTx) ForEach(kind string, fn func(string, []byte) error) error {
	return t.ForEachPrefix(kind, "", fn)
}

func (t *etcdTx) ForEachRaw(kind string, fn func(key, value []byte) error) error {
	return t.each(kind, "", fn)
}

func (t *etcdTx) ForEachPrefix(kind, prefix string, fn func(string, []byte) error) error {
	return t.each(kind, prefix, func(k, v []byte) error { return fn(string(k), v) })
}

// each visits, in key order, the kind's entries whose ID starts with prefix: the
// snapshot's, read a page at a time, merged with this transaction's own writes.
func (t *etcdTx) each(kind, prefix string, fn func(key, value []byte) error) error {
	t.read[kind] = true
	base := t.e.kindPrefix(kind)
	from := base + prefix
	end := clientv3.GetPrefixRangeEnd(from)
	// This transaction's writes in the range, in key order.
	var mine []string
	for k := range t.writes {
		if strings.HasPrefix(k, from) {
			mine = append(mine, k)
		}
	}
	sort.Strings(mine)
	emitMine := func(upTo string, inclusive bool) error {
		for len(mine) > 0 && (mine[0] < upTo || (inclusive && mine[0] == upTo) || upTo == "") {
			k := mine[0]
			mine = mine[1:]
			if err := fn([]byte(k[len(base):]), t.writes[k]); err != nil {
				return err
			}
		}
		return nil
	}
	key := from
	for {
		ctx, cancel := context.WithTimeout(context.Background(), t.e.timeout)
		resp, err := t.e.cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(t.rev), clientv3.WithLimit(etcdPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		cancel()
		if err != nil {
			return unavailable(err)
		}
		for _, kv := range resp.Kvs {
			k := string(kv.Key)
			// Writes of this transaction before this key, and over it.
			if err := emitMine(k, false); err != nil {
				return err
			}
			if len(mine) > 0 && mine[0] == k {
				continue // emitted with the next key, or at the end
			}
			if t.deleted[k] {
				continue
			}
			if err := fn(kv.Key[len(base):], kv.Value); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return emitMine("", true)
}
