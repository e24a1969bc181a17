package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NextHopWatcher keeps the next-hop cache current: a full reading of the kernel's
// tables at start and every Resync, and another soon after any route, rule, address,
// link or neighbour change the kernel announces. A change that can move a route
// (all but neighbour changes) first turns the cache off, so no packet takes a hop the
// kernel no longer would while the new reading is made.
type NextHopWatcher struct {
	DP     *Dataplane
	Resync time.Duration // the periodic full pass; 0 means 10 s
	// Settle is how long after an announcement the tables are read, so that a burst
	// of changes costs one reading; 0 means 20 ms.
	Settle time.Duration
	Log    func(msg string, args ...any)
}

// Start reads the kernel's tables once and keeps the cache current until ctx ends;
// wait blocks until then. The netlink sockets are opened here, in the calling
// thread's network namespace, and keep it. It fails only when it cannot start.
func (w *NextHopWatcher) Start(ctx context.Context) (wait func(), err error) {
	resync, settle := w.Resync, w.Settle
	if resync <= 0 {
		resync = 10 * time.Second
	}
	if settle <= 0 {
		settle = 20 * time.Millisecond
	}
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_NEIGH, unix.RTNLGRP_IPV4_IFADDR,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV4_RULE)
	if err != nil {
		return nil, fmt.Errorf("watch next hops: subscribe: %w", err)
	}
	// A timeout, so the reader sees ctx end.
	if err := sock.SetReceiveTimeout(&unix.Timeval{Sec: 1}); err != nil {
		sock.Close()
		return nil, fmt.Errorf("watch next hops: %w", err)
	}
	handle, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("watch next hops: %w", err)
	}

	events := make(chan bool, 1) // true: a change that can move a route
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer sock.Close()
		for ctx.Err() == nil {
			msgs, _, err := sock.Receive()
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				// ENOBUFS: announcements were lost; read everything again.
				w.signal(events, true)
				continue
			}
			for _, m := range msgs {
				w.signal(events, m.Header.Type != unix.RTM_NEWNEIGH && m.Header.Type != unix.RTM_DELNEIGH)
			}
		}
	}()
	w.sync(handle)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		defer handle.Close()
		defer func() { <-readerDone }()
		w.loop(ctx, handle, events, resync, settle)
	}()
	return func() { <-loopDone }, nil
}

func (w *NextHopWatcher) loop(ctx context.Context, handle *netlink.Handle, events chan bool, resync, settle time.Duration) {
	tick := time.NewTicker(resync)
	defer tick.Stop()
	var settleTimer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case structural := <-events:
			if structural {
				if err := w.DP.DisableNextHops(); err != nil {
					w.logf("next-hop cache: turning it off before a change", "error", err)
				}
			}
			if settleTimer == nil {
				settleTimer = time.After(settle)
			}
		case <-w.DP.hopsWanted:
			if settleTimer == nil {
				settleTimer = time.After(settle)
			}
		case <-settleTimer:
			settleTimer = nil
			w.sync(handle)
		case <-tick.C:
			w.sync(handle)
		}
	}
}

// signal records an event; a pending structural one is never downgraded.
func (w *NextHopWatcher) signal(events chan bool, structural bool) {
	select {
	case events <- structural:
	default:
		if structural {
			// The pending one may be a neighbour change: make sure the cache goes
			// off now; the reading it triggers covers this change too.
			_ = w.DP.DisableNextHops()
		}
	}
}

func (w *NextHopWatcher) sync(handle *netlink.Handle) {
	hops, err := ReadNextHops(handle, w.DP.hopAddrs())
	if err == nil {
		err = w.DP.SetNextHops(hops)
	}
	if err != nil {
		// Off rather than wrong; the next pass retries.
		_ = w.DP.DisableNextHops()
		w.logf("next-hop cache: read the kernel's tables", "error", err)
	}
}

func (w *NextHopWatcher) logf(msg string, args ...any) {
	if w.Log != nil {
		w.Log(msg, args...)
	}
}

// wantHops tells a watcher a new destination may need its hop (never blocks).
func (d *Dataplane) wantHops() {
	select {
	case d.hopsWanted <- struct{}{}:
	default:
	}
}

// hopAddrs are the destinations whose hops the cache holds: the VPC's registered
// addresses, the bindings' private addresses and the cut-through EIPs (which live
// on ENIs behind the VPC side).
func (d *Dataplane) hopAddrs() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[uint32]bool{}
	for _, k := range d.sources.keys() {
		seen[k.Addr] = true
	}
	for _, priv := range d.bound {
		seen[priv] = true
	}
	for eip := range d.cuts {
		seen[eip] = true
	}
	out := make([]netip.Addr, 0, len(seen))
	for k := range seen {
		out = append(out, beAddr(k))
	}
	return out
}
