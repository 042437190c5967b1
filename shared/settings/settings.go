// Package settings holds the settings of one BYOC deployment, their defaults and their
// validation, including the seed's rules that region, VPC CIDR and zones cannot be changed
// once chosen. It is pure: no AWS calls, so every rule is unit-tested.
package settings

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/byocloud/byoc/shared/contract"
)

// Settings are what a customer chooses for a deployment (the seed's "Setup BYOC
// Infrastructure" step) plus the values byoc derives from them.
type Settings struct {
	CustomerID           string   `json:"customerId"`
	AccountID            string   `json:"accountId"`
	Region               string   `json:"region"`
	VPCCIDR              string   `json:"vpcCidr"`
	ZoneIDs              []string `json:"zoneIds"`
	ResourcePrefix       string   `json:"resourcePrefix"`
	AcknowledgeSmallCIDR bool     `json:"acknowledgeSmallCidr,omitempty"`
	ServerPodLimit       int      `json:"serverPodLimit,omitempty"` // set to 30 for a /23, 0 = unlimited
}

const (
	// DefaultVPCCIDR is the seed's default BYOC VPC range.
	DefaultVPCCIDR = "10.0.0.0/16"
	// DefaultResourcePrefix is the seed's prefix for resource names.
	DefaultResourcePrefix = contract.DefaultPrefix
	// ZoneCount is how many Availability Zones every deployment spans.
	ZoneCount = 3
	// SmallCIDRServerPodLimit is the seed's cap on server pods in a /23 VPC.
	SmallCIDRServerPodLimit = 30
	// IDLength is the length of the generated deployment id in "<prefix>-<id>" names.
	IDLength = 13
	// MaxResourcePrefixLength keeps "<prefix>-<13-char id>-<role suffix>" within IAM's
	// 64-character role-name limit for the longest role suffix byoc uses
	// ("load-balancer-controller", 24 characters): 24 + 1 + 13 + 1 + 24 = 63.
	MaxResourcePrefixLength = 24
	// MaxCustomerIDLength bounds the customer id, which appears in keys and tags.
	MaxCustomerIDLength = 40
)

var (
	accountIDPattern  = regexp.MustCompile(`^[0-9]{12}$`)
	customerIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	prefixPattern     = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
)

// Rules phrased for FieldError.Rule; tests match on them, and callers may too.
const (
	ruleAccountID  = "must be exactly 12 digits"
	ruleCustomerID = "must be 1 to 40 characters of lowercase letters, digits and '-', starting and ending with a letter or digit"
	rulePrefix     = "must be 1 to 24 characters of lowercase letters, digits and '-', start with a letter, end with a letter or digit, " +
		"contain no \"--\" and not start with \"sthree-\" or \"amzn-s3-demo-\", so that <prefix>-<13-char id> is a valid EKS cluster name, " +
		"S3 bucket prefix and IAM role name prefix"
	ruleZoneCount    = "must list exactly 3 AZ IDs (or none, for the region's defaults)"
	ruleZoneDistinct = "must not repeat an AZ ID"
)

// Normalize fills in defaults (VPC CIDR, zones, resource prefix), derives the server-pod
// limit, and validates everything. It reports every broken rule at once as a
// *ValidationError, and returns the input unchanged when there are any.
func (r Rules) Normalize(in Settings) (Settings, error) {
	out := in
	out.ZoneIDs = slices.Clone(in.ZoneIDs)
	var c collector

	if !customerIDPattern.MatchString(in.CustomerID) || len(in.CustomerID) > MaxCustomerIDLength {
		c.add("customerId", in.CustomerID, ruleCustomerID)
	}
	if !accountIDPattern.MatchString(in.AccountID) {
		c.add("accountId", in.AccountID, ruleAccountID)
	}

	regionOK := false
	switch regions := r.Regions(); {
	case !slices.Contains(regions, in.Region):
		c.add("region", in.Region, "must be one of the supported regions: "+strings.Join(regions, ", "))
	default:
		if _, known := lookupRegion(in.Region); !known {
			c.add("region", in.Region, "is configured as supported but byoc has no zone data for it; known: "+strings.Join(KnownRegions(), ", "))
		} else {
			regionOK = true
		}
	}

	if out.VPCCIDR == "" {
		out.VPCCIDR = DefaultVPCCIDR
	}
	if cidr, prefixLen, err := CheckVPCCIDR(out.VPCCIDR, in.AcknowledgeSmallCIDR); err != nil {
		c.add("vpcCidr", out.VPCCIDR, err.Error())
	} else {
		out.VPCCIDR = cidr
		out.ServerPodLimit = 0
		if prefixLen == SmallCIDRPrefix {
			out.ServerPodLimit = SmallCIDRServerPodLimit
		}
	}

	if len(out.ZoneIDs) == 0 {
		if regionOK {
			out.ZoneIDs, _ = DefaultZoneIDs(in.Region)
		}
	} else {
		checkZones(&c, out.ZoneIDs, in.Region, regionOK)
	}

	if out.ResourcePrefix == "" {
		out.ResourcePrefix = DefaultResourcePrefix
	}
	if !validPrefix(out.ResourcePrefix) {
		c.add("resourcePrefix", out.ResourcePrefix, rulePrefix)
	}

	if err := c.err(); err != nil {
		return in, err
	}
	return out, nil
}

func checkZones(c *collector, zones []string, region string, regionOK bool) {
	if len(zones) != ZoneCount {
		c.add("zoneIds", strings.Join(zones, ","), ruleZoneCount)
	}
	for i, z := range zones {
		field := fmt.Sprintf("zoneIds[%d]", i)
		if slices.Index(zones, z) < i {
			c.add(field, z, ruleZoneDistinct)
			continue
		}
		zoneRegion, known := ZoneRegion(z)
		switch {
		case !known:
			if regionOK {
				c.add(field, z, "must be an AZ ID of "+region+": one of "+strings.Join(usableZones(region), ", "))
			} else {
				c.add(field, z, "must be an AZ ID such as use1-az1 of the deployment's region")
			}
		case regionOK && zoneRegion != region:
			c.add(field, z, fmt.Sprintf("belongs to %s, must be an AZ ID of %s: one of %s", zoneRegion, region, strings.Join(usableZones(region), ", ")))
		default:
			if ok, why := ZoneUsable(z); !ok {
				c.add(field, z, why+"; choose another AZ ID of "+zoneRegion+": one of "+strings.Join(usableZones(zoneRegion), ", "))
			}
		}
	}
}

func usableZones(region string) []string {
	rz, _ := lookupRegion(region)
	return rz.usable
}

func validPrefix(p string) bool {
	return len(p) <= MaxResourcePrefixLength &&
		prefixPattern.MatchString(p) &&
		!strings.Contains(p, "--") &&
		// S3 reserves these bucket-name prefixes.
		!strings.HasPrefix(p, "sthree-") && !strings.HasPrefix(p, "amzn-s3-demo-")
}

// CheckUpdate enforces the seed's "cannot be changed later": a settings update must keep
// region, VPC CIDR and zones (same zones in the same order, since subnet i is planned for
// zone i). byoc adds accountId (the deployment lives in that account), customerId (the
// deployment's identity) and resourcePrefix (the bootstrap stack's IAM policies are scoped to
// "<prefix>-*" names and the EKS cluster is named with it, so a change would orphan the
// cluster). Both sides should be normalized. Every change is reported, as a
// *ValidationError.
func CheckUpdate(current, proposed Settings) error {
	var c collector
	immutable := func(field, was, now string) {
		if was != now {
			c.add(field, now, fmt.Sprintf("cannot be changed after the deployment is created (is %q)", was))
		}
	}
	immutable("customerId", current.CustomerID, proposed.CustomerID)
	immutable("accountId", current.AccountID, proposed.AccountID)
	immutable("region", current.Region, proposed.Region)
	immutable("vpcCidr", canonicalCIDR(current.VPCCIDR), canonicalCIDR(proposed.VPCCIDR))
	if !slices.Equal(current.ZoneIDs, proposed.ZoneIDs) {
		c.add("zoneIds", strings.Join(proposed.ZoneIDs, ","),
			fmt.Sprintf("cannot be changed after the deployment is created (is %q)", strings.Join(current.ZoneIDs, ",")))
	}
	immutable("resourcePrefix", current.ResourcePrefix, proposed.ResourcePrefix)
	return c.err()
}

// Update applies an update request to a deployment's settings: fields the request leaves
// empty keep their current value, immutable fields must not change, and the result is
// validated as a whole (so dropping acknowledgeSmallCidr on a /23 is refused).
func (r Rules) Update(current, proposed Settings) (Settings, error) {
	merged := proposed
	keep := func(dst *string, cur string) {
		if *dst == "" {
			*dst = cur
		}
	}
	keep(&merged.CustomerID, current.CustomerID)
	keep(&merged.AccountID, current.AccountID)
	keep(&merged.Region, current.Region)
	keep(&merged.VPCCIDR, current.VPCCIDR)
	keep(&merged.ResourcePrefix, current.ResourcePrefix)
	if len(merged.ZoneIDs) == 0 {
		merged.ZoneIDs = slices.Clone(current.ZoneIDs)
	}
	if err := CheckUpdate(current, merged); err != nil {
		return current, err
	}
	out, err := r.Normalize(merged)
	if err != nil {
		return current, err
	}
	return out, nil
}
