package model

import (
	"slices"
	"strings"
)

// saveEIP writes an EIP and keeps its indexes in step, in the same transaction: old
// is the stored version (nil when creating), e the new one (nil when deleting). Every
// EIP write goes through here, so the indexes cannot drift from the records. Only the
// index entries that change are written: a status change touches one or two.
func saveEIP(tx Tx, old, e *EIP) error {
	before, after := eipIndexEntries(old), eipIndexEntries(e)
	for _, b := range before {
		if !slices.ContainsFunc(after, func(a indexEntry) bool { return a.kind == b.kind && a.key == b.key }) {
			if err := tx.Delete(b.kind, b.key); err != nil {
				return err
			}
		}
	}
	if e == nil {
		return tx.Delete(KindEIP, old.AllocationID)
	}
	if err := put(tx, KindEIP, e.AllocationID, e); err != nil {
		return err
	}
	for _, a := range after {
		if slices.ContainsFunc(before, func(b indexEntry) bool { return b == a }) {
			continue
		}
		if err := tx.Put(a.kind, a.key, []byte(a.value)); err != nil {
			return err
		}
	}
	return nil
}

// indexEntry is one entry of an EIP's indexes.
type indexEntry struct{ kind, key, value string }

// eipIndexEntries are the index entries of e (none for nil).
func eipIndexEntries(e *EIP) []indexEntry {
	if e == nil {
		return nil
	}
	out := []indexEntry{{kindEIPByIP, e.IPAddress, e.AllocationID}}
	if active(e) {
		out = append(out, indexEntry{kind: kindEIPByTarget, key: targetKey(e)})
		if e.InstanceType == TypeENI && (e.Mode == ModeBinded || e.Mode == ModeMulti) {
			out = append(out, indexEntry{kindEIPCut, e.IPAddress, e.ENIMAC + "|" + e.Status})
		}
		if oneToOne(e) {
			out = append(out, indexEntry{kindEIPByPrivate, e.PrivateIPAddress, e.IPAddress + "|" + e.Status})
		}
	}
	if e.Status == StatusAssociating || e.Status == StatusUnassociating {
		out = append(out, indexEntry{kind: kindEIPPending, key: e.AllocationID})
	}
	return out
}

func targetKey(e *EIP) string {
	if !active(e) {
		return ""
	}
	return e.InstanceType + "|" + e.InstanceID + "|" + e.AllocationID
}

// eipIDsOn lists the AllocationIds of the active EIPs on one target.
func eipIDsOn(tx Tx, instanceType, instanceID string) ([]string, error) {
	var ids []string
	prefix := instanceType + "|" + instanceID + "|"
	err := tx.ForEachPrefix(kindEIPByTarget, prefix, func(key string, _ []byte) error {
		ids = append(ids, strings.TrimPrefix(key, prefix))
		return nil
	})
	return ids, err
}
