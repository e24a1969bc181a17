// Package testbed builds test networks out of network namespaces and veth pairs,
// entirely from Go (netlink and setns), so tests, the demo and the benchmarks share one
// topology and need no ip binary. Every address it configures lives inside a namespace
// it created; the root namespace gets nothing.
package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Host is a network namespace standing for one machine.
type Host struct {
	Name string
	ns   netns.NsHandle
	nl   *netlink.Handle

	mu    sync.Mutex
	procs []*exec.Cmd
}

// NewHost creates a named network namespace (visible to `ip netns`, so a leftover is
// easy to spot) with its loopback up.
func NewHost(name string) (*Host, error) {
	var h *Host
	err := inThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return err
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		if err := netns.Set(orig); err != nil {
			return fmt.Errorf("leave namespace %s: %w", name, err)
		}
		nl, err := netlink.NewHandleAt(ns)
		if err != nil {
			ns.Close()
			_ = netns.DeleteNamed(name)
			return fmt.Errorf("netlink in %s: %w", name, err)
		}
		h = &Host{Name: name, ns: ns, nl: nl}
		return nil
	})
	if err != nil {
		return nil, err
	}
	lo, err := h.nl.LinkByName("lo")
	if err == nil {
		err = h.nl.LinkSetUp(lo)
	}
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("%s: bring up lo: %w", name, err)
	}
	return h, nil
}

// inThread runs f on a fresh locked OS thread. If f leaves the thread in another
// namespace, the thread is never reused: it exits with the goroutine.
func inThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}

// Do runs f with the calling OS thread inside the host's namespace. Sockets opened
// and processes started in f belong to the host.
func (h *Host) Do(f func() error) error {
	return inThread(func() error {
		if err := netns.Set(h.ns); err != nil {
			return fmt.Errorf("enter %s: %w", h.Name, err)
		}
		return f()
	})
}

// Netlink is a netlink handle that acts inside the host.
func (h *Host) Netlink() *netlink.Handle { return h.nl }

// NsHandle is the namespace's handle, for moving links into it.
func (h *Host) NsHandle() netns.NsHandle { return h.ns }

// Start starts cmd inside the host. Close kills it if it still runs.
func (h *Host) Start(cmd *exec.Cmd) error {
	if err := h.Do(cmd.Start); err != nil {
		return fmt.Errorf("%s: start %s: %w", h.Name, cmd.Path, err)
	}
	h.mu.Lock()
	h.procs = append(h.procs, cmd)
	h.mu.Unlock()
	return nil
}

// Run runs a command inside the host with a deadline and returns its combined output.
func (h *Host) Run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out []byte
	err := h.Do(func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		return out, fmt.Errorf("%s: %s %v: %w\n%s", h.Name, name, args, err, out)
	}
	return out, nil
}

// Dial opens a connection from inside the host.
func (h *Host) Dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return c, err
}

// Listen opens a TCP listener inside the host.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a UDP or IP socket inside the host.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := h.Do(func() error {
		var err error
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Sysctl writes a value under /proc/sys/ as seen inside the host.
func (h *Host) Sysctl(key, value string) error {
	return h.Do(func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	})
}

// StopProcesses kills the processes started in the host (Start) and waits for them
// to end, so that what they held (a dataplane's lock, a port) is free when it returns.
func (h *Host) StopProcesses() {
	h.mu.Lock()
	procs := h.procs
	h.procs = nil
	h.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil && p.ProcessState == nil {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}
}

// Close kills the processes started in the host and deletes its namespace, which
// takes its interfaces with it.
func (h *Host) Close() error {
	h.StopProcesses()
	if h.nl != nil {
		h.nl.Close()
	}
	h.ns.Close()
	if err := netns.DeleteNamed(h.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete namespace %s: %w", h.Name, err)
	}
	return nil
}
