package settings

import (
	"errors"
	"fmt"
	"net/netip"
)

const (
	// LargestPrefix and SmallestPrefix bound the VPC size; SmallCIDRPrefix is allowed only
	// with acknowledgeSmallCidr. The seed asks for at least a /22 and allows a /23 limited to
	// 30 server pods.
	LargestPrefix   = 16
	SmallestPrefix  = 22
	SmallCIDRPrefix = 23
)

// privateRanges are RFC 1918's ranges, the only ones a BYOC VPC may use.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

var errSize = errors.New("prefix must be /16 to /22 (/23 only with acknowledgeSmallCidr)")

// CheckVPCCIDR validates a VPC CIDR against the seed's rules and returns it in canonical
// form with its prefix length. The error text is the rule that was broken.
func CheckVPCCIDR(cidr string, acknowledgeSmall bool) (string, int, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return "", 0, errors.New("must be an IPv4 CIDR such as 10.0.0.0/16")
	}
	if p != p.Masked() {
		return "", 0, fmt.Errorf("host bits must be zero: the network is %s", p.Masked())
	}
	if !isPrivate(p) {
		return "", 0, errors.New("must lie within a private range: 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
	}
	switch bits := p.Bits(); {
	case bits >= LargestPrefix && bits <= SmallestPrefix:
	case bits == SmallCIDRPrefix && acknowledgeSmall:
	default:
		return "", 0, errSize
	}
	return p.String(), p.Bits(), nil
}

func isPrivate(p netip.Prefix) bool {
	for _, r := range privateRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// canonicalCIDR lets CheckUpdate compare CIDRs by meaning; unparsable values compare as
// written.
func canonicalCIDR(cidr string) string {
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.String()
	}
	return cidr
}
