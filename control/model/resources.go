package model

import "time"

// EIP statuses.
const (
	StatusAvailable     = "Available"
	StatusAssociating   = "Associating"
	StatusInUse         = "InUse"
	StatusUnassociating = "Unassociating"
	StatusReleasing     = "Releasing"
)

// Association instance types and modes.
const (
	TypeEcs       = "EcsInstance"
	TypeENI       = "NetworkInterface"
	TypeNat       = "Nat"
	TypeSLB       = "SlbInstance"
	TypeHaVip     = "HaVip"
	ModeNAT       = "NAT"
	ModeBinded    = "BINDED"
	ModeMulti     = "MULTI_BINDED"
	maxNatEIPs    = 20
	recoverWindow = 7 * 24 * time.Hour
)

// EIP is an elastic IP address and, when associated, what it is associated with.
type EIP struct {
	AllocationID       string    `json:"allocation_id"`
	IPAddress          string    `json:"ip_address"`
	Owner              string    `json:"owner"`
	Region             string    `json:"region"`
	Status             string    `json:"status"`
	Bandwidth          int       `json:"bandwidth"`
	InternetChargeType string    `json:"internet_charge_type"`
	InstanceChargeType string    `json:"instance_charge_type"`
	Name               string    `json:"name,omitempty"`
	Description        string    `json:"description,omitempty"`
	AllocatedAt        time.Time `json:"allocated_at"`
	InstanceType       string    `json:"instance_type,omitempty"`
	InstanceID         string    `json:"instance_id,omitempty"`
	PrivateIPAddress   string    `json:"private_ip_address,omitempty"`
	Mode               string    `json:"mode,omitempty"`
	ENIMAC             string    `json:"eni_mac,omitempty"` // cut-through modes: the ENI's MAC
	// BandwidthPackageID is the shared bandwidth the EIP is in: its traffic is held to
	// the package's Bandwidth, and its own waits until it leaves.
	BandwidthPackageID string `json:"bandwidth_package_id,omitempty"`
	// PackageIPBandwidth caps the EIP inside its package, Mbit/s
	// (ModifyCommonBandwidthPackageIpBandwidth); 0: only the package holds it.
	PackageIPBandwidth int    `json:"package_ip_bandwidth,omitempty"`
	ResourceGroupID    string `json:"resource_group_id,omitempty"`
	// DeletionProtection refuses ReleaseEipAddress until it is turned off.
	DeletionProtection bool  `json:"deletion_protection,omitempty"`
	Tags               []Tag `json:"tags,omitempty"`
}

// Released is an address released by its owner, recoverable by that owner only
// until Until; nobody else is given it meanwhile.
type Released struct {
	IPAddress string    `json:"ip_address"`
	Owner     string    `json:"owner"`
	Until     time.Time `json:"until"`
}

// Instance is an ECS instance the gateway serves.
type Instance struct {
	InstanceID      string `json:"instance_id"`
	Region          string `json:"region"`
	VpcID           string `json:"vpc_id"`
	Status          string `json:"status"`
	PrimaryENI      string `json:"primary_eni"`
	PublicIPAddress string `json:"public_ip_address,omitempty"` // a fixed public IP: no EIP then
}

// ENI is an elastic network interface: the primary one of an instance, or a
// secondary one, attached or not.
type ENI struct {
	ENIID        string   `json:"eni_id"`
	Region       string   `json:"region"`
	VpcID        string   `json:"vpc_id"`
	Primary      bool     `json:"primary"`
	InstanceID   string   `json:"instance_id,omitempty"`
	PrimaryIP    string   `json:"primary_ip"`
	SecondaryIPs []string `json:"secondary_ips,omitempty"`
	// MacAddress identifies the ENI at L2: the gateway translates the ENI's addresses,
	// and accepts its cut-through EIPs as source, only in frames from it. An ENI
	// without one sends nothing through the gateway (docs/security.md).
	MacAddress string `json:"mac_address,omitempty"`
}

// HaVip is a private address that moves between instances; an EIP associated with
// it follows it to whichever instance holds it.
type HaVip struct {
	HaVipID   string   `json:"havip_id"`
	Region    string   `json:"region"`
	VpcID     string   `json:"vpc_id"`
	IPAddress string   `json:"ip_address"`
	Status    string   `json:"status"` // Available, or InUse once an instance is associated
	Instances []string `json:"instances,omitempty"`
	// ResourceGroupID and Tags are the caller's labels (MoveResourceGroup, TagResources).
	ResourceGroupID string    `json:"resource_group_id,omitempty"`
	Tags            []Tag     `json:"tags,omitempty"`
	VSwitchID       string    `json:"vswitch_id,omitempty"` // created in a vSwitch, its address from its block
	Name            string    `json:"name,omitempty"`
	Description     string    `json:"description,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
}

// SLB is a CLB instance, reached at its private VIP.
type SLB struct {
	LoadBalancerID string `json:"load_balancer_id"`
	Region         string `json:"region"`
	VpcID          string `json:"vpc_id"`
	Address        string `json:"address"`
	// MacAddress is where the VIP's frames come from: without it, the gateway
	// translates nothing the load balancer sends.
	MacAddress string `json:"mac_address,omitempty"`
}

// NatGateway is a logical NAT gateway; its SNAT and DNAT entries come with the
// NAT-gateway work.
type NatGateway struct {
	NatGatewayID string `json:"nat_gateway_id"`
	Region       string `json:"region"`
	VpcID        string `json:"vpc_id"`
	Name         string `json:"name,omitempty"`
	Description  string `json:"description,omitempty"`
	// ResourceGroupID and Tags are the caller's labels (MoveResourceGroup, TagResources).
	ResourceGroupID string `json:"resource_group_id,omitempty"`
	Tags            []Tag  `json:"tags,omitempty"`
	// InternetChargeType is the billing method the creator chose (PayByLcu or
	// PayBySpec): eipgw bills nothing, it is kept so that reads return what was set.
	InternetChargeType string `json:"internet_charge_type,omitempty"`
	VSwitchID          string `json:"vswitch_id,omitempty"`
	// DeletionProtection refuses DeleteNatGateway until it is turned off.
	DeletionProtection bool `json:"deletion_protection,omitempty"`
}
