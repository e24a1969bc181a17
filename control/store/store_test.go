package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/eipgw/eipgw/control/model"
)

func TestMissingStateIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if _, err := Open(path, false); !errors.Is(err, ErrNoState) {
		t.Fatalf("open of a missing file: %v, want ErrNoState", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused open created the file")
	}
	s, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, false); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
}

func TestCorruptStateIsRefused(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte("this is not a database, just some bytes long enough to look at"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage, false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage: %v, want ErrCorrupt", err)
	}
	// A valid file cut short.
	path := filepath.Join(dir, "state.db")
	s, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	if err := os.WriteFile(path, raw[:len(raw)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v, want ErrCorrupt", err)
	}
}

// TestEmptyStateIsRefused: a zero-length state file is refused like a corrupt one, and
// left as it is; only --init (create) makes a new store of it.
func TestEmptyStateIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, false); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty file: %v, want ErrCorrupt", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("a refused open changed the empty file: %v, %v", st, err)
	}
	s, err := Open(path, true)
	if err != nil {
		t.Fatalf("empty file with create: %v", err)
	}
	s.Close()
}

// TestStateInUse: a second opener of the same file is told it is in use, not that it
// is corrupt (an operator could delete good state on that word).
func TestStateInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path, false)
	if !errors.Is(err, ErrInUse) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	err = s.Update(func(tx model.Tx) error {
		if err := tx.Put(model.KindEIP, "eip-1", []byte(`{}`)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	_ = s.View(func(tx model.Tx) error {
		if v, _ := tx.Get(model.KindEIP, "eip-1"); v != nil {
			t.Error("a failed write left its first half")
		}
		return nil
	})
}
