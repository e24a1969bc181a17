package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Bird is a BIRD 2 routing daemon (Debian's bird2 package) running in a host, with
// its configuration and control socket in a directory of its own.
type Bird struct {
	Host *Host
	dir  string
	cmd  *exec.Cmd
}

// BirdBinary is the daemon the tests start; BirdControl its client.
const (
	BirdBinary  = "bird"
	BirdControl = "birdc"
)

// StartBird runs bird in h with config, and waits until it answers on its socket.
func StartBird(h *Host, config, dir string) (*Bird, error) {
	for _, b := range []string{BirdBinary, BirdControl} {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("bird (Debian's bird2): %w", err)
		}
	}
	d, err := os.MkdirTemp(dir, "bird-")
	if err != nil {
		return nil, err
	}
	b := &Bird{Host: h, dir: d}
	conf := filepath.Join(d, "bird.conf")
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(d, "bird.log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	b.cmd = exec.Command(BirdBinary, "-f", "-c", conf, "-s", b.socket(), "-P", filepath.Join(d, "bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := h.Start(b.cmd); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := b.Show("status"); err == nil {
			return b, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw, _ := os.ReadFile(filepath.Join(d, "bird.log"))
	return nil, fmt.Errorf("bird did not answer within 10 s:\n%s", raw)
}

func (b *Bird) socket() string { return filepath.Join(b.dir, "bird.ctl") }

// Show runs birdc's show command with args and returns its output.
func (b *Bird) Show(args ...string) (string, error) {
	out, err := b.Host.Run(5*time.Second, BirdControl, append([]string{"-s", b.socket(), "show"}, args...)...)
	return string(out), err
}

// Log is what bird wrote.
func (b *Bird) Log() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "bird.log"))
	return strings.TrimSpace(string(raw))
}

// Close stops bird and removes its directory.
func (b *Bird) Close() error {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
		_, _ = b.cmd.Process.Wait()
	}
	return os.RemoveAll(b.dir)
}
