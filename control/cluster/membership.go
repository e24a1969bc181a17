// Package cluster is a gateway's membership in a cluster that shares its state in
// etcd, and what membership decides: which gateway owns each NAT gateway (its EIPs,
// SNAT rules, forward entries and sessions). 1:1 EIPs are stateless and every member
// carries them.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is this gateway in the cluster: it holds an etcd lease under
// <prefix>/_members/<name> while it runs, and knows the other live members from the
// same keys. When its lease is lost (etcd unreachable past the lease's TTL, or the
// process stopped), the others own its NAT gateways; it owns none until it joins again.
type Member struct {
	cli    *clientv3.Client
	prefix string
	name   string
	ttl    time.Duration

	mu      sync.Mutex
	members []string // live members, sorted; this one included while its lease holds
	alive   bool
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	lease   clientv3.LeaseID
}

// Join makes name a member under prefix, with a lease of ttl (at least 2 s, etcd's
// minimum), and keeps it one until ctx ends or Leave.
func Join(ctx context.Context, cli *clientv3.Client, prefix, name string, ttl time.Duration) (*Member, error) {
	if name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("cluster: member name %q: want a non-empty name without '/'", name)
	}
	if ttl < 2*time.Second {
		ttl = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Member{cli: cli, prefix: strings.TrimSuffix(prefix, "/"), name: name, ttl: ttl, changed: make(chan struct{}, 1),
		cancel: cancel, done: make(chan struct{})}
	if err := m.register(ctx); err != nil {
		cancel()
		return nil, err
	}
	go m.run(ctx)
	return m, nil
}

func (m *Member) membersPrefix() string { return m.prefix + "/_members/" }

// register grants a lease, puts this member's key on it and reads the members.
func (m *Member) register(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, m.ttl)
	defer cancel()
	lease, err := m.cli.Grant(rctx, int64((m.ttl+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: lease: %w", err)
	}
	if _, err := m.cli.Put(rctx, m.membersPrefix()+m.name, m.name, clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("cluster: register %s: %w", m.name, err)
	}
	resp, err := m.cli.Get(rctx, m.membersPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("cluster: members: %w", err)
	}
	var names []string
	for _, kv := range resp.Kvs {
		names = append(names, string(kv.Key[len(m.membersPrefix()):]))
	}
	m.mu.Lock()
	m.lease, m.alive = lease.ID, true
	m.mu.Unlock()
	m.setMembers(names)
	return nil
}

// run keeps the lease alive and the member list current; a lost lease makes this
// member own nothing until it registers again (tried every second).
func (m *Member) run(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		m.mu.Lock()
		lease := m.lease
		m.mu.Unlock()
		keep, err := m.cli.KeepAlive(ctx, lease)
		if err == nil {
			wctx, stopWatch := context.WithCancel(ctx)
			watch := m.cli.Watch(clientv3.WithRequireLeader(wctx), m.membersPrefix(), clientv3.WithPrefix(),
				clientv3.WithPrevKV())
			m.follow(ctx, keep, watch)
			stopWatch()
		}
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.alive = false
		m.mu.Unlock()
		m.notify()
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if m.register(ctx) == nil {
				m.notify()
				break
			}
		}
	}
}

// follow applies the member watch's events until the lease's keep-alive or the watch
// ends.
func (m *Member) follow(ctx context.Context, keep <-chan *clientv3.LeaseKeepAliveResponse, watch clientv3.WatchChan) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-keep:
			if !ok {
				return // the lease is gone or etcd unreachable past its TTL
			}
		case resp, ok := <-watch:
			if !ok || resp.Err() != nil {
				return
			}
			m.mu.Lock()
			names := append([]string(nil), m.members...)
			m.mu.Unlock()
			for _, ev := range resp.Events {
				name := string(ev.Kv.Key[len(m.membersPrefix()):])
				names = remove(names, name)
				if ev.Type == clientv3.EventTypePut {
					names = append(names, name)
				}
			}
			m.setMembers(names)
		}
	}
}

func remove(names []string, name string) []string {
	out := names[:0]
	for _, n := range names {
		if n != name {
			out = append(out, n)
		}
	}
	return out
}

func (m *Member) setMembers(names []string) {
	sort.Strings(names)
	m.mu.Lock()
	same := strings.Join(names, "\x00") == strings.Join(m.members, "\x00")
	m.members = names
	m.mu.Unlock()
	if !same {
		m.notify()
	}
}

func (m *Member) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Changes reports a change of the members or of this member's lease: ownership may
// have moved.
func (m *Member) Changes() <-chan struct{} { return m.changed }

// Members lists the live members, sorted.
func (m *Member) Members() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.members...)
}

// Alive tells whether this member holds its lease.
func (m *Member) Alive() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive
}

// Owner is the member that owns id (a NAT gateway): the live member with the highest
// hash of (member, id), so that a member leaving moves only what it owned.
func Owner(members []string, id string) string {
	var best string
	var bestHash uint64
	for _, name := range members {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(id))
		if v := mix64(h.Sum64()); best == "" || v > bestHash {
			best, bestHash = name, v
		}
	}
	return best
}

// mix64 is splitmix64's finalizer: FNV alone leaves names that differ in one
// character (gw1, gw2) with correlated high bits, and one member would win most.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Owns tells whether this member owns id now: it holds its lease and is id's owner
// among the live members.
func (m *Member) Owns(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alive && Owner(m.members, id) == m.name
}

// Leave revokes the lease (the others own this member's NAT gateways at once) and
// stops.
func (m *Member) Leave() error {
	m.cancel()
	<-m.done
	m.mu.Lock()
	lease := m.lease
	m.alive = false
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.ttl)
	defer cancel()
	if _, err := m.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}
