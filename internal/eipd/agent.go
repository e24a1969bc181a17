package eipd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/netcfg"
	"github.com/vishvananda/netlink"
)

// AgentConfig configures `eipd agent`, which runs inside an instance and keeps one
// cut-through ENI's interface configured as the API says (docs/eipd.md).
type AgentConfig struct {
	Endpoint           string `json:"endpoint"`
	AccessKeyID        string `json:"access_key_id"`
	AccessKeySecret    string `json:"access_key_secret"`
	NetworkInterfaceID string `json:"network_interface_id"`
	Interface          string `json:"interface"`         // the ENI's interface here
	PrivateAddress     string `json:"private_address"`   // its private address, CIDR
	PrimaryInterface   string `json:"primary_interface"` // the primary ENI's interface
	PrimaryGateway     string `json:"primary_gateway"`   // next hop of 100.64.0.0/10
	Table              int    `json:"table"`
	RulePriority       int    `json:"rule_priority"`
	PollInterval       string `json:"poll_interval"`
	// CAFile is a PEM file of certificates to trust for an https endpoint besides the
	// system's (the gateway's self-signed certificate).
	CAFile string `json:"ca_file,omitempty"`
	// StateFile keeps what the agent applied and what it found before, so that after
	// a restart it still undoes exactly; empty keeps it in memory only.
	StateFile string `json:"state_file,omitempty"`
}

// agentState is what the state file holds.
type agentState struct {
	Applied  *netcfg.Plan  `json:"applied"`
	Complete bool          `json:"complete"` // false: applying it failed half-way
	Saved    *netcfg.Saved `json:"saved"`
}

func (c *AgentConfig) loadState() (agentState, error) {
	var st agentState
	if c.StateFile == "" {
		return st, nil
	}
	raw, err := os.ReadFile(c.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("agent state: %w", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("agent state %s: %w", c.StateFile, err)
	}
	return st, nil
}

// saveState writes the state whole (a temporary file renamed into place), or removes
// the file when nothing is applied.
func (c *AgentConfig) saveState(st agentState) error {
	if c.StateFile == "" {
		return nil
	}
	if st.Applied == nil {
		if err := os.Remove(c.StateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("agent state: %w", err)
		}
		return nil
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := c.StateFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	if err := os.Rename(tmp, c.StateFile); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	return nil
}

// LoadAgentConfig reads and checks an agent configuration.
func LoadAgentConfig(path string) (*AgentConfig, netcfg.Plan, time.Duration, error) {
	c := &AgentConfig{Table: 100, RulePriority: 1000, PollInterval: "2s"}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, netcfg.Plan{}, 0, fmt.Errorf("read agent config: %w", err)
	}
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, netcfg.Plan{}, 0, fmt.Errorf("agent config %s: %w", path, err)
	}
	base := netcfg.Plan{Interface: c.Interface, Primary: c.PrimaryInterface, Table: c.Table, RulePriority: c.RulePriority}
	if base.PrivateAddr, err = netip.ParsePrefix(c.PrivateAddress); err != nil {
		return nil, base, 0, fmt.Errorf("agent config: private_address: %w", err)
	}
	if base.PrimaryGateway, err = netip.ParseAddr(c.PrimaryGateway); err != nil {
		return nil, base, 0, fmt.Errorf("agent config: primary_gateway: %w", err)
	}
	poll, err := time.ParseDuration(c.PollInterval)
	if err != nil || poll <= 0 {
		return nil, base, 0, fmt.Errorf("agent config: poll_interval %q", c.PollInterval)
	}
	if c.Endpoint == "" || c.AccessKeyID == "" || c.AccessKeySecret == "" || c.NetworkInterfaceID == "" {
		return nil, base, 0, fmt.Errorf("agent config: endpoint, access keys and network_interface_id are required")
	}
	return c, base, poll, nil
}

// RunAgent polls the API and applies the ENI's plan until ctx ends. What it applied
// stays when it stops, as the dataplane does when eipd stops.
func RunAgent(ctx context.Context, c *AgentConfig, base netcfg.Plan, poll time.Duration, log *slog.Logger) error {
	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer nl.Close()
	hc, err := api.NewHTTPClient(c.CAFile)
	if err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	client := &api.Client{Endpoint: c.Endpoint, AccessKeyID: c.AccessKeyID, AccessSecret: c.AccessKeySecret, HTTP: hc}
	st, err := c.loadState()
	if err != nil {
		return err
	}
	// applied is what was applied, or attempted (complete false): an attempt that
	// failed half-way is retried, or undone, with the record of its first try.
	applied, saved := st.Applied, st.Saved
	complete := st.Complete
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		want, err := agentPlan(client, c.NetworkInterfaceID, base)
		if err != nil {
			log.Error("agent: ask the API", "error", err)
		} else if !samePlan(applied, want) || !complete {
			if applied != nil && !samePlan(applied, want) {
				if err := netcfg.Undo(nl, *applied, saved); err != nil {
					log.Error("agent: undo", "error", err)
				} else {
					log.Info("agent: undone", "interface", applied.Interface, "eips", applied.EIPs)
					applied, saved, complete = nil, nil, false
					if err := c.saveState(agentState{}); err != nil {
						log.Error("agent: state", "error", err)
					}
				}
			}
			if want != nil && (applied == nil || samePlan(applied, want)) {
				s, err := netcfg.Apply(nl, *want)
				if saved == nil {
					saved = s // the state before the first try, kept across retries
				}
				applied, complete = want, err == nil
				if serr := c.saveState(agentState{Applied: applied, Complete: complete, Saved: saved}); serr != nil {
					log.Error("agent: state", "error", serr)
				}
				if err != nil {
					log.Error("agent: apply", "error", err)
				} else {
					log.Info("agent: applied", "interface", want.Interface, "mode", want.Mode, "eips", want.EIPs)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// agentPlan asks the API which cut-through EIPs the ENI has; nil when none.
func agentPlan(client *api.Client, eni string, base netcfg.Plan) (*netcfg.Plan, error) {
	resp, err := client.Call("DescribeEipAddresses", map[string]string{
		"AssociatedInstanceType": "NetworkInterface", "AssociatedInstanceId": eni, "PageSize": "100"})
	if err != nil {
		return nil, err
	}
	list, _ := resp["EipAddresses"].(map[string]any)["EipAddress"].([]any)
	p := base
	for _, raw := range list {
		e, _ := raw.(map[string]any)
		mode, _ := e["Mode"].(string)
		status, _ := e["Status"].(string)
		ip, _ := e["IpAddress"].(string)
		if (mode != netcfg.ModeBinded && mode != netcfg.ModeMulti) || (status != "InUse" && status != "Associating") {
			continue
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("the API gave EIP %q", ip)
		}
		p.Mode = mode
		p.EIPs = append(p.EIPs, a)
	}
	if len(p.EIPs) == 0 {
		return nil, nil
	}
	gw, err := client.Call("DescribeEipGatewayInfo", map[string]string{"InstanceId": eni})
	if err != nil {
		return nil, err
	}
	infos, _ := gw["EipInfos"].(map[string]any)["EipInfo"].([]any)
	for _, raw := range infos {
		info, _ := raw.(map[string]any)
		if g, err := netip.ParseAddr(fmt.Sprint(info["IpGw"])); err == nil {
			p.EIPGateway = g
			break
		}
	}
	if !p.EIPGateway.IsValid() {
		return nil, fmt.Errorf("the API gave no EIP gateway for %s (eipd's eip_gateway)", eni)
	}
	slices.SortFunc(p.EIPs, func(a, b netip.Addr) int { return a.Compare(b) })
	return &p, nil
}

func samePlan(a, b *netcfg.Plan) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Mode == b.Mode && a.EIPGateway == b.EIPGateway && slices.Equal(a.EIPs, b.EIPs)
}
