package eipd

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
)

// TestBackup: eipd backup copies the state from a running eipd (its socket), while
// writes go on, and from the file when none runs; each copy is whole, checks out as
// state, holds what was committed before it, and is mode 0600; a copy that cannot be
// made leaves nothing at --out.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{StateDir: dir}
	st, err := store.Open(filepath.Join(dir, StateFile), true)
	if err != nil {
		t.Fatal(err)
	}
	svc := &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	allocate := func(n int) {
		t.Helper()
		if err := st.Update(func(tx model.Tx) error {
			for i := 0; i < n; i++ {
				if _, err := svc.Do(tx, "acct", "AllocateEipAddress", model.Params{}, time.Now()); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	allocate(5)
	stop, err := serveBackups(st, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Writes go on while copies are taken.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			allocate(1)
		}
	}()
	online := filepath.Join(t.TempDir(), "online.db")
	sum, err := Backup(cfg, online)
	<-done
	if err != nil || sum.EIPs < 5 || sum.EIPs > 25 {
		t.Fatalf("a backup from the running eipd: %+v, %v", sum, err)
	}
	if st, err := os.Stat(online); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the copy: %v, %v", st, err)
	}
	stop()
	st.Close()

	offline := filepath.Join(t.TempDir(), "offline.db")
	if sum, err := Backup(cfg, offline); err != nil || sum.EIPs != 25 {
		t.Fatalf("a backup with no eipd running: %+v, %v", sum, err)
	}
	// The copy is a state file eipd opens.
	restored, err := store.Open(offline, false)
	if err != nil {
		t.Fatalf("opening the copy as state: %v", err)
	}
	restored.Close()

	// No state file: an error, and nothing at --out.
	failed := filepath.Join(t.TempDir(), "failed.db")
	if _, err := Backup(&Config{StateDir: t.TempDir()}, failed); err == nil || !strings.Contains(err.Error(), "eipd --init") {
		t.Errorf("a backup of no state: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(failed)); len(entries) != 0 {
		t.Errorf("a failed backup left %v", entries)
	}
}
