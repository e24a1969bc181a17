// Package eipd assembles the daemon: configuration, credentials, the store, the
// dataplane, the reconciler and the API server. cmd/eipd only calls Run.
package eipd

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/eipgw/eipgw/control/api"
	"github.com/eipgw/eipgw/control/bgp"
	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/dataplane"
)

// Interface is one interface the gateway runs on.
type Interface struct {
	Name string `json:"interface"`
	Hook string `json:"hook"` // xdp, tc, tcx or clsact; default xdp
}

// Config is eipd's configuration file (JSON; see examples/eipd.json and docs/eipd.md).
type Config struct {
	Uplink            Interface `json:"uplink"`
	VPC               Interface `json:"vpc"`
	Pools             []string  `json:"pools"`
	Region            string    `json:"region"`
	Listen            string    `json:"listen"`
	MetricsListen     string    `json:"metrics_listen"`
	MaxConnections    int       `json:"max_connections"`
	CredentialsFile   string    `json:"credentials_file"`
	StateDir          string    `json:"state_dir"`
	BPFFSDir          string    `json:"bpffs_dir"`
	MaxBindings       uint32    `json:"max_bindings"`
	MaxSources        uint32    `json:"max_sources"`
	TimestampWindow   string    `json:"timestamp_window"`
	ReconcileInterval string    `json:"reconcile_interval"`
	// MonitorRetention is how long each EIP's per-minute traffic is kept for
	// DescribeEipMonitorData (at most 30 days).
	MonitorRetention string `json:"monitor_retention"`
	// EIPGateway is the gateway's VPC-side address that cut-through instances route
	// their EIP traffic to (DescribeEipGatewayInfo's IpGw); optional.
	EIPGateway string `json:"eip_gateway"`
	// Nat configures NAT gateways (see NatSettings).
	Nat NatSettings `json:"nat"`
	// TLS makes the API listener serve HTTPS. Without it the API is plain HTTP, which
	// eipd serves only on a loopback address unless AllowPlainHTTP says otherwise.
	TLS *TLSConfig `json:"tls,omitempty"`
	// AllowPlainHTTP lets a listener on a non-loopback address serve plain HTTP
	// (behind a TLS-terminating proxy, or in a lab): signatures then cross the
	// network readable, and their requests with them.
	AllowPlainHTTP bool `json:"allow_plain_http,omitempty"`
	// SpecialPurposeSources are the prefixes refused as a source from the internet,
	// and the only destinations untranslated VPC traffic may be forwarded to;
	// absent: dataplane.DefaultSpecialPurpose (RFC 6890), [] for none.
	SpecialPurposeSources *[]string `json:"special_purpose_sources,omitempty"`
	// Store selects where the state lives: the state file in StateDir (bbolt, one
	// gateway) when absent, or an etcd shared by a cluster of gateways.
	Store *StoreSettings `json:"store,omitempty"`
	// BGP, when set, announces the EIPs this gateway carries to upstream routers.
	BGP *BGPSettings `json:"bgp,omitempty"`

	nat               dataplane.NatConfig
	edge              dataplane.EdgeConfig
	natCollect        time.Duration
	pools             []netip.Prefix
	eipGateway        netip.Addr
	apiLimits         api.Limits
	timestampWindow   time.Duration
	reconcileInterval time.Duration
	monitorRetention  time.Duration
}

// TLSConfig names the API's certificate and key (PEM), read again on SIGHUP.
type TLSConfig struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// BGPSettings is the config's bgp section (docs/cluster.md).
type BGPSettings struct {
	ASN      uint32 `json:"asn"`
	RouterID string `json:"router_id"`
	// NextHop is this gateway's address on the routers' network: every EIP's next hop.
	NextHop  string    `json:"next_hop"`
	Peers    []BGPPeer `json:"peers"`
	HoldTime string    `json:"hold_time,omitempty"` // default 3s
	speaker  bgp.Config
}

// BGPPeer is an upstream router.
type BGPPeer struct {
	Address string `json:"address"`
	ASN     uint32 `json:"asn"`
}

func (b *BGPSettings) check() []error {
	var errs []error
	c := bgp.Config{ASN: b.ASN}
	if b.ASN == 0 {
		errs = append(errs, errors.New("bgp.asn is required"))
	}
	for _, f := range []struct {
		name, v string
		into    *netip.Addr
	}{{"bgp.router_id", b.RouterID, &c.RouterID}, {"bgp.next_hop", b.NextHop, &c.NextHop}} {
		a, err := netip.ParseAddr(f.v)
		if err != nil || !a.Is4() {
			errs = append(errs, fmt.Errorf("%s: %q is not an IPv4 address", f.name, f.v))
		}
		*f.into = a
	}
	if len(b.Peers) == 0 {
		errs = append(errs, errors.New("bgp.peers: at least one is required"))
	}
	for i, p := range b.Peers {
		a, err := netip.ParseAddr(p.Address)
		if err != nil || !a.Is4() || p.ASN == 0 {
			errs = append(errs, fmt.Errorf("bgp.peers[%d]: want an IPv4 address and an ASN", i))
		}
		c.Peers = append(c.Peers, bgp.Peer{Address: a, ASN: p.ASN})
	}
	if b.HoldTime != "" {
		d, err := time.ParseDuration(b.HoldTime)
		if err != nil || d < 3*time.Second {
			errs = append(errs, fmt.Errorf("bgp.hold_time: %q is not a duration of 3s or more", b.HoldTime))
		}
		c.HoldTime = d
	}
	b.speaker = c
	return errs
}

// StoreSettings is the config's store section.
type StoreSettings struct {
	Etcd *EtcdSettings `json:"etcd"`
}

// EtcdSettings says where a cluster's etcd is and how to reach it.
type EtcdSettings struct {
	Endpoints []string `json:"endpoints"`
	// Prefix keeps this cluster's keys apart from others' in one etcd ("/eipgw").
	Prefix string `json:"prefix"`
	// Timeout bounds each request (default 2s): past it, etcd counts as
	// unreachable and the request is refused.
	Timeout string `json:"timeout"`
	// TLS, when set, reaches etcd over TLS: the CA that signed its certificate, and
	// this gateway's client certificate when etcd asks for one.
	TLS *EtcdTLS `json:"tls,omitempty"`
	// Name is this gateway's name in the cluster (default: the host name); each
	// member's must differ.
	Name string `json:"name,omitempty"`
	// LeaseTTL is how long this gateway stays a member after it stops renewing (it
	// died or lost etcd): then the others take its NAT gateways (default 2s, etcd's
	// least).
	LeaseTTL string `json:"lease_ttl,omitempty"`

	timeout, leaseTTL time.Duration
}

// EtcdTLS names the files of an etcd TLS connection.
type EtcdTLS struct {
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// etcdConfig is the store's configuration from the settings.
func (s *EtcdSettings) etcdConfig() (store.EtcdConfig, error) {
	c := store.EtcdConfig{Endpoints: s.Endpoints, Prefix: s.Prefix, Timeout: s.timeout}
	if s.TLS == nil {
		return c, nil
	}
	pem, err := os.ReadFile(s.TLS.CAFile)
	if err != nil {
		return c, fmt.Errorf("store.etcd.tls.ca_file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return c, fmt.Errorf("store.etcd.tls.ca_file %s: no certificate", s.TLS.CAFile)
	}
	c.TLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if s.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
		if err != nil {
			return c, fmt.Errorf("store.etcd.tls: %w", err)
		}
		c.TLS.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (s *EtcdSettings) check() []error {
	var errs []error
	if len(s.Endpoints) == 0 {
		errs = append(errs, errors.New("store.etcd.endpoints: at least one is required"))
	}
	s.timeout = 2 * time.Second
	if s.Timeout != "" {
		d, err := time.ParseDuration(s.Timeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("store.etcd.timeout: %q is not a positive duration", s.Timeout))
		}
		s.timeout = d
	}
	s.leaseTTL = 2 * time.Second
	if s.LeaseTTL != "" {
		d, err := time.ParseDuration(s.LeaseTTL)
		if err != nil || d < 2*time.Second {
			errs = append(errs, fmt.Errorf("store.etcd.lease_ttl: %q is not a duration of 2s or more", s.LeaseTTL))
		}
		s.leaseTTL = d
	}
	if s.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			errs = append(errs, fmt.Errorf("store.etcd.name: none given and no host name: %w", err))
		}
		s.Name = host
	}
	if s.TLS != nil && s.TLS.CAFile == "" {
		errs = append(errs, errors.New("store.etcd.tls.ca_file is required with tls"))
	}
	if s.TLS != nil && (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		errs = append(errs, errors.New("store.etcd.tls: cert_file and key_file go together"))
	}
	return errs
}

// LoadConfig reads and checks a configuration file; every error names the field.
func LoadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c := &Config{Listen: "127.0.0.1:8080", MetricsListen: "127.0.0.1:9180", MaxConnections: api.DefaultLimits.MaxConnections, Region: "eipgw-1", StateDir: "/var/lib/eipgw",
		BPFFSDir: "/sys/fs/bpf/eipgw", TimestampWindow: "15m", ReconcileInterval: "10s", MonitorRetention: "24h",
		CredentialsFile: "/etc/eipgw/credentials.json"}
	dec := json.NewDecoder(bytesReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, c.check()
}

func (c *Config) check() error {
	var errs []error
	for _, i := range []*Interface{&c.Uplink, &c.VPC} {
		if i.Name == "" {
			errs = append(errs, errors.New("uplink.interface and vpc.interface are required"))
		}
		if i.Hook == "" {
			i.Hook = string(dataplane.HookXDP)
		}
		if _, err := dataplane.ParseHook(i.Hook); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Pools) == 0 {
		errs = append(errs, errors.New("pools: at least one EIP prefix is required"))
	}
	for _, p := range c.Pools {
		pfx, err := netip.ParsePrefix(p)
		if err != nil || !pfx.Addr().Is4() {
			errs = append(errs, fmt.Errorf("pools: %q is not an IPv4 prefix", p))
			continue
		}
		c.pools = append(c.pools, pfx.Masked())
	}
	if err := c.checkListen(); err != nil {
		errs = append(errs, err)
	}
	if c.BGP != nil {
		errs = append(errs, c.BGP.check()...)
	}
	if c.Store != nil {
		if c.Store.Etcd == nil {
			errs = append(errs, errors.New("store: etcd is the one store to configure (the state file needs no section)"))
		} else {
			errs = append(errs, c.Store.Etcd.check()...)
		}
	}
	c.apiLimits = api.DefaultLimits
	c.apiLimits.MaxConnections = c.MaxConnections
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("max_connections: %d, want at least 1", c.MaxConnections))
	}
	c.edge = dataplane.DefaultEdgeConfig()
	c.edge.EIPPools = c.pools
	if c.SpecialPurposeSources != nil {
		c.edge.SpecialPurpose = nil
		for _, p := range *c.SpecialPurposeSources {
			pfx, err := netip.ParsePrefix(p)
			if err != nil || !pfx.Addr().Is4() {
				errs = append(errs, fmt.Errorf("special_purpose_sources: %q is not an IPv4 prefix", p))
				continue
			}
			c.edge.SpecialPurpose = append(c.edge.SpecialPurpose, pfx.Masked())
		}
	}
	for name, n := range map[string]int{"pools": len(c.edge.EIPPools), "special_purpose_sources": len(c.edge.SpecialPurpose)} {
		if n > dataplane.MaxEdgePrefixes {
			errs = append(errs, fmt.Errorf("%s: %d prefixes, at most %d", name, n, dataplane.MaxEdgePrefixes))
		}
	}
	var err error
	if c.EIPGateway != "" {
		if c.eipGateway, err = netip.ParseAddr(c.EIPGateway); err != nil || !c.eipGateway.Is4() {
			errs = append(errs, fmt.Errorf("eip_gateway: %q is not an IPv4 address", c.EIPGateway))
		}
	}
	if c.timestampWindow, err = time.ParseDuration(c.TimestampWindow); err != nil || c.timestampWindow <= 0 {
		errs = append(errs, fmt.Errorf("timestamp_window: %q is not a positive duration", c.TimestampWindow))
	}
	if c.reconcileInterval, err = time.ParseDuration(c.ReconcileInterval); err != nil || c.reconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconcile_interval: %q is not a positive duration", c.ReconcileInterval))
	}
	if c.monitorRetention, err = time.ParseDuration(c.MonitorRetention); err != nil || c.monitorRetention < time.Hour ||
		c.monitorRetention > model.MonitorRetentionMax {
		errs = append(errs, fmt.Errorf("monitor_retention: %q is not a duration from 1h to 720h", c.MonitorRetention))
	}
	if c.nat, c.natCollect, err = c.Nat.natConfig(c.eipGateway); err != nil {
		errs = append(errs, err)
	}
	if c.StateDir == "" || c.BPFFSDir == "" || c.CredentialsFile == "" || c.Listen == "" || c.MetricsListen == "" {
		errs = append(errs, errors.New("state_dir, bpffs_dir, credentials_file, listen and metrics_listen must not be empty"))
	}
	return errors.Join(errs...)
}

// checkListen refuses a plain-HTTP API on a non-loopback address unless asked for.
func (c *Config) checkListen() error {
	if c.TLS != nil {
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			return errors.New("tls: cert_file and key_file are both required")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if addr, err := netip.ParseAddr(host); (err == nil && addr.IsLoopback()) || host == "localhost" || c.AllowPlainHTTP {
		return nil
	}
	return fmt.Errorf("listen: %q is not a loopback address, and without tls the API would be plain HTTP: configure tls (cert_file, key_file), or set allow_plain_http", c.Listen)
}
