package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/eipgw/eipgw/control/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Etcd keeps the state in etcd, for a cluster of gateways that share it: every kind's
// entries are keys <prefix>/<kind>/<id>.
//
// Each gateway keeps a mirror of the prefix in memory: loaded at open, then kept
// current by a watch, event by event, so that it always is the store as of one
// revision. Reads, and a write's reads, are served from it without a round trip to
// etcd. A write's reads see the mirror at one revision, its writes are buffered, and
// its commit is one etcd transaction. Each kind has a guard key
// (<prefix>/_meta/rev/<kind>) that every commit writing the kind rewrites; a commit
// succeeds only if none of the kinds it read was written after its snapshot (it
// compares those guards' revisions with the mirror's). A write that loses that race
// changes nothing and fails with model.ErrStoreConflict. A commit returns once the
// mirror holds it, so a gateway reads its own writes. That makes the model's
// transactions mean on etcd what they mean on bbolt: serializable, all or nothing;
// writes that read nothing another writes (a batch of nonces) never conflict.
//
// With etcd out of reach, writes fail with model.ErrStoreUnavailable, and reads are
// served from the mirror as it last was: Stale then says so.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	// timeout bounds each request to etcd: past it, etcd counts as unreachable.
	timeout time.Duration
	cancel  context.CancelFunc
	done    chan struct{}

	mu  sync.RWMutex
	rev int64 // the revision the mirror is the store as of
	kv  map[string]mirrored
	// keys are each range's keys in order, by range prefix ("<prefix>/<kind>/").
	keys map[string][]string
	// caughtUp is signalled (under mu) whenever rev advances.
	caughtUp *sync.Cond
	// stale: the last look at etcd failed, or the mirror is behind it.
	stale bool
	// subscribers of Watch.
	subs []chan struct{}
}

// mirrored is one key's value and the revision that last wrote it.
type mirrored struct {
	value []byte
	mod   int64
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

// etcdPage is how many keys one range read of the load returns.
const etcdPage = 2000

// maxEtcdMessage bounds a request to etcd and a reply from it.
const maxEtcdMessage = 64 << 20

// OpenEtcd connects to etcd, loads the mirror and starts keeping it current.
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
	e := &Etcd{cli: cli, prefix: prefix, timeout: timeout, done: make(chan struct{})}
	e.caughtUp = sync.NewCond(&e.mu)
	if err := e.load(); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd store: %v: %w", cfg.Endpoints, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.follow(ctx)
	return e, nil
}

// Close stops keeping the mirror and disconnects from etcd.
func (e *Etcd) Close() error {
	e.cancel()
	<-e.done
	return e.cli.Close()
}

// Client and Prefix are the connection and the key prefix, for the cluster's
// membership beside the state (control/cluster).
func (e *Etcd) Client() *clientv3.Client { return e.cli }
func (e *Etcd) Prefix() string           { return e.prefix }

func (e *Etcd) guardPrefix() string           { return e.prefix + "/_meta/rev/" }
func (e *Etcd) guardKey(kind string) string   { return e.guardPrefix() + kind }
func (e *Etcd) key(kind, id string) string    { return e.prefix + "/" + kind + "/" + id }
func (e *Etcd) kindPrefix(kind string) string { return e.prefix + "/" + kind + "/" }

// rangeOf is the range prefix a key is in: "<prefix>/<kind>/".
func (e *Etcd) rangeOf(key string) string {
	rest := key[len(e.prefix)+1:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return key[:len(e.prefix)+1+i+1]
	}
	return key
}

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

// load reads the whole prefix at one revision into a new mirror.
func (e *Etcd) load() error {
	kv, keys := map[string]mirrored{}, map[string][]string{}
	from, end := e.prefix+"/", clientv3.GetPrefixRangeEnd(e.prefix+"/")
	var rev int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(etcdPage),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := e.cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return unavailable(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, x := range resp.Kvs {
			k := string(x.Key)
			kv[k] = mirrored{value: x.Value, mod: x.ModRevision}
			r := e.rangeOf(k)
			keys[r] = append(keys[r], k) // in key order already
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	e.mu.Lock()
	e.kv, e.keys, e.rev, e.stale = kv, keys, rev, false
	e.caughtUp.Broadcast()
	e.mu.Unlock()
	return nil
}

// follow applies the watch's events to the mirror in order, loads it again when the
// watch cannot resume where it was (etcd compacted past it), and looks at etcd every
// half timeout to say whether the mirror may be stale.
func (e *Etcd) follow(ctx context.Context) {
	defer close(e.done)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		e.probe(ctx)
	}()
	defer func() { <-probeDone }()
	for ctx.Err() == nil {
		e.mu.RLock()
		from := e.rev + 1
		e.mu.RUnlock()
		watch := e.cli.Watch(clientv3.WithRequireLeader(ctx), e.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(from),
			clientv3.WithProgressNotify())
		for resp := range watch {
			if err := resp.Err(); err != nil {
				break
			}
			e.apply(resp)
		}
		if ctx.Err() != nil {
			return
		}
		e.setStale(true)
		// A watch that ended (compaction, no leader, etcd gone and back): load again
		// when etcd answers, and watch from there.
		for ctx.Err() == nil {
			if e.load() == nil {
				e.notify()
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(e.timeout / 2):
			}
		}
	}
}

// apply applies one watch response's events and advances the mirror's revision.
func (e *Etcd) apply(resp clientv3.WatchResponse) {
	state := false
	e.mu.Lock()
	for _, ev := range resp.Events {
		k := string(ev.Kv.Key)
		r := e.rangeOf(k)
		ks := e.keys[r]
		i := sort.SearchStrings(ks, k)
		present := i < len(ks) && ks[i] == k
		if ev.Type == clientv3.EventTypeDelete {
			delete(e.kv, k)
			if present {
				e.keys[r] = append(ks[:i], ks[i+1:]...)
			}
		} else {
			e.kv[k] = mirrored{value: ev.Kv.Value, mod: ev.Kv.ModRevision}
			if !present {
				ks = append(ks, "")
				copy(ks[i+1:], ks[i:])
				ks[i] = k
				e.keys[r] = ks
			}
		}
		state = state || !strings.HasPrefix(k, e.guardPrefix())
	}
	if resp.Header.Revision > e.rev {
		e.rev = resp.Header.Revision
	}
	e.caughtUp.Broadcast()
	e.mu.Unlock()
	if state {
		e.notify()
	}
}

// probe looks at etcd every half timeout: the mirror is stale when etcd does not
// answer, or is ahead of it.
func (e *Etcd) probe(ctx context.Context) {
	t := time.NewTicker(e.timeout / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, e.timeout)
		resp, err := e.cli.Get(pctx, e.guardPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if err != nil {
			e.setStale(true)
			continue
		}
		// Caught up to what etcd had a moment ago: current.
		e.setStale(!e.waitFor(resp.Header.Revision, e.timeout/2))
	}
}

func (e *Etcd) setStale(v bool) {
	e.mu.Lock()
	e.stale = v
	e.mu.Unlock()
}

// Stale tells whether reads may be behind the cluster's store: etcd did not answer
// the last look, or the mirror has not caught up with it.
func (e *Etcd) Stale() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.stale
}

// waitFor waits until the mirror holds revision rev, up to d: whether it does.
func (e *Etcd) waitFor(rev int64, d time.Duration) bool {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() {
		e.mu.Lock()
		e.caughtUp.Broadcast()
		e.mu.Unlock()
	})
	defer timer.Stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.rev < rev && time.Now().Before(deadline) {
		e.caughtUp.Wait()
	}
	return e.rev >= rev
}

// View runs fn over the mirror as of one revision (stale while etcd is out of reach:
// Stale says so).
func (e *Etcd) View(fn func(model.Tx) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return fn(&etcdTx{e: e, readOnly: true, read: map[string]bool{}})
}

// Update runs fn over the mirror as of one revision and commits its writes at once,
// if no kind it read was written since (model.ErrStoreConflict otherwise: nothing is
// written); it returns once the mirror holds the commit, or, after a conflict, the
// write that won.
func (e *Etcd) Update(fn func(model.Tx) error) error {
	e.mu.RLock()
	tx := &etcdTx{e: e, writes: map[string][]byte{}, deleted: map[string]bool{}, read: map[string]bool{},
		written: map[string]bool{}}
	err := fn(tx)
	guards := map[string]int64{}
	for kind := range tx.read {
		guards[kind] = e.kv[e.guardKey(kind)].mod // 0 when the guard was never written
	}
	e.mu.RUnlock()
	if err != nil {
		return err
	}
	if len(tx.writes) == 0 && len(tx.deleted) == 0 {
		return nil
	}
	var cmps []clientv3.Cmp
	for kind, mod := range guards {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.guardKey(kind)), "=", mod))
	}
	ops := make([]clientv3.Op, 0, len(tx.writes)+len(tx.deleted)+len(tx.written))
	for k, v := range tx.writes {
		ops = append(ops, clientv3.OpPut(k, string(v)))
	}
	for k := range tx.deleted {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for kind := range tx.written {
		ops = append(ops, clientv3.OpPut(e.guardKey(kind), "1"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	resp, err := e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return unavailable(err)
	}
	// Read-your-writes: the next transaction of this gateway sees this one. After a
	// conflict, the mirror first catches up with the write that won (the reply's
	// revision holds it): a retry then reads it, instead of losing the same race on the
	// same stale snapshot until the watch delivers it.
	e.waitFor(resp.Header.Revision, e.timeout)
	if !resp.Succeeded {
		return model.ErrStoreConflict
	}
	return nil
}

// CreateOnce puts an entry only if no gateway has put one under its key, in one etcd
// transaction that compares the key's creation: of gateways racing to create one key,
// exactly one does, and created says whether it was this one. It rewrites no guard: a
// transaction that reads the kind does not conflict with it (the request nonces the
// API claims this way are read only at start and by their pruning).
func (e *Etcd) CreateOnce(kind, id string, v []byte) (created bool, err error) {
	k := e.key(kind, id)
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	resp, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(v))).Commit()
	if err != nil {
		return false, unavailable(err)
	}
	return resp.Succeeded, nil
}

// Watch reports changes to the store by any gateway (this one's own too) until ctx
// ends: one value a burst of changes, never blocking. The guards are not state: their
// changes are not reported.
func (e *Etcd) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	e.mu.Lock()
	e.subs = append(e.subs, ch)
	e.mu.Unlock()
	go func() {
		<-ctx.Done()
		e.mu.Lock()
		for i, s := range e.subs {
			if s == ch {
				e.subs = append(e.subs[:i], e.subs[i+1:]...)
				break
			}
		}
		e.mu.Unlock()
		close(ch)
	}()
	return ch
}

func (e *Etcd) notify() {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, ch := range e.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// etcdTx is one transaction over the mirror (its caller holds the mirror's read
// lock): writes buffered until the commit, and the kinds it read and wrote, for the
// commit's guards.
type etcdTx struct {
	e             *Etcd
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
	if m, ok := t.e.kv[k]; ok {
		return m.value, nil
	}
	return nil, nil
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
// mirror's, merged with this transaction's own writes.
func (t *etcdTx) each(kind, prefix string, fn func(key, value []byte) error) error {
	t.read[kind] = true
	base := t.e.kindPrefix(kind)
	from := base + prefix
	var mine []string
	for k := range t.writes {
		if strings.HasPrefix(k, from) {
			mine = append(mine, k)
		}
	}
	sort.Strings(mine)
	ks := t.e.keys[base]
	i := sort.SearchStrings(ks, from)
	for {
		var k string
		var v []byte
		switch {
		case len(mine) > 0 && (i >= len(ks) || !strings.HasPrefix(ks[i], from) || mine[0] <= ks[i]):
			k, v = mine[0], t.writes[mine[0]]
			if i < len(ks) && ks[i] == k {
				i++ // this transaction's value over the mirror's
			}
			mine = mine[1:]
		case i < len(ks) && strings.HasPrefix(ks[i], from):
			k = ks[i]
			i++
			if t.deleted[k] {
				continue
			}
			v = t.e.kv[k].value
		default:
			return nil
		}
		if err := fn([]byte(k[len(base):]), v); err != nil {
			return err
		}
	}
}
