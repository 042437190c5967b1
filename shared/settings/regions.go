package settings

import (
	"fmt"
	"slices"
	"strings"
)

// regionZones is what byoc knows about one AWS region's Availability Zones, by AZ ID. AZ IDs
// (not names like "us-east-1a") are used because names map to different physical zones in
// different accounts, and the seed asks customers to align zones across accounts for peering.
type regionZones struct {
	region string
	prefix string // AZ ID prefix: "use1" for us-east-1
	// usable AZ IDs, in the order defaults are taken from.
	usable []string
	// unusable AZ IDs that exist in some accounts but cannot host an EKS deployment, with why.
	unusable map[string]string
}

// eksUnsupported is the reason EKS gives (UnsupportedAvailabilityZoneException) for the few
// zones its control plane cannot use; the EKS "VPC and subnet requirements" page lists
// use1-az3, usw1-az2 and cac1-az3.
const eksUnsupported = "is not supported by Amazon EKS"

// catalog covers ClickHouse Cloud's AWS regions, public and private
// (https://clickhouse.com/docs/cloud/reference/supported-regions), since BYOC supports the
// same set. Sources: AWS "AZ IDs" and "AWS Availability Zones" pages and the EFS One Zone
// table of AZ IDs per region. Regions not listed here cannot be supported until added,
// because byoc could not check or default their zones.
var catalog = []regionZones{
	// us-east-1 has six zones; use1-az3 is the old zone without Nitro capacity and EKS
	// rejects it, so the default skips to az4.
	{region: "us-east-1", prefix: "use1",
		usable:   []string{"use1-az1", "use1-az2", "use1-az4", "use1-az5", "use1-az6"},
		unusable: map[string]string{"use1-az3": eksUnsupported}},
	{region: "us-east-2", prefix: "use2", usable: azs("use2", 1, 2, 3)},
	{region: "us-west-2", prefix: "usw2", usable: azs("usw2", 1, 2, 3, 4)},
	// ca-central-1 offers az1, az2 and az4 to new accounts; cac1-az3 exists only in some
	// older accounts and EKS rejects it.
	{region: "ca-central-1", prefix: "cac1", usable: azs("cac1", 1, 2, 4),
		unusable: map[string]string{"cac1-az3": eksUnsupported}},
	{region: "eu-central-1", prefix: "euc1", usable: azs("euc1", 1, 2, 3)},
	{region: "eu-west-1", prefix: "euw1", usable: azs("euw1", 1, 2, 3)},
	{region: "eu-west-2", prefix: "euw2", usable: azs("euw2", 1, 2, 3)},
	{region: "il-central-1", prefix: "ilc1", usable: azs("ilc1", 1, 2, 3)},
	// ap-northeast-1 offers az1, az2 and az4 to accounts created since 2018; apne1-az3
	// exists only in older accounts and has no capacity for new instance types. Not
	// confirmed in AWS documentation found here (known from describe-availability-zones
	// output of recent accounts, which list apne1-az1, -az2 and -az4 only).
	{region: "ap-northeast-1", prefix: "apne1", usable: azs("apne1", 1, 2, 4),
		unusable: map[string]string{"apne1-az3": "is not offered to accounts created since 2018"}},
	{region: "ap-northeast-2", prefix: "apne2", usable: azs("apne2", 1, 2, 3, 4)},
	{region: "ap-south-1", prefix: "aps1", usable: azs("aps1", 1, 2, 3)},
	{region: "ap-southeast-1", prefix: "apse1", usable: azs("apse1", 1, 2, 3)},
	{region: "ap-southeast-2", prefix: "apse2", usable: azs("apse2", 1, 2, 3)},
	// ClickHouse's private regions (enabled on request): opt-in AWS regions, three zones each.
	{region: "af-south-1", prefix: "afs1", usable: azs("afs1", 1, 2, 3)},
	{region: "eu-north-1", prefix: "eun1", usable: azs("eun1", 1, 2, 3)},
	{region: "sa-east-1", prefix: "sae1", usable: azs("sae1", 1, 2, 3)},
	{region: "ap-southeast-3", prefix: "apse3", usable: azs("apse3", 1, 2, 3)},
	{region: "ap-east-1", prefix: "ape1", usable: azs("ape1", 1, 2, 3)},
	{region: "mx-central-1", prefix: "mxc1", usable: azs("mxc1", 1, 2, 3)},
}

func azs(prefix string, numbers ...int) []string {
	out := make([]string, len(numbers))
	for i, n := range numbers {
		out[i] = fmt.Sprintf("%s-az%d", prefix, n)
	}
	return out
}

// defaultRegions are ClickHouse Cloud's public AWS regions; the private ones in the catalog
// are offered only when an operator lists them in SUPPORTED_REGIONS.
var defaultRegions = []string{
	"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
	"eu-central-1", "eu-west-1", "eu-west-2",
	"us-east-1", "us-east-2", "us-west-2",
	"il-central-1", "ca-central-1",
}

// DefaultRegions returns ClickHouse Cloud's public AWS regions, the default list of regions
// a deployment may use. The caller owns the returned slice.
func DefaultRegions() []string { return slices.Clone(defaultRegions) }

// KnownRegions returns every region byoc has zone data for, which is the widest list an
// operator can configure.
func KnownRegions() []string {
	out := make([]string, len(catalog))
	for i, rz := range catalog {
		out[i] = rz.region
	}
	return out
}

func lookupRegion(region string) (regionZones, bool) {
	for _, rz := range catalog {
		if rz.region == region {
			return rz, true
		}
	}
	return regionZones{}, false
}

func lookupPrefix(prefix string) (regionZones, bool) {
	for _, rz := range catalog {
		if rz.prefix == prefix {
			return rz, true
		}
	}
	return regionZones{}, false
}

// ZoneRegion returns the region an AZ ID belongs to ("use1-az1" -> "us-east-1"). It reports
// false for IDs that are malformed, of an unknown region, or not a zone of that region.
// Zones that exist but byoc cannot use (see ZoneUsable) still report their region.
func ZoneRegion(zoneID string) (string, bool) {
	prefix, _, ok := strings.Cut(zoneID, "-az")
	if !ok {
		return "", false
	}
	rz, ok := lookupPrefix(prefix)
	if !ok {
		return "", false
	}
	if slices.Contains(rz.usable, zoneID) {
		return rz.region, true
	}
	if _, ok := rz.unusable[zoneID]; ok {
		return rz.region, true
	}
	return "", false
}

// ZoneUsable reports whether byoc can place a deployment's subnets and EKS nodes in the zone,
// and if not, why.
func ZoneUsable(zoneID string) (ok bool, reason string) {
	prefix, _, found := strings.Cut(zoneID, "-az")
	if !found {
		return false, "is not an AZ ID"
	}
	rz, found := lookupPrefix(prefix)
	if !found {
		return false, "is not an AZ ID of a known region"
	}
	if slices.Contains(rz.usable, zoneID) {
		return true, ""
	}
	if why, found := rz.unusable[zoneID]; found {
		return false, why
	}
	return false, "is not an AZ ID of " + rz.region
}

// DefaultZoneIDs returns the three zones a deployment in region gets when it names none:
// the first three usable zones, always the same for a region so that retries and re-runs
// produce the same network.
func DefaultZoneIDs(region string) ([]string, error) {
	rz, ok := lookupRegion(region)
	if !ok {
		return nil, fmt.Errorf("settings: no zone data for region %q (known: %s)", region, strings.Join(KnownRegions(), ", "))
	}
	return slices.Clone(rz.usable[:ZoneCount]), nil
}

// Rules are the operator's choices that bound what deployments may ask for.
type Rules struct {
	SupportedRegions []string // empty means DefaultRegions()
}

// RulesFromEnv reads the SUPPORTED_REGIONS value: a comma-separated list of regions, spaces
// allowed, duplicates ignored; empty means the default list.
func RulesFromEnv(value string) Rules {
	var regions []string
	for part := range strings.SplitSeq(value, ",") {
		r := strings.TrimSpace(part)
		if r != "" && !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	return Rules{SupportedRegions: regions}
}

// Regions returns the regions deployments may use under these rules.
func (r Rules) Regions() []string {
	if len(r.SupportedRegions) == 0 {
		return DefaultRegions()
	}
	return slices.Clone(r.SupportedRegions)
}

// Validate reports configured regions byoc has no zone data for. Functions call it at cold
// start so a typo in SUPPORTED_REGIONS fails the deploy, not the first customer.
func (r Rules) Validate() error {
	var c collector
	for i, region := range r.SupportedRegions {
		if _, ok := lookupRegion(region); !ok {
			c.add(fmt.Sprintf("supportedRegions[%d]", i), region,
				"must be a region byoc has zone data for: "+strings.Join(KnownRegions(), ", "))
		}
	}
	return c.err()
}
