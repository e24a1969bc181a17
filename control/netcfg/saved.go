package netcfg

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Saved is what Apply removes or may replace, exactly as the kernel reported it before
// Apply, so that Undo puts back that and not a reconstruction: the private address
// with every attribute it had (broadcast or none, flags such as noprefixroute, its
// route metric, label, lifetimes), and every IPv4 route and rule, since removing an
// address also removes the routes that use it as their source.
//
// It is taken and replayed as raw netlink messages in the network namespace of the
// calling thread, which must be the one the Plan's handle works on.
type Saved struct {
	Addr   []byte   `json:"addr,omitempty"` // RTM_NEWADDR payload; empty when the address was not there
	Routes [][]byte `json:"routes"`         // RTM_NEWROUTE payloads
	Rules  [][]byte `json:"rules"`          // RTM_NEWRULE payloads
}

// Save reads what the plan's Apply may change.
func Save(p Plan, ifindex int) (*Saved, error) {
	s := &Saved{}
	addrs, err := dump(unix.RTM_GETADDR, unix.RTM_NEWADDR, nl.NewIfAddrmsg(unix.AF_INET))
	if err != nil {
		return nil, fmt.Errorf("netcfg: read addresses: %w", err)
	}
	for _, a := range addrs {
		if addrIs(a, ifindex, p.PrivateAddr) {
			s.Addr = a
		}
	}
	if s.Routes, err = dump(unix.RTM_GETROUTE, unix.RTM_NEWROUTE, &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET}}); err != nil {
		return nil, fmt.Errorf("netcfg: read routes: %w", err)
	}
	if s.Rules, err = dump(unix.RTM_GETRULE, unix.RTM_NEWRULE, &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET}}); err != nil {
		return nil, fmt.Errorf("netcfg: read rules: %w", err)
	}
	return s, nil
}

// restore puts back the saved address, then every saved route and rule that is gone
// (routes the kernel makes itself for an address come back with it).
func (s *Saved) restore() error {
	var errs []error
	if len(s.Addr) > 0 {
		if err := replay(unix.RTM_NEWADDR, unix.NLM_F_REPLACE, withoutAttrs(s.Addr, unix.SizeofIfAddrmsg, unix.IFA_CACHEINFO)); err != nil {
			errs = append(errs, fmt.Errorf("netcfg: put the address back: %w", err))
		}
	}
	for _, kind := range []struct {
		name          string
		get, new      uint16
		saved         [][]byte
		key           func([]byte) string
		skipProtoKern bool
	}{
		{"route", unix.RTM_GETROUTE, unix.RTM_NEWROUTE, s.Routes, routeKey, true},
		{"rule", unix.RTM_GETRULE, unix.RTM_NEWRULE, s.Rules, ruleKey, false},
	} {
		now, err := dump(kind.get, kind.new, &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET}})
		if err != nil {
			errs = append(errs, fmt.Errorf("netcfg: read %ss: %w", kind.name, err))
			continue
		}
		have := map[string]bool{}
		for _, m := range now {
			have[kind.key(m)] = true
		}
		var missing [][]byte
		for _, m := range kind.saved {
			if have[kind.key(m)] || len(m) < unix.SizeofRtMsg {
				continue
			}
			if kind.skipProtoKern && nl.DeserializeRtMsg(m).Protocol == unix.RTPROT_KERNEL {
				continue // the kernel's own, for an address: it made it again or has no reason to
			}
			missing = append(missing, m)
		}
		// A route via a gateway needs the route that reaches the gateway first: put
		// back what can be, and again while that makes progress.
		var failed map[string]error
		for len(missing) > 0 {
			var next [][]byte
			failed = map[string]error{}
			for _, m := range missing {
				if err := replay(kind.new, unix.NLM_F_EXCL, restorable(m)); err != nil && !errors.Is(err, unix.EEXIST) {
					next = append(next, m)
					failed[kind.key(m)] = err
				}
			}
			if len(next) == len(missing) {
				break
			}
			missing = next
		}
		for key, err := range failed {
			errs = append(errs, fmt.Errorf("netcfg: put %s %s back: %w", kind.name, key, err))
		}
	}
	return errors.Join(errs...)
}

func dump(get, resType uint16, header nl.NetlinkRequestData) ([][]byte, error) {
	req := nl.NewNetlinkRequest(int(get), unix.NLM_F_DUMP)
	req.AddData(header)
	return req.Execute(unix.NETLINK_ROUTE, resType)
}

func replay(msgType uint16, flags int, payload []byte) error {
	req := nl.NewNetlinkRequest(int(msgType), unix.NLM_F_CREATE|unix.NLM_F_ACK|flags)
	req.AddRawData(payload)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

func addrIs(payload []byte, ifindex int, p netip.Prefix) bool {
	if len(payload) < unix.SizeofIfAddrmsg {
		return false
	}
	msg := nl.DeserializeIfAddrmsg(payload)
	if int(msg.Index) != ifindex || int(msg.Prefixlen) != p.Bits() {
		return false
	}
	attrs, err := nl.ParseRouteAttr(payload[unix.SizeofIfAddrmsg:])
	if err != nil {
		return false
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.IFA_LOCAL && net.IP(a.Value).Equal(net.IP(p.Addr().AsSlice())) {
			return true
		}
	}
	return false
}

// withoutAttrs is payload with the header of hdrLen bytes and every attribute but
// those of the dropped types.
func withoutAttrs(payload []byte, hdrLen int, drop ...uint16) []byte {
	if len(payload) < hdrLen {
		return payload
	}
	attrs, err := nl.ParseRouteAttr(payload[hdrLen:])
	if err != nil {
		return payload
	}
	out := append([]byte(nil), payload[:hdrLen]...)
	for _, a := range attrs {
		skip := false
		for _, d := range drop {
			skip = skip || a.Attr.Type == d
		}
		if !skip {
			out = append(out, encodeAttr(a)...)
		}
	}
	return out
}

func encodeAttr(a syscall.NetlinkRouteAttr) []byte {
	n := unix.SizeofRtAttr + len(a.Value)
	b := make([]byte, (n+unix.NLA_ALIGNTO-1) & ^(unix.NLA_ALIGNTO-1))
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], a.Attr.Type)
	copy(b[unix.SizeofRtAttr:], a.Value)
	return b
}

// restorable is a dumped route as a request: no cache information, and of the flags
// only onlink, which a request may carry.
func restorable(route []byte) []byte {
	out := withoutAttrs(route, unix.SizeofRtMsg, unix.RTA_CACHEINFO, unix.RTA_EXPIRES)
	flags := binary.NativeEndian.Uint32(out[8:12]) & unix.RTNH_F_ONLINK
	binary.NativeEndian.PutUint32(out[8:12], flags)
	return out
}

// routeKey identifies a route: its header but the flags, and its attributes but the
// cache information, in order.
func routeKey(route []byte) string {
	if len(route) < unix.SizeofRtMsg {
		return hex.EncodeToString(route)
	}
	attrs, _ := nl.ParseRouteAttr(route[unix.SizeofRtMsg:])
	parts := []string{hex.EncodeToString(route[:8])}
	for _, a := range attrs {
		if a.Attr.Type == unix.RTA_CACHEINFO || a.Attr.Type == unix.RTA_EXPIRES {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d=%x", a.Attr.Type, a.Value))
	}
	sort.Strings(parts[1:])
	return strings.Join(parts, ",")
}

// ruleKey identifies a rule by its whole message.
func ruleKey(rule []byte) string { return hex.EncodeToString(bytes.Clone(rule)) }
