package settings_test

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/settings"
)

func TestDefaultRegionsAreClickHouseCloudPublicAWSRegions(t *testing.T) {
	want := []string{
		"ap-northeast-1", "ap-northeast-2", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
		"eu-central-1", "eu-west-1", "eu-west-2", "us-east-1", "us-east-2", "us-west-2",
		"il-central-1", "ca-central-1",
	}
	got := settings.DefaultRegions()
	if !slices.Equal(got, want) {
		t.Fatalf("DefaultRegions() = %v, want %v", got, want)
	}
	got[0] = "changed"
	if settings.DefaultRegions()[0] != "ap-northeast-1" {
		t.Fatal("DefaultRegions exposes its backing array")
	}
	if settings.RulesFromEnv("").Validate() != nil {
		t.Fatal("default rules fail validation")
	}
}

// zonePrefix is AWS's documented AZ ID scheme, restated to cross-check the catalog: the
// region's geography, the initial of each word of its direction ("northeast" -> "ne"), and
// its number.
func zonePrefix(region string) string {
	parts := strings.Split(region, "-")
	dir := parts[1]
	var initials string
	for _, word := range []string{"north", "south", "east", "west", "central"} {
		if strings.HasPrefix(dir, word) {
			initials = word[:1]
			if rest := dir[len(word):]; rest != "" {
				initials += rest[:1]
			}
		}
	}
	return parts[0] + initials + parts[2]
}

func TestCatalogIsConsistent(t *testing.T) {
	prefixes := map[string]string{
		"us-east-1": "use1", "eu-central-1": "euc1", "ap-southeast-2": "apse2",
		"ap-northeast-1": "apne1", "ca-central-1": "cac1", "ap-south-1": "aps1",
	}
	for region, want := range prefixes {
		if got := zonePrefix(region); got != want {
			t.Fatalf("test helper zonePrefix(%s) = %s, want %s", region, got, want)
		}
	}
	known := settings.KnownRegions()
	for _, r := range settings.DefaultRegions() {
		if !slices.Contains(known, r) {
			t.Errorf("default region %s has no zone data", r)
		}
	}
	for _, region := range known {
		zones, err := settings.DefaultZoneIDs(region)
		if err != nil {
			t.Fatalf("DefaultZoneIDs(%s): %v", region, err)
		}
		idPattern := regexp.MustCompile("^" + zonePrefix(region) + `-az[1-9]$`)
		if len(zones) != settings.ZoneCount {
			t.Errorf("%s: %d default zones", region, len(zones))
		}
		for i, z := range zones {
			if !idPattern.MatchString(z) {
				t.Errorf("%s: default zone %s does not follow AWS's AZ ID scheme", region, z)
			}
			if slices.Index(zones, z) != i {
				t.Errorf("%s: default zone %s repeated", region, z)
			}
			if r, ok := settings.ZoneRegion(z); !ok || r != region {
				t.Errorf("ZoneRegion(%s) = %s, %v; want %s", z, r, ok, region)
			}
			if ok, why := settings.ZoneUsable(z); !ok {
				t.Errorf("default zone %s unusable: %s", z, why)
			}
		}
	}
}

func TestDefaultZonesAvoidKnownBadZones(t *testing.T) {
	cases := map[string][]string{
		"us-east-1":      {"use1-az1", "use1-az2", "use1-az4"},
		"ca-central-1":   {"cac1-az1", "cac1-az2", "cac1-az4"},
		"ap-northeast-1": {"apne1-az1", "apne1-az2", "apne1-az4"},
		"eu-west-1":      {"euw1-az1", "euw1-az2", "euw1-az3"},
		"ap-southeast-2": {"apse2-az1", "apse2-az2", "apse2-az3"},
	}
	for region, want := range cases {
		got, err := settings.DefaultZoneIDs(region)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("DefaultZoneIDs(%s) = %v, %v; want %v", region, got, err, want)
		}
		got[0] = "changed"
		if again, _ := settings.DefaultZoneIDs(region); again[0] != want[0] {
			t.Fatalf("DefaultZoneIDs(%s) exposes its backing array", region)
		}
	}
	if _, err := settings.DefaultZoneIDs("us-west-1"); err == nil || !strings.Contains(err.Error(), `"us-west-1"`) {
		t.Errorf("DefaultZoneIDs(us-west-1) = %v, want an error naming the region", err)
	}
}

func TestZoneRegion(t *testing.T) {
	cases := []struct {
		zone, region string
		ok           bool
	}{
		{"use1-az1", "us-east-1", true},
		{"use1-az3", "us-east-1", true}, // exists, even though byoc won't use it
		{"apse2-az3", "ap-southeast-2", true},
		{"euc1-az2", "eu-central-1", true},
		{"ilc1-az1", "il-central-1", true},
		{"mxc1-az3", "mx-central-1", true},
		{"use1-az9", "", false},
		{"use1-az", "", false},
		{"use1", "", false},
		{"usw1-az1", "", false}, // us-west-1 is not catalogued
		{"us-east-1a", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		r, ok := settings.ZoneRegion(c.zone)
		if r != c.region || ok != c.ok {
			t.Errorf("ZoneRegion(%q) = %q, %v; want %q, %v", c.zone, r, ok, c.region, c.ok)
		}
	}
}

func TestZoneUsable(t *testing.T) {
	for zone, reason := range map[string]string{
		"use1-az3":  "not supported by Amazon EKS",
		"cac1-az3":  "not supported by Amazon EKS",
		"apne1-az3": "not offered",
		"use1-az9":  "not an AZ ID of us-east-1",
		"zz9-az1":   "known region",
		"garbage":   "not an AZ ID",
	} {
		ok, why := settings.ZoneUsable(zone)
		if ok || !strings.Contains(why, reason) {
			t.Errorf("ZoneUsable(%s) = %v, %q; want unusable because %q", zone, ok, why, reason)
		}
	}
}

func TestRulesFromEnv(t *testing.T) {
	cases := map[string][]string{
		"":                                   nil,
		" , ":                                nil,
		"us-east-1":                          {"us-east-1"},
		" us-east-1 , eu-west-1,,us-east-1 ": {"us-east-1", "eu-west-1"},
		"sa-east-1,af-south-1,eu-north-1,ap-east-1": {"sa-east-1", "af-south-1", "eu-north-1", "ap-east-1"},
	}
	for env, want := range cases {
		r := settings.RulesFromEnv(env)
		if !slices.Equal(r.SupportedRegions, want) {
			t.Errorf("RulesFromEnv(%q) = %v, want %v", env, r.SupportedRegions, want)
		}
		wantRegions := want
		if len(want) == 0 {
			wantRegions = settings.DefaultRegions()
		}
		if !slices.Equal(r.Regions(), wantRegions) {
			t.Errorf("RulesFromEnv(%q).Regions() = %v", env, r.Regions())
		}
	}
}

func TestRulesValidateNamesUnknownRegions(t *testing.T) {
	err := settings.RulesFromEnv("us-east-1,us-west-1,eu-west-9").Validate()
	var ve *settings.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("Validate = %v, want two field errors", err)
	}
	for i, want := range map[int]string{1: "us-west-1", 2: "eu-west-9"} {
		fe, ok := ve.Field(fmt.Sprintf("supportedRegions[%d]", i))
		if !ok || fe.Value != want || !strings.Contains(fe.Rule, "zone data") {
			t.Errorf("supportedRegions[%d] error = %+v, %v", i, fe, ok)
		}
	}
	if err := settings.RulesFromEnv(strings.Join(settings.KnownRegions(), ",")).Validate(); err != nil {
		t.Errorf("every known region should validate: %v", err)
	}
}
