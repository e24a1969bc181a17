package model

import "strings"

// saveEIP writes an EIP and keeps its indexes in step, in the same transaction: old
// is the stored version (nil when creating), e the new one (nil when deleting). Every
// EIP write goes through here, so the indexes cannot drift from the records.
func saveEIP(tx Tx, old, e *EIP) error {
	if old != nil {
		for _, k := range []struct{ kind, key string }{
			{kindEIPByIP, old.IPAddress},
			{kindEIPByTarget, targetKey(old)},
			{kindEIPByPrivate, old.PrivateIPAddress},
			{kindEIPPending, old.AllocationID},
			{kindEIPCut, old.IPAddress},
		} {
			if k.key != "" {
				if err := tx.Delete(k.kind, k.key); err != nil {
					return err
				}
			}
		}
	}
	if e == nil {
		return tx.Delete(KindEIP, old.AllocationID)
	}
	if err := put(tx, KindEIP, e.AllocationID, e); err != nil {
		return err
	}
	if err := tx.Put(kindEIPByIP, e.IPAddress, []byte(e.AllocationID)); err != nil {
		return err
	}
	if active(e) {
		if err := tx.Put(kindEIPByTarget, targetKey(e), nil); err != nil {
			return err
		}
		if e.InstanceType == TypeENI && (e.Mode == ModeBinded || e.Mode == ModeMulti) {
			if err := tx.Put(kindEIPCut, e.IPAddress, []byte(e.ENIMAC+"|"+e.Status)); err != nil {
				return err
			}
		}
		if oneToOne(e) {
			if err := tx.Put(kindEIPByPrivate, e.PrivateIPAddress, []byte(e.IPAddress+"|"+e.Status)); err != nil {
				return err
			}
		}
	}
	if e.Status == StatusAssociating || e.Status == StatusUnassociating {
		return tx.Put(kindEIPPending, e.AllocationID, nil)
	}
	return nil
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
