package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/eipgw/eipgw/desired"
)

// saveEIP writes an EIP and keeps its indexes in step, in the same transaction: old
// is the stored version (nil when creating), e the new one (nil when deleting). Every
// EIP write goes through here, so the indexes cannot drift from the records. Only the
// index entries that change are written: a status change touches one or two.
func saveEIP(tx Tx, old, e *EIP) error {
	before, after := eipIndexEntries(old), eipIndexEntries(e)
	for _, b := range before {
		if !slices.ContainsFunc(after, func(a IndexEntry) bool { return a.Kind == b.Kind && a.Key == b.Key }) {
			if err := tx.Delete(b.Kind, b.Key); err != nil {
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
		if slices.ContainsFunc(before, func(b IndexEntry) bool { return b == a }) {
			continue
		}
		if err := tx.Put(a.Kind, a.Key, []byte(a.Value)); err != nil {
			return err
		}
	}
	return nil
}

// EIPIndexKinds are the kinds saveEIP keeps in step with the EIP records: derived
// data, which a store may keep outside its file and rebuild with EIPIndexEntries.
var EIPIndexKinds = []string{kindEIPByIP, kindEIPByTarget, kindEIPByPrivate, kindEIPPending, kindEIPCut, kindEIPBandwidth, kindEIPByPackage}

// IndexEntry is one entry of an EIP's indexes.
type IndexEntry struct{ Kind, Key, Value string }

// EIPIndexEntries are the index entries of a stored EIP record, as saveEIP wrote them.
func EIPIndexEntries(raw []byte) ([]IndexEntry, error) {
	var e EIP
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decode EIP: %w", err)
	}
	return eipIndexEntries(&e), nil
}

// eipIndexEntries are the index entries of e (none for nil).
func eipIndexEntries(e *EIP) []IndexEntry {
	if e == nil {
		return nil
	}
	out := []IndexEntry{{kindEIPByIP, e.IPAddress, e.AllocationID}}
	if active(e) {
		out = append(out, IndexEntry{Kind: kindEIPByTarget, Key: targetKey(e)},
			IndexEntry{kindEIPBandwidth, e.IPAddress, bandwidthValue(e)})
		if e.InstanceType == TypeENI && (e.Mode == ModeBinded || e.Mode == ModeMulti) {
			out = append(out, IndexEntry{kindEIPCut, e.IPAddress, e.ENIMAC + "|" + e.Status})
		}
		if oneToOne(e) {
			out = append(out, IndexEntry{kindEIPByPrivate, e.PrivateIPAddress, e.IPAddress + "|" + e.Status})
		}
	}
	if e.Status == StatusAssociating || e.Status == StatusUnassociating {
		out = append(out, IndexEntry{Kind: kindEIPPending, Key: e.AllocationID})
	}
	if e.BandwidthPackageID != "" {
		out = append(out, IndexEntry{Kind: kindEIPByPackage, Key: e.BandwidthPackageID + "|" + e.AllocationID})
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

// DesiredBandwidths is each active EIP's bandwidth from the bandwidth index (one walk,
// no EIP decoded; one read a bandwidth package). EIPs being disassociated are left out.
func DesiredBandwidths(tx Tx) ([]desired.Limit, error) {
	out := make([]desired.Limit, 0, sizeHint(tx, kindEIPBandwidth))
	packages := packageBandwidths{tx: tx, bits: map[string]uint64{}}
	err := tx.ForEachRaw(kindEIPBandwidth, func(ip, v []byte) error {
		a, ok := parseIPv4(ip)
		entry, ok2 := bandwidthEntry(v)
		if !ok || !ok2 {
			return fmt.Errorf("bandwidth index entry %q -> %q is damaged", ip, v)
		}
		if entry.status == StatusUnassociating {
			return nil
		}
		limit, err := packages.limit(a, entry)
		if err != nil {
			return err
		}
		out = append(out, limit)
		return nil
	})
	return out, err
}

// bandwidthValue is an active EIP's bandwidth index value: "Mbit/s|status", and
// "|BandwidthPackageId" when it is in a package, then "|Mbit/s" of its cap there when
// it has one.
func bandwidthValue(e *EIP) string {
	v := strconv.Itoa(e.Bandwidth) + "|" + e.Status
	if e.BandwidthPackageID != "" {
		v += "|" + e.BandwidthPackageID
		if e.PackageIPBandwidth != 0 {
			v += "|" + strconv.Itoa(e.PackageIPBandwidth)
		}
	}
	return v
}

// bandwidthIndexEntry is a bandwidth index value read back.
type bandwidthIndexEntry struct {
	bits      uint64 // the EIP's own
	status    string
	packageID string
	capBits   uint64 // its cap in the package, 0 for none
}

// bandwidthEntry reads a bandwidth index value (bandwidthValue). Without a string
// made for the number or a known status: a start reads 100,000 of them.
func bandwidthEntry(v []byte) (bandwidthIndexEntry, bool) {
	mbps, rest, _ := bytes.Cut(v, []byte("|"))
	status, rest, _ := bytes.Cut(rest, []byte("|"))
	pkg, capMbps, capped := bytes.Cut(rest, []byte("|"))
	n, ok := mbitsOf(mbps)
	if !ok {
		return bandwidthIndexEntry{}, false
	}
	e := bandwidthIndexEntry{bits: n * 1_000_000, status: knownStatus(status), packageID: string(pkg)}
	if capped {
		c, ok := mbitsOf(capMbps)
		if !ok {
			return bandwidthIndexEntry{}, false
		}
		e.capBits = c * 1_000_000
	}
	return e, true
}

// mbitsOf reads a bandwidth index number: decimal digits, at least one.
func mbitsOf(digits []byte) (uint64, bool) {
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' || n > 1<<32 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, len(digits) > 0
}

// knownStatus is status as one of the EIP status constants when it is one (no
// allocation), else as a new string.
func knownStatus(status []byte) string {
	for _, s := range []string{StatusInUse, StatusAssociating, StatusUnassociating, StatusAvailable, StatusReleasing} {
		if string(status) == s {
			return s
		}
	}
	return string(status)
}

// packageBandwidths reads each bandwidth package's bandwidth once for a pass.
type packageBandwidths struct {
	tx   Tx
	bits map[string]uint64
}

// limit is an EIP's limit: its own, or its package's, shared.
func (p packageBandwidths) limit(eip netip.Addr, e bandwidthIndexEntry) (desired.Limit, error) {
	if e.packageID == "" {
		return desired.Limit{EIP: eip, Bits: e.bits}, nil
	}
	bits, ok := p.bits[e.packageID]
	if !ok {
		pkg, err := get[BandwidthPackage](p.tx, KindBandwidthPackage, e.packageID)
		if err != nil {
			return desired.Limit{}, err
		}
		if pkg == nil {
			return desired.Limit{}, fmt.Errorf("EIP %v is in bandwidth package %s, which does not exist", eip, e.packageID)
		}
		bits = uint64(pkg.Bandwidth) * 1_000_000
		p.bits[e.packageID] = bits
	}
	return desired.Limit{EIP: eip, Bits: bits, Shared: e.packageID, Cap: e.capBits}, nil
}

// EnsureBandwidthIndex fills the bandwidth index from the active EIPs when it is
// empty and they are not: a state file written before the index existed. Every
// later EIP write keeps it (saveEIP).
func EnsureBandwidthIndex(tx Tx) (int, error) {
	empty := true
	if err := tx.ForEachRaw(kindEIPBandwidth, func(_, _ []byte) error { empty = false; return errStopWalk }); err != nil && !errors.Is(err, errStopWalk) {
		return 0, err
	}
	if !empty {
		return 0, nil
	}
	var ids []string
	if err := tx.ForEach(kindEIPByTarget, func(key string, _ []byte) error {
		ids = append(ids, key[strings.LastIndexByte(key, '|')+1:])
		return nil
	}); err != nil {
		return 0, err
	}
	for _, id := range ids {
		e, err := indexedEIP(tx, "target", id)
		if err != nil {
			return 0, err
		}
		if err := tx.Put(kindEIPBandwidth, e.IPAddress, []byte(bandwidthValue(e))); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

var errStopWalk = errors.New("stop the walk")

// BandwidthsOf is DesiredBandwidths for some EIPs only (those a write associates).
func BandwidthsOf(tx Tx, eips []netip.Addr) (map[netip.Addr]desired.Limit, error) {
	out := make(map[netip.Addr]desired.Limit, len(eips))
	packages := packageBandwidths{tx: tx, bits: map[string]uint64{}}
	for _, a := range eips {
		v, err := tx.Get(kindEIPBandwidth, a.String())
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue
		}
		entry, ok := bandwidthEntry(v)
		if !ok {
			return nil, fmt.Errorf("bandwidth index entry %v -> %q is damaged", a, v)
		}
		if out[a], err = packages.limit(a, entry); err != nil {
			return nil, err
		}
	}
	return out, nil
}
