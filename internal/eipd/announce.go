package eipd

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/eipgw/eipgw/control/bgp"
	"github.com/eipgw/eipgw/control/cluster"
	"github.com/eipgw/eipgw/dataplane"
)

// announcer keeps a BGP speaker's announced EIPs to those the dataplane carries (1:1,
// cut-through, and the NAT gateways this gateway owns): none while the dataplane is
// not attached whole, or while this gateway holds no lease in its cluster.
type announcer struct {
	speaker *bgp.Speaker
	dp      *dataplane.Dataplane
	guard   *dataplaneGuard
	member  *cluster.Member // nil outside a cluster
	log     *slog.Logger
	kick    chan struct{}
}

// announceEvery is how often the announced set is compared with the dataplane besides
// after each pass.
const announceEvery = time.Second

func newAnnouncer(s *bgp.Speaker, dp *dataplane.Dataplane, g *dataplaneGuard, m *cluster.Member, log *slog.Logger) *announcer {
	return &announcer{speaker: s, dp: dp, guard: g, member: m, log: log, kick: make(chan struct{}, 1)}
}

// poke asks for a comparison soon (after a reconcile pass), never blocking.
func (a *announcer) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *announcer) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(announceEvery)
	defer tick.Stop()
	for {
		a.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.kick:
		}
	}
}

func (a *announcer) once(ctx context.Context) {
	var want []netip.Addr
	switch {
	case a.guard.ready() != nil:
		// Not attached whole: routers must send the traffic elsewhere.
	case a.member != nil && !a.member.Alive():
		// Out of the cluster: another member may own what this one carried.
	default:
		var err error
		if want, err = a.carried(); err != nil {
			a.log.Error("bgp: read the dataplane", "error", err)
			return
		}
	}
	if err := a.speaker.Announce(ctx, want); err != nil {
		a.log.Error("bgp: announce", "error", err)
	}
}

// carried lists the EIPs the dataplane carries.
func (a *announcer) carried() ([]netip.Addr, error) {
	bindings, err := a.dp.Bindings()
	if err != nil {
		return nil, err
	}
	cuts, err := a.dp.CutThroughs()
	if err != nil {
		return nil, err
	}
	nat, err := a.dp.NatEIPs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(bindings)+len(cuts)+len(nat))
	for _, b := range bindings {
		out = append(out, b.EIP)
	}
	for _, c := range cuts {
		out = append(out, c.EIP)
	}
	return append(out, nat...), nil
}
