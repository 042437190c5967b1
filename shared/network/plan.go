// Package network plans the subnets of a deployment's VPC: one private and one public subnet
// per Availability Zone, derived only from the VPC CIDR and the zone IDs, so that the same
// settings always produce the same network (a retried or re-run provisioning must not move
// subnets).
//
// The VPC is cut into quarters. Quarters 0 to 2 are the private subnets, one per zone,
// because pods take their IPs from there (VPC CNI): 3/4 of the VPC. The last quarter is cut
// into four: three public subnets (NAT gateways and load balancers only) and one spare
// sixteenth left unallocated for growth. For a /16 that is private /18s and public /20s; for
// the smallest allowed VPC, a /23, private /25s and public /27s, which is still the /27 that
// Elastic Load Balancing requires of its subnets (AWS's absolute minimum is /28).
package network

import (
	"fmt"
	"net/netip"
	"slices"
)

// Tier says what a subnet is for.
type Tier string

const (
	Private Tier = "private" // nodes and pods; egress through NAT
	Public  Tier = "public"  // NAT gateways and internet-facing load balancers
)

// Subnet is one planned subnet. Index is the position of its zone in the deployment's zone
// list (0..2), which the infrastructure template uses to name and order subnets.
type Subnet struct {
	Tier   Tier
	ZoneID string
	CIDR   string
	Index  int
}

// Plan is the subnet layout of one VPC. Subnets are ordered private az[0..2], then public
// az[0..2].
type Plan struct {
	VPCCIDR string
	Subnets []Subnet
}

const (
	// ZoneCount is the number of zones a plan spans.
	ZoneCount = 3
	// LargestVPC and SmallestVPC are the prefix lengths a plan accepts.
	LargestVPC  = 16
	SmallestVPC = 23
	// privateExtraBits and publicExtraBits are how much longer each tier's prefix is than
	// the VPC's (a quarter and a sixteenth of the VPC).
	privateExtraBits = 2
	publicExtraBits  = 4
)

// NewPlan splits vpcCIDR for the three zones. It checks only what the plan needs (an IPv4
// network from /16 to /23, three distinct non-empty zone IDs); the settings package owns the
// fuller rules.
func NewPlan(vpcCIDR string, zoneIDs []string) (Plan, error) {
	vpc, err := netip.ParsePrefix(vpcCIDR)
	switch {
	case err != nil || !vpc.Addr().Is4():
		return Plan{}, fmt.Errorf("network: vpcCidr %q: must be an IPv4 CIDR such as 10.0.0.0/16", vpcCIDR)
	case vpc != vpc.Masked():
		return Plan{}, fmt.Errorf("network: vpcCidr %q: host bits must be zero: the network is %s", vpcCIDR, vpc.Masked())
	case vpc.Bits() < LargestVPC || vpc.Bits() > SmallestVPC:
		return Plan{}, fmt.Errorf("network: vpcCidr %q: prefix must be /%d to /%d", vpcCIDR, LargestVPC, SmallestVPC)
	}
	if len(zoneIDs) != ZoneCount {
		return Plan{}, fmt.Errorf("network: zoneIds %q: must list exactly %d zones", zoneIDs, ZoneCount)
	}
	for i, z := range zoneIDs {
		if z == "" {
			return Plan{}, fmt.Errorf("network: zoneIds[%d] %q: must not be empty", i, z)
		}
		if slices.Index(zoneIDs, z) < i {
			return Plan{}, fmt.Errorf("network: zoneIds[%d] %q: must not repeat a zone", i, z)
		}
	}

	plan := Plan{VPCCIDR: vpc.String(), Subnets: make([]Subnet, 0, 2*ZoneCount)}
	for i, z := range zoneIDs {
		plan.Subnets = append(plan.Subnets, Subnet{Tier: Private, ZoneID: z, Index: i,
			CIDR: nth(vpc, privateExtraBits, i).String()})
	}
	// Public subnets are the first three sixteenths of the last quarter: sixteenths 12..14.
	for i, z := range zoneIDs {
		plan.Subnets = append(plan.Subnets, Subnet{Tier: Public, ZoneID: z, Index: i,
			CIDR: nth(vpc, publicExtraBits, 12+i).String()})
	}
	return plan, nil
}

// nth returns the n-th block of prefix length parent.Bits()+extraBits inside parent. Callers
// keep n below 1<<extraBits and parent.Bits()+extraBits <= 32.
func nth(parent netip.Prefix, extraBits, n int) netip.Prefix {
	bits := parent.Bits() + extraBits
	base := parent.Addr().As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	v += uint32(n) << (32 - bits)
	addr := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.PrefixFrom(addr, bits)
}

// Private returns the private subnets in zone order.
func (p Plan) Private() []Subnet { return p.tier(Private) }

// Public returns the public subnets in zone order.
func (p Plan) Public() []Subnet { return p.tier(Public) }

func (p Plan) tier(t Tier) []Subnet {
	var out []Subnet
	for _, s := range p.Subnets {
		if s.Tier == t {
			out = append(out, s)
		}
	}
	return out
}

// Spare returns the block of the VPC the plan leaves unallocated for growth (a sixteenth of
// the VPC, after the public subnets). It is empty for a zero Plan.
func (p Plan) Spare() string {
	vpc, err := netip.ParsePrefix(p.VPCCIDR)
	if err != nil {
		return ""
	}
	return nth(vpc, publicExtraBits, 15).String()
}
