package model

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/eipgw/eipgw/desired"
)

// TestSourcesSnapshot: DesiredSources answers from the stored snapshot only while the
// inventory is the one it was taken of, and a damaged snapshot is an error, not an
// empty list.
func TestSourcesSnapshot(t *testing.T) {
	w := newWorld(t)
	w.ok("admin", "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11", "MacAddress", "02:00:00:00:01:11")
	w.ok("admin", "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.2", "MacAddress", "02:00:00:00:01:02")
	fromInventory, err := DesiredSources(w.tx)
	if err != nil || len(fromInventory) != 2 || !slices.IsSortedFunc(fromInventory, desired.Source.Compare) {
		t.Fatalf("sources of the inventory: %v, %v", fromInventory, err)
	}
	gen, _ := InventoryGeneration(w.tx)
	if current, _ := SourcesSnapshotCurrent(w.tx); current {
		t.Fatal("a snapshot nobody saved is current")
	}
	if err := SaveSourcesSnapshot(w.tx, gen, fromInventory); err != nil {
		t.Fatal(err)
	}
	if current, _ := SourcesSnapshotCurrent(w.tx); !current {
		t.Fatal("the saved snapshot is not current")
	}
	fromSnapshot, err := DesiredSources(w.tx)
	if err != nil || !slices.EqualFunc(fromSnapshot, fromInventory, func(a, b desired.Source) bool { return a.Compare(b) == 0 }) {
		t.Fatalf("from the snapshot: %v, %v; from the inventory: %v", fromSnapshot, err, fromInventory)
	}

	// A registration changes the inventory: the snapshot is out of date, and saving
	// the old list under the old generation does not bring it back.
	w.ok("admin", "RegisterInstance", "InstanceId", "i-3", "VpcId", "v", "PrivateIpAddress", "10.0.1.13", "MacAddress", "02:00:00:00:01:13")
	if err := SaveSourcesSnapshot(w.tx, gen, fromInventory); err != nil {
		t.Fatal(err)
	}
	if got, err := DesiredSources(w.tx); err != nil || len(got) != 3 {
		t.Fatalf("after a registration: %v, %v", got, err)
	}

	gen, _ = InventoryGeneration(w.tx)
	if err := SaveSourcesSnapshot(w.tx, gen, fromInventory); err != nil {
		t.Fatal(err)
	}
	raw, _ := w.tx.Get(kindInventoryGen, sourcesSnapshotKey)
	if err := w.tx.Put(kindInventoryGen, sourcesSnapshotKey, raw[:len(raw)-1]); err != nil {
		t.Fatal(err)
	}
	if got, err := DesiredSources(w.tx); err == nil {
		t.Fatalf("a cut snapshot read as %v", got)
	}
}

// TestParseIPv4 reads what netip.ParseAddr reads as IPv4, and refuses the rest.
func TestParseIPv4(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.1.2.3", "255.255.255.255", "203.0.113.7", "",
		"1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1..2.3", "1.2.3.", "a.b.c.d", "1.2.3.4 ", "::1", "-1.2.3.4"} {
		want, err := netip.ParseAddr(s)
		ok := err == nil && want.Is4()
		got, gotOK := parseIPv4([]byte(s))
		if gotOK != ok || (ok && got != want) {
			t.Errorf("%q: %v %v, want %v %v", s, got, gotOK, want, ok)
		}
	}
}
