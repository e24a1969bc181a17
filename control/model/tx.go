package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Kinds of stored resources.
const (
	KindEIP      = "eip"
	KindReleased = "released" // released addresses, held for their owner to recover
	KindInstance = "instance"
	KindENI      = "eni"
	KindHaVip    = "havip"
	KindSLB      = "slb"
	KindNAT      = "natgw"
	KindToken    = "clienttoken"
	KindNonce    = "nonce" // expiry (fixed width) SP AccessKeyId NUL SignatureNonce -> the expiry (RFC 3339)
	// Indexes of EIPs, kept by saveEIP in the same transaction as the EIP.
	kindEIPByIP      = "eip_by_ip"      // address -> AllocationId
	kindEIPByTarget  = "eip_by_target"  // type|instance|AllocationId -> "" (active EIPs)
	kindEIPByPrivate = "eip_by_private" // private address -> EIP address|status (active 1:1)
	kindEIPPending   = "eip_pending"    // AllocationId -> "" (Associating, Unassociating)
	kindEIPCut       = "eip_cut"        // EIP address -> ENI MAC|status (active cut-through)
	kindEIPBandwidth = "eip_bandwidth"  // EIP address -> Mbit/s|status[|BandwidthPackageId[|cap Mbit/s]] (active EIPs)
	// A counter bumped by every write of what DesiredSources reads (instances, ENIs,
	// HaVips, load balancers), so the reconciler recomputes sources only after one.
	kindInventoryGen = "inventory_gen"
)

// Kinds lists every kind the store must hold.
var Kinds = []string{KindEIP, KindReleased, KindInstance, KindENI, KindHaVip, KindSLB, KindNAT, KindToken, KindNonce, KindSnat, KindForward, KindMonitor,
	KindBandwidthPackage, KindVSwitch, kindEIPByPackage, kindEIPByIP, kindEIPByTarget, kindEIPByPrivate, kindEIPPending, kindEIPCut, kindEIPBandwidth, kindInventoryGen}

// Tx is one store transaction: every API write runs in exactly one, so a failed or
// interrupted write leaves nothing behind.
type Tx interface {
	Get(kind, id string) ([]byte, error) // nil, nil when absent
	Put(kind, id string, value []byte) error
	Delete(kind, id string) error
	// ForEach visits a kind's entries in key order.
	ForEach(kind string, fn func(id string, value []byte) error) error
	// ForEachPrefix visits, in key order, the entries whose key starts with prefix.
	ForEachPrefix(kind, prefix string, fn func(id string, value []byte) error) error
	// ForEachRaw is ForEach without a string made of each key: key and value are
	// valid only during fn. For walks over every association.
	ForEachRaw(kind string, fn func(key, value []byte) error) error
}

func get[T any](tx Tx, kind, id string) (*T, error) {
	raw, err := tx.Get(kind, id)
	if err != nil || raw == nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", kind, id, err)
	}
	return v, nil
}

func put(tx Tx, kind, id string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	if err := tx.Put(kind, id, raw); err != nil {
		return err
	}
	switch kind {
	case KindInstance, KindENI, KindHaVip, KindSLB:
		// A delete of these kinds must bump it too.
		return bumpInventoryGeneration(tx)
	}
	return nil
}

const inventoryGenKey = "gen"

// InventoryGeneration changes whenever what DesiredSources reads changes.
func InventoryGeneration(tx Tx) (uint64, error) {
	raw, err := tx.Get(kindInventoryGen, inventoryGenKey)
	if err != nil || len(raw) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(raw), nil
}

// conflictRetries is how many times RetryConflicts runs a write again.
const conflictRetries = 8

// RetryConflicts runs write, and runs it again while another writer's commit overtook
// it (ErrStoreConflict: a cluster's shared store), up to conflictRetries times with a
// short random pause between: for a write that derives everything from what it reads,
// so that running it again is the same write on the newer state.
func RetryConflicts(write func() error) error {
	err := write()
	for i := 0; i < conflictRetries && errors.Is(err, ErrStoreConflict); i++ {
		time.Sleep(time.Duration(1+rand.IntN(5<<i)) * time.Millisecond)
		err = write()
	}
	return err
}

// UpdateRetrying is RetryConflicts for update(fn).
func UpdateRetrying(update func(func(Tx) error) error, fn func(Tx) error) error {
	return RetryConflicts(func() error { return update(fn) })
}

func bumpInventoryGeneration(tx Tx) error {
	gen, err := InventoryGeneration(tx)
	if err != nil {
		return err
	}
	return tx.Put(kindInventoryGen, inventoryGenKey, binary.BigEndian.AppendUint64(nil, gen+1))
}

func list[T any](tx Tx, kind string) ([]*T, error) {
	var out []*T
	err := tx.ForEach(kind, func(id string, raw []byte) error {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decode %s %s: %w", kind, id, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// MemTx is an in-memory Tx for tests.
type MemTx map[string]map[string][]byte

func (m MemTx) Get(kind, id string) ([]byte, error) { return m[kind][id], nil }

func (m MemTx) Put(kind, id string, v []byte) error {
	if m[kind] == nil {
		m[kind] = map[string][]byte{}
	}
	m[kind][id] = append([]byte(nil), v...)
	return nil
}

func (m MemTx) Delete(kind, id string) error { delete(m[kind], id); return nil }

func (m MemTx) ForEach(kind string, fn func(string, []byte) error) error {
	ids := make([]string, 0, len(m[kind]))
	for id := range m[kind] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := fn(id, m[kind][id]); err != nil {
			return err
		}
	}
	return nil
}

func (m MemTx) ForEachRaw(kind string, fn func(key, value []byte) error) error {
	return m.ForEach(kind, func(id string, v []byte) error { return fn([]byte(id), v) })
}

func (m MemTx) ForEachPrefix(kind, prefix string, fn func(string, []byte) error) error {
	return m.ForEach(kind, func(id string, v []byte) error {
		if strings.HasPrefix(id, prefix) {
			return fn(id, v)
		}
		return nil
	})
}

// Clone copies a MemTx, so a test can compare state before and after a refused write.
func (m MemTx) Clone() MemTx {
	c := MemTx{}
	for k, ids := range m {
		for id, v := range ids {
			_ = c.Put(k, id, v)
		}
	}
	return c
}
