package eipd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/eipgw/eipgw/control/store"
)

// BackupSocket is where a running eipd serves consistent copies of its state file,
// in the state directory: only who may read the state file (root, mode 0700) may
// connect.
const BackupSocket = "eipd.sock"

// serveBackups serves GET /backup on the state directory's socket: a copy of the state
// file from one read transaction, while writes go on. stop closes it.
func serveBackups(st *store.Store, stateDir string, log *slog.Logger) (stop func(), err error) {
	path := filepath.Join(stateDir, BackupSocket)
	_ = os.Remove(path) // a socket a killed eipd left
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("backup socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("backup socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		n, err := st.Backup(w)
		if err != nil {
			log.Error("backup", "error", err, "bytes", n)
			return
		}
		log.Info("backup served", "bytes", n)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = os.Remove(path)
	}, nil
}

// Backup writes a consistent copy of the state file to out (eipd backup): from the
// running eipd through its socket, or, when none runs, from the file itself. The copy
// is written beside out and renamed into place once complete and checked (intact,
// eipgw state), so out is never a partial file. It returns what the copy holds.
func Backup(cfg *Config, out string) (store.Summary, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".partial-*")
	if err != nil {
		return store.Summary{}, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone by then when renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return store.Summary{}, fmt.Errorf("backup: %w", err)
	}
	if err := copyState(cfg, tmp); err != nil {
		tmp.Close()
		return store.Summary{}, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return store.Summary{}, fmt.Errorf("backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return store.Summary{}, fmt.Errorf("backup: %w", err)
	}
	sum, err := store.Inspect(tmp.Name())
	if err != nil {
		return sum, fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	return sum, nil
}

// copyState copies the state into w from the running eipd, or from the file when no
// eipd serves the socket.
func copyState(cfg *Config, w io.Writer) error {
	socket := filepath.Join(cfg.StateDir, BackupSocket)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := client.Get("http://eipd/backup")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errConnRefused) {
			_, err := store.BackupClosed(filepath.Join(cfg.StateDir, StateFile), w)
			return err
		}
		return fmt.Errorf("backup from the running eipd: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("backup from the running eipd: HTTP %d", resp.StatusCode)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("backup from the running eipd: %w", err)
	}
	return nil
}

// errConnRefused is what dialing a socket nobody listens on returns (a killed eipd's).
var errConnRefused error = syscall.ECONNREFUSED
