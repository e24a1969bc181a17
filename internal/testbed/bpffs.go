package testbed

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// BPFFS is a private bpffs mount, so a test's pins never meet another's or the host's.
type BPFFS struct{ Dir string }

// MountBPFFS mounts a fresh bpffs on a new temporary directory.
func MountBPFFS() (*BPFFS, error) {
	dir, err := os.MkdirTemp("", "eipgw-bpffs-")
	if err != nil {
		return nil, err
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return &BPFFS{Dir: dir}, nil
}

// Close unmounts it; pins in it go, and with them whatever only they held.
func (b *BPFFS) Close() error {
	if err := unix.Unmount(b.Dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", b.Dir, err)
	}
	return os.Remove(b.Dir)
}
