package api

import (
	"context"
	"fmt"
	"time"

	"github.com/eipgw/eipgw/control/model"
)

// Used SignatureNonces outlive the process: a captured request replayed after a
// restart is refused like one replayed before it. A write's nonce is stored in the
// write's own transaction, so a committed write is never without its nonce; a read's
// is journaled in the background, in batches (a read replayed after a crash within
// the batch interval returns what the attacker already saw, and changes nothing).

// usedNonce is one nonce to remember: its key and until when.
type usedNonce struct {
	key   string
	until time.Time
}

// nonceExpiryLayout is the stored key's expiry prefix: fixed width, so keys sort as
// their expiries do.
const nonceExpiryLayout = "20060102T150405.000000000Z"

// nonceRecordKey is where n is stored: its expiry, a space, then its key. Requests are
// signed within seconds of each other, so the nonces one commit stores sort together
// at the end of the bucket and share a page or two. Keyed by the nonce alone, each
// went to a page of its own, and at 32 concurrent writers that was more than a third
// of the pages a commit wrote, each one written and synced.
func nonceRecordKey(n usedNonce) string {
	return n.until.UTC().Format(nonceExpiryLayout) + " " + n.key
}

// nonceOfRecordKey is the nonce key a stored key holds. Files written before the
// expiry prefix store the nonce key alone; such a key has no valid prefix (an access
// key ID and the NUL after it).
func nonceOfRecordKey(k string) string {
	n := len(nonceExpiryLayout)
	if len(k) > n && k[n] == ' ' {
		if _, err := time.Parse(nonceExpiryLayout, k[:n]); err == nil {
			return k[n+1:]
		}
	}
	return k
}

// nonceRecordValue is what n's record holds: when it may be forgotten.
func nonceRecordValue(n usedNonce) []byte { return []byte(n.until.UTC().Format(time.RFC3339Nano)) }

func putNonce(tx model.Tx, n usedNonce) error {
	return tx.Put(model.KindNonce, nonceRecordKey(n), nonceRecordValue(n))
}

// SharedNonces is the store the gateways of a cluster share (store.Etcd): it creates
// an entry only if no gateway created one under its key before.
type SharedNonces interface {
	CreateOnce(kind, id string, v []byte) (created bool, err error)
}

// claimShared creates n's record in the cluster's store before its request is served:
// errNonceUsed when a gateway, this one or another, created it first. A nonce's key
// and expiry follow from the signed request alone, so a replay through any gateway
// claims the same record.
func claimShared(shared SharedNonces, n usedNonce) error {
	created, err := shared.CreateOnce(model.KindNonce, nonceRecordKey(n), nonceRecordValue(n))
	if err != nil {
		return fmt.Errorf("claim nonce: %w", err)
	}
	if !created {
		return errNonceUsed
	}
	return nil
}

// RestoreNonces loads the nonces the store remembers into the verifier and forgets
// the ones whose window has passed. eipd calls it before it serves.
func (v *Verifier) RestoreNonces(st Store) (int, error) {
	now := v.Now()
	if err := pruneNonces(st, now); err != nil {
		return 0, err
	}
	live := map[string]time.Time{}
	if err := st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindNonce, func(k string, raw []byte) error {
			if until, err := time.Parse(time.RFC3339Nano, string(raw)); err == nil {
				live[nonceOfRecordKey(k)] = until
			}
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("restore nonces: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.nonces == nil {
		v.nonces = map[string]time.Time{}
	}
	for k, until := range live {
		v.nonces[k] = until
	}
	return len(live), nil
}

// pruneNonces deletes the stored nonces whose window has passed (and unreadable ones).
func pruneNonces(st Store, now time.Time) error {
	var expired []string
	if err := st.View(func(tx model.Tx) error {
		return tx.ForEach(model.KindNonce, func(k string, raw []byte) error {
			if until, err := time.Parse(time.RFC3339Nano, string(raw)); err != nil || !now.Before(until) {
				expired = append(expired, k)
			}
			return nil
		})
	}); err != nil {
		return fmt.Errorf("read nonces: %w", err)
	}
	if len(expired) == 0 {
		return nil
	}
	if err := st.Update(func(tx model.Tx) error {
		for _, k := range expired {
			if err := tx.Delete(model.KindNonce, k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("forget expired nonces: %w", err)
	}
	return nil
}

// NonceJournal stores reads' nonces in batches, and forgets expired ones every
// PruneInterval so the stored set stays bounded by the request rate times the window.
type NonceJournal struct {
	Store         Store
	Interval      time.Duration // how often a batch is written; 0 means 100 ms
	PruneInterval time.Duration // how often expired nonces are deleted; 0 means 1 min
	pending       chan usedNonce
	done          chan struct{}
}

// Start runs the journal until ctx ends; Wait returns once its last batch is stored.
func (j *NonceJournal) Start(ctx context.Context, onError func(error)) {
	j.pending = make(chan usedNonce, 4096)
	j.done = make(chan struct{})
	interval := j.Interval
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	pruneEvery := j.PruneInterval
	if pruneEvery == 0 {
		pruneEvery = time.Minute
	}
	go func() {
		defer close(j.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		prune := time.NewTicker(pruneEvery)
		defer prune.Stop()
		var batch []usedNonce
		flush := func() {
			if len(batch) == 0 {
				return
			}
			if err := j.Store.Update(func(tx model.Tx) error {
				for _, n := range batch {
					if err := putNonce(tx, n); err != nil {
						return err
					}
				}
				return nil
			}); err != nil && onError != nil {
				onError(fmt.Errorf("journal nonces: %w", err))
			}
			batch = batch[:0]
		}
		for {
			select {
			case n := <-j.pending:
				batch = append(batch, n)
			case <-tick.C:
				flush()
			case <-prune.C:
				if err := pruneNonces(j.Store, time.Now()); err != nil && onError != nil {
					onError(err)
				}
			case <-ctx.Done():
				for {
					select {
					case n := <-j.pending:
						batch = append(batch, n)
					default:
						flush()
						return
					}
				}
			}
		}
	}()
}

// Wait blocks until the journal stopped and stored what it had.
func (j *NonceJournal) Wait() {
	if j.done != nil {
		<-j.done
	}
}

// remember queues a read's nonce; when the queue is full it is stored at once.
func (j *NonceJournal) remember(n usedNonce) error {
	select {
	case j.pending <- n:
		return nil
	default:
		return j.Store.Update(func(tx model.Tx) error { return putNonce(tx, n) })
	}
}
