package settings_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/network"
	"github.com/byocloud/byoc/shared/settings"
)

var defaults = settings.Rules{}

func valid() settings.Settings {
	return settings.Settings{CustomerID: "acme-corp", AccountID: "123456789012", Region: "eu-central-1"}
}

// mustFail runs Normalize expecting a *ValidationError that names field with a rule
// containing ruleText, and proves the input came back unchanged.
func mustFail(t *testing.T, rules settings.Rules, in settings.Settings, field, value, ruleText string) *settings.ValidationError {
	t.Helper()
	before := clone(in)
	out, err := rules.Normalize(in)
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Normalize(%+v) error = %v, want *ValidationError", in, err)
	}
	fe, ok := ve.Field(field)
	if !ok {
		t.Fatalf("error %q does not name field %s", err, field)
	}
	if fe.Value != value {
		t.Errorf("%s error value = %q, want %q", field, fe.Value, value)
	}
	if !strings.Contains(fe.Rule, ruleText) {
		t.Errorf("%s error rule = %q, want it to contain %q", field, fe.Rule, ruleText)
	}
	if !strings.Contains(err.Error(), fe.Error()) {
		t.Errorf("joined message %q lacks %q", err, fe.Error())
	}
	if !reflect.DeepEqual(out, before) || !reflect.DeepEqual(in, before) {
		t.Errorf("a refused Normalize changed settings: in %+v out %+v, want %+v", in, out, before)
	}
	return ve
}

func clone(s settings.Settings) settings.Settings {
	s.ZoneIDs = slices.Clone(s.ZoneIDs)
	return s
}

func TestNormalizeFillsDefaults(t *testing.T) {
	out, err := defaults.Normalize(valid())
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Settings{
		CustomerID: "acme-corp", AccountID: "123456789012", Region: "eu-central-1",
		VPCCIDR: "10.0.0.0/16", ZoneIDs: []string{"euc1-az1", "euc1-az2", "euc1-az3"},
		ResourcePrefix: "clickhouse-cloud",
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Normalize = %+v\nwant %+v", out, want)
	}
}

func TestNormalizeKeepsChosenValues(t *testing.T) {
	in := valid()
	in.Region = "us-east-1"
	in.VPCCIDR = "172.20.0.0/20"
	in.ZoneIDs = []string{"use1-az6", "use1-az1", "use1-az5"}
	in.ResourcePrefix = "ch-byoc"
	out, err := defaults.Normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("Normalize changed valid explicit settings: %+v -> %+v", in, out)
	}
}

func TestNormalizeIsIdempotentAndDoesNotAlias(t *testing.T) {
	in := valid()
	in.ZoneIDs = []string{"euc1-az3", "euc1-az2", "euc1-az1"}
	once, err := defaults.Normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	twice, err := defaults.Normalize(once)
	if err != nil || !reflect.DeepEqual(once, twice) {
		t.Fatalf("second Normalize = %+v, %v; want %+v", twice, err, once)
	}
	once.ZoneIDs[0] = "changed"
	if in.ZoneIDs[0] != "euc1-az3" {
		t.Fatal("Normalize's result shares the caller's zone slice")
	}
}

func TestVPCCIDRRules(t *testing.T) {
	accepted := []struct {
		cidr     string
		ack      bool
		podLimit int
	}{
		{"10.0.0.0/16", false, 0},
		{"10.255.0.0/16", false, 0},
		{"172.16.0.0/16", false, 0},
		{"172.31.252.0/22", false, 0},
		{"192.168.0.0/16", false, 0},
		{"192.168.100.0/22", false, 0},
		{"10.1.0.0/20", true, 0}, // acknowledging is harmless on a large VPC
		{"10.0.2.0/23", true, 30},
		{"192.168.254.0/23", true, 30},
	}
	for _, c := range accepted {
		in := valid()
		in.VPCCIDR, in.AcknowledgeSmallCIDR = c.cidr, c.ack
		in.ServerPodLimit = 7 // derived, so whatever the caller sent is replaced
		out, err := defaults.Normalize(in)
		if err != nil {
			t.Errorf("vpcCidr %s (ack %v) refused: %v", c.cidr, c.ack, err)
			continue
		}
		if out.VPCCIDR != c.cidr || out.ServerPodLimit != c.podLimit {
			t.Errorf("vpcCidr %s: got %s with pod limit %d, want limit %d", c.cidr, out.VPCCIDR, out.ServerPodLimit, c.podLimit)
		}
	}

	refused := []struct {
		cidr string
		ack  bool
		rule string
	}{
		{"10.0.0.0/23", false, "prefix must be /16 to /22 (/23 only with acknowledgeSmallCidr)"},
		{"10.0.0.0/24", true, "prefix must be /16 to /22"},
		{"10.0.0.0/28", true, "prefix must be /16 to /22"},
		{"10.0.0.0/15", false, "prefix must be /16 to /22"},
		{"10.0.0.0/8", false, "prefix must be /16 to /22"},
		{"10.0.0.1/16", false, "host bits must be zero: the network is 10.0.0.0/16"},
		{"10.0.3.0/23", true, "host bits must be zero: the network is 10.0.2.0/23"},
		{"8.8.0.0/16", false, "private range"},
		{"172.32.0.0/16", false, "private range"},
		{"172.15.0.0/16", false, "private range"},
		{"192.169.0.0/16", false, "private range"},
		{"100.64.0.0/16", false, "private range"},
		{"0.0.0.0/16", false, "private range"},
		{"10.0.0.0", false, "IPv4 CIDR"},
		{"10.0.0/16", false, "IPv4 CIDR"},
		{"10.0.0.0/33", false, "IPv4 CIDR"},
		{" 10.0.0.0/16", false, "IPv4 CIDR"},
		{"010.0.0.0/16", false, "IPv4 CIDR"},
		{"fd00:10::/48", false, "IPv4 CIDR"},
		{"::ffff:10.0.0.0/112", false, "IPv4 CIDR"},
		{"default", false, "IPv4 CIDR"},
	}
	for _, c := range refused {
		in := valid()
		in.VPCCIDR, in.AcknowledgeSmallCIDR = c.cidr, c.ack
		mustFail(t, defaults, in, "vpcCidr", c.cidr, c.rule)
	}
}

func TestFieldErrorMessage(t *testing.T) {
	in := valid()
	in.VPCCIDR = "10.0.0.0/24"
	_, err := defaults.Normalize(in)
	want := `vpcCidr "10.0.0.0/24": prefix must be /16 to /22 (/23 only with acknowledgeSmallCidr)`
	var ve *settings.ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Error() != want {
		t.Fatalf("error = %v, want exactly %s", err, want)
	}
	if err.Error() != "invalid settings: "+want {
		t.Errorf("joined message = %q", err)
	}
}

func TestCustomerIDRules(t *testing.T) {
	for _, ok := range []string{"a", "acme", "acme-corp-01", "0a", strings.Repeat("a", 40)} {
		in := valid()
		in.CustomerID = ok
		if _, err := defaults.Normalize(in); err != nil {
			t.Errorf("customerId %q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Acme", "acme_corp", "acme corp", "-acme", "acme-", "acmé", "a/b", strings.Repeat("a", 41)} {
		in := valid()
		in.CustomerID = bad
		mustFail(t, defaults, in, "customerId", bad, "1 to 40 characters of lowercase letters, digits and '-'")
	}
}

func TestAccountIDRules(t *testing.T) {
	for _, bad := range []string{"", "12345678901", "1234567890123", "12345678901a", " 123456789012", "1234-5678-9012"} {
		in := valid()
		in.AccountID = bad
		mustFail(t, defaults, in, "accountId", bad, "exactly 12 digits")
	}
	in := valid()
	in.AccountID = "000000000000"
	if _, err := defaults.Normalize(in); err != nil {
		t.Errorf("leading zeros are part of account ids: %v", err)
	}
}

func TestResourcePrefixRules(t *testing.T) {
	for _, ok := range []string{"c", "clickhouse-cloud", "ch2", "a-b-c", strings.Repeat("a", 24)} {
		in := valid()
		in.ResourcePrefix = ok
		out, err := defaults.Normalize(in)
		if err != nil || out.ResourcePrefix != ok {
			t.Errorf("resourcePrefix %q: %+v, %v", ok, out.ResourcePrefix, err)
		}
	}
	for _, bad := range []string{"Clickhouse", "1ch", "-ch", "ch-", "ch--cloud", "ch_cloud", "ch.cloud", strings.Repeat("a", 25), "sthree-x", "amzn-s3-demo-x"} {
		in := valid()
		in.ResourcePrefix = bad
		mustFail(t, defaults, in, "resourcePrefix", bad, "so that <prefix>-<13-char id> is a valid EKS cluster name")
	}
}

func TestRegionRules(t *testing.T) {
	in := valid()
	in.Region = "us-west-1" // a real region, but not a ClickHouse Cloud one
	mustFail(t, defaults, in, "region", "us-west-1", "must be one of the supported regions: ap-northeast-1,")

	in.Region = "sa-east-1" // a private ClickHouse region: only when the operator enables it
	mustFail(t, defaults, in, "region", "sa-east-1", "supported regions")
	if _, err := settings.RulesFromEnv("sa-east-1").Normalize(in); err != nil {
		t.Errorf("sa-east-1 refused although configured: %v", err)
	}

	in.Region = "us-west-1"
	mustFail(t, settings.RulesFromEnv("us-west-1"), in, "region", "us-west-1", "no zone data")

	in.Region = "eu-central-1"
	mustFail(t, settings.RulesFromEnv("us-east-1"), in, "region", "eu-central-1", "supported regions: us-east-1")
}

func TestZoneRules(t *testing.T) {
	cases := []struct {
		name  string
		zones []string
		field string
		value string
		rule  string
	}{
		{"two zones", []string{"euc1-az1", "euc1-az2"}, "zoneIds", "euc1-az1,euc1-az2", "exactly 3 AZ IDs"},
		{"four zones", []string{"euc1-az1", "euc1-az2", "euc1-az3", "euc1-az1"}, "zoneIds", "euc1-az1,euc1-az2,euc1-az3,euc1-az1", "exactly 3 AZ IDs"},
		{"repeated", []string{"euc1-az1", "euc1-az2", "euc1-az1"}, "zoneIds[2]", "euc1-az1", "must not repeat"},
		{"other region", []string{"euc1-az1", "use1-az1", "euc1-az3"}, "zoneIds[1]", "use1-az1", "belongs to us-east-1, must be an AZ ID of eu-central-1: one of euc1-az1, euc1-az2, euc1-az3"},
		{"zone name not id", []string{"eu-central-1a", "euc1-az2", "euc1-az3"}, "zoneIds[0]", "eu-central-1a", "must be an AZ ID of eu-central-1"},
		{"no such zone", []string{"euc1-az1", "euc1-az2", "euc1-az9"}, "zoneIds[2]", "euc1-az9", "must be an AZ ID of eu-central-1"},
		{"empty", []string{"euc1-az1", "", "euc1-az3"}, "zoneIds[1]", "", "must be an AZ ID"},
		{"uppercase", []string{"EUC1-AZ1", "euc1-az2", "euc1-az3"}, "zoneIds[0]", "EUC1-AZ1", "must be an AZ ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := valid()
			in.ZoneIDs = c.zones
			mustFail(t, defaults, in, c.field, c.value, c.rule)
		})
	}
}

func TestZonesEKSCannotUseAreRefused(t *testing.T) {
	for region, zone := range map[string]string{"us-east-1": "use1-az3", "ca-central-1": "cac1-az3", "ap-northeast-1": "apne1-az3"} {
		in := valid()
		in.Region = region
		in.ZoneIDs, _ = settings.DefaultZoneIDs(region)
		in.ZoneIDs[1] = zone
		mustFail(t, defaults, in, "zoneIds[1]", zone, "choose another AZ ID of "+region)
	}
}

func TestZonesAreCheckedEvenWhenRegionIsBad(t *testing.T) {
	in := valid()
	in.Region = "mars-north-1"
	in.ZoneIDs = []string{"euc1-az1", "euc1-az1", "nope"}
	ve := mustFail(t, defaults, in, "region", "mars-north-1", "supported regions")
	if _, ok := ve.Field("zoneIds[1]"); !ok {
		t.Error("repeated zone not reported alongside the region error")
	}
	if _, ok := ve.Field("zoneIds[2]"); !ok {
		t.Error("malformed zone not reported alongside the region error")
	}
}

func TestNormalizeReportsEveryBadField(t *testing.T) {
	in := settings.Settings{
		CustomerID: "Bad Customer", AccountID: "42", Region: "moon-1",
		VPCCIDR: "8.8.8.0/24", ZoneIDs: []string{"x"}, ResourcePrefix: "-x",
	}
	ve := mustFail(t, defaults, in, "customerId", "Bad Customer", "lowercase")
	for _, f := range []string{"accountId", "region", "vpcCidr", "zoneIds", "resourcePrefix"} {
		if _, ok := ve.Field(f); !ok {
			t.Errorf("no error for %s in %v", f, ve)
		}
	}
}

func TestValidNormalizedSettingsAlwaysPlan(t *testing.T) {
	for _, region := range settings.KnownRegions() {
		for _, cidr := range []string{"10.0.0.0/16", "172.16.4.0/22", "192.168.0.0/23"} {
			in := valid()
			in.Region, in.VPCCIDR, in.AcknowledgeSmallCIDR = region, cidr, true
			out, err := settings.RulesFromEnv(strings.Join(settings.KnownRegions(), ",")).Normalize(in)
			if err != nil {
				t.Fatalf("%s %s: %v", region, cidr, err)
			}
			if _, err := network.NewPlan(out.VPCCIDR, out.ZoneIDs); err != nil {
				t.Fatalf("normalized settings %+v do not plan: %v", out, err)
			}
		}
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add("acme", "123456789012", "us-east-1", "10.0.0.0/16", "use1-az1", "use1-az2", "use1-az4", "clickhouse-cloud", false)
	f.Add("acme", "123456789012", "eu-west-1", "192.168.2.0/23", "", "", "", "", true)
	f.Add("", "1", "x", "10.0.0.1/16", "a", "a", "a", "-", false)
	allowedFields := []string{"customerId", "accountId", "region", "vpcCidr", "zoneIds", "resourcePrefix"}
	f.Fuzz(func(t *testing.T, customer, account, region, cidr, z1, z2, z3, prefix string, ack bool) {
		in := settings.Settings{CustomerID: customer, AccountID: account, Region: region, VPCCIDR: cidr, ResourcePrefix: prefix, AcknowledgeSmallCIDR: ack}
		if z1 != "" || z2 != "" || z3 != "" {
			in.ZoneIDs = []string{z1, z2, z3}
		}
		before := clone(in)
		out, err := defaults.Normalize(in)
		if err != nil {
			var ve *settings.ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error %v is not a non-empty *ValidationError", err)
			}
			for _, fe := range ve.Errors {
				if !slices.ContainsFunc(allowedFields, func(f string) bool { return fe.Field == f || strings.HasPrefix(fe.Field, f+"[") }) || fe.Rule == "" {
					t.Fatalf("field error %+v names no known field or has no rule", fe)
				}
			}
			if !reflect.DeepEqual(out, before) {
				t.Fatalf("refused Normalize changed settings: %+v -> %+v", before, out)
			}
			return
		}
		again, err := defaults.Normalize(out)
		if err != nil || !reflect.DeepEqual(again, out) {
			t.Fatalf("normalized settings not stable: %+v -> %+v, %v", out, again, err)
		}
		if _, err := network.NewPlan(out.VPCCIDR, out.ZoneIDs); err != nil {
			t.Fatalf("accepted settings %+v cannot be planned: %v", out, err)
		}
		for _, z := range out.ZoneIDs {
			if r, ok := settings.ZoneRegion(z); !ok || r != out.Region {
				t.Fatalf("accepted zone %q of region %q (%v) in %s", z, r, ok, out.Region)
			}
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	in := valid()
	for b.Loop() {
		if _, err := defaults.Normalize(in); err != nil {
			b.Fatal(err)
		}
	}
}
