// Package bgp announces the EIPs a gateway carries to its upstream routers, with GoBGP
// as a library inside eipd: each carried EIP is a /32 with the gateway as next hop, so
// the routers spread 1:1 EIPs over every gateway (ECMP) and send a NAT gateway's EIPs
// to its owner. When the gateway stops, its sessions close and the routers withdraw
// its routes at once; when it dies, they do when the hold time runs out.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// Peer is an upstream router.
type Peer struct {
	Address netip.Addr
	ASN     uint32
}

// Config is a gateway's BGP speaker.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// NextHop is the gateway's address the routers reach it on: every EIP's next hop.
	NextHop netip.Addr
	Peers   []Peer
	// HoldTime is the sessions' hold time (3 s when zero, BGP's least): a router drops
	// a dead gateway's routes that long after its last message. Keepalives go every
	// third of it.
	HoldTime time.Duration
	Log      *slog.Logger
}

// Speaker is a running BGP speaker and the EIPs it announces.
type Speaker struct {
	srv     *server.BgpServer
	nextHop string
	mu      sync.Mutex
	paths   map[netip.Addr]*api.Path
}

var ipv4Unicast = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}

// Start starts the speaker (it listens on no port: it connects to its peers) and
// opens a session to every peer.
func Start(ctx context.Context, cfg Config) (*Speaker, error) {
	if cfg.ASN == 0 || !cfg.RouterID.Is4() || !cfg.NextHop.Is4() || len(cfg.Peers) == 0 {
		return nil, errors.New("bgp: an ASN, an IPv4 router ID and next hop, and at least one peer are needed")
	}
	hold := cfg.HoldTime
	if hold == 0 {
		hold = 3 * time.Second
	}
	if hold < 3*time.Second {
		return nil, fmt.Errorf("bgp: hold time %v is below BGP's least, 3 s", hold)
	}
	logger := cfg.Log
	if logger == nil {
		logger = slog.Default()
	}
	srv := server.NewBgpServer(server.LoggerOption(slogAdapter{logger}))
	go srv.Serve()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: cfg.ASN, RouterId: cfg.RouterID.String(),
		ListenPort: -1}}); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	secs := uint64(hold / time.Second)
	for _, p := range cfg.Peers {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf:   &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN},
			Timers: &api.Timers{Config: &api.TimersConfig{HoldTime: secs, KeepaliveInterval: max(secs/3, 1), ConnectRetry: 1}},
			// Only IPv4 unicast: the /32s.
			AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: ipv4Unicast, Enabled: true}}},
		}}); err != nil {
			srv.Stop()
			return nil, fmt.Errorf("bgp: peer %v: %w", p.Address, err)
		}
	}
	return &Speaker{srv: srv, nextHop: cfg.NextHop.String(), paths: map[netip.Addr]*api.Path{}}, nil
}

func (s *Speaker) path(eip netip.Addr) (*api.Path, error) {
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: eip.String(), PrefixLen: 32})
	if err != nil {
		return nil, err
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP: the gateway originates it
	if err != nil {
		return nil, err
	}
	hop, err := anypb.New(&api.NextHopAttribute{NextHop: s.nextHop})
	if err != nil {
		return nil, err
	}
	return &api.Path{Family: ipv4Unicast, Nlri: nlri, Pattrs: []*anypb.Any{origin, hop}}, nil
}

// Announce makes eips the announced set: the new ones announced, the others
// withdrawn.
func (s *Speaker) Announce(ctx context.Context, eips []netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[netip.Addr]bool{}
	for _, e := range eips {
		want[e] = true
	}
	var errs []error
	for e, p := range s.paths {
		if !want[e] {
			if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{Family: ipv4Unicast, Path: p}); err != nil {
				errs = append(errs, fmt.Errorf("bgp: withdraw %v: %w", e, err))
				continue
			}
			delete(s.paths, e)
		}
	}
	for e := range want {
		if _, ok := s.paths[e]; ok {
			continue
		}
		p, err := s.path(e)
		if err == nil {
			_, err = s.srv.AddPath(ctx, &api.AddPathRequest{Path: p})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("bgp: announce %v: %w", e, err))
			continue
		}
		s.paths[e] = p
	}
	return errors.Join(errs...)
}

// Announced lists the announced EIPs, sorted.
func (s *Speaker) Announced() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Addr, 0, len(s.paths))
	for e := range s.paths {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Established counts the peers with an established session.
func (s *Speaker) Established(ctx context.Context) (int, error) {
	n := 0
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED {
			n++
		}
	})
	return n, err
}

// Stop closes the sessions (the peers withdraw every route at once) and the speaker.
func (s *Speaker) Stop(ctx context.Context) error {
	err := s.srv.StopBgp(ctx, &api.StopBgpRequest{})
	s.srv.Stop()
	return err
}

// slogAdapter gives GoBGP's log to eipd's.
type slogAdapter struct{ l *slog.Logger }

func attrs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, k, v)
	}
	return out
}

func (a slogAdapter) Panic(msg string, f gobgplog.Fields) { a.l.Error("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) Fatal(msg string, f gobgplog.Fields) { a.l.Error("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) Error(msg string, f gobgplog.Fields) { a.l.Error("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) Warn(msg string, f gobgplog.Fields)  { a.l.Warn("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) Info(msg string, f gobgplog.Fields)  { a.l.Info("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) Debug(msg string, f gobgplog.Fields) { a.l.Debug("bgp: "+msg, attrs(f)...) }
func (a slogAdapter) SetLevel(gobgplog.LogLevel)          {}
func (a slogAdapter) GetLevel() gobgplog.LogLevel         { return gobgplog.InfoLevel }
