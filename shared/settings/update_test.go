package settings_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/settings"
)

func current(t *testing.T) settings.Settings {
	t.Helper()
	s, err := defaults.Normalize(settings.Settings{
		CustomerID: "acme", AccountID: "123456789012", Region: "us-east-1",
		VPCCIDR: "10.20.0.0/16", ZoneIDs: []string{"use1-az1", "use1-az2", "use1-az4"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckUpdateAllowsNoChange(t *testing.T) {
	c := current(t)
	if err := settings.CheckUpdate(c, clone(c)); err != nil {
		t.Fatalf("unchanged settings refused: %v", err)
	}
	changed := clone(c)
	changed.AcknowledgeSmallCIDR = true
	if err := settings.CheckUpdate(c, changed); err != nil {
		t.Fatalf("a mutable field change refused: %v", err)
	}
}

func TestCheckUpdateRefusesEachImmutableField(t *testing.T) {
	c := current(t)
	cases := []struct {
		field  string
		value  string
		was    string
		change func(*settings.Settings)
	}{
		{"customerId", "other", "acme", func(s *settings.Settings) { s.CustomerID = "other" }},
		{"accountId", "210987654321", "123456789012", func(s *settings.Settings) { s.AccountID = "210987654321" }},
		{"region", "us-east-2", "us-east-1", func(s *settings.Settings) { s.Region = "us-east-2" }},
		{"vpcCidr", "10.21.0.0/16", "10.20.0.0/16", func(s *settings.Settings) { s.VPCCIDR = "10.21.0.0/16" }},
		{"vpcCidr", "10.20.0.0/17", "10.20.0.0/16", func(s *settings.Settings) { s.VPCCIDR = "10.20.0.0/17" }},
		{"zoneIds", "use1-az1,use1-az2,use1-az5", "use1-az1,use1-az2,use1-az4", func(s *settings.Settings) { s.ZoneIDs[2] = "use1-az5" }},
		{"zoneIds", "use1-az2,use1-az1,use1-az4", "use1-az1,use1-az2,use1-az4", func(s *settings.Settings) { s.ZoneIDs[0], s.ZoneIDs[1] = s.ZoneIDs[1], s.ZoneIDs[0] }},
		{"zoneIds", "", "use1-az1,use1-az2,use1-az4", func(s *settings.Settings) { s.ZoneIDs = nil }},
		{"resourcePrefix", "other-prefix", "clickhouse-cloud", func(s *settings.Settings) { s.ResourcePrefix = "other-prefix" }},
	}
	for _, tc := range cases {
		t.Run(tc.field+"="+tc.value, func(t *testing.T) {
			p := clone(c)
			tc.change(&p)
			err := settings.CheckUpdate(c, p)
			var ve *settings.ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) != 1 {
				t.Fatalf("CheckUpdate = %v, want one field error", err)
			}
			fe := ve.Errors[0]
			if fe.Field != tc.field || fe.Value != tc.value || !strings.Contains(fe.Rule, "cannot be changed") || !strings.Contains(fe.Rule, `"`+tc.was+`"`) {
				t.Errorf("error = %+v, want field %s value %q saying it cannot change from %q", fe, tc.field, tc.value, tc.was)
			}
		})
	}
}

func TestCheckUpdateReportsEveryChange(t *testing.T) {
	c := current(t)
	p := clone(c)
	p.Region, p.VPCCIDR, p.ZoneIDs = "eu-west-1", "10.0.0.0/16", []string{"euw1-az1", "euw1-az2", "euw1-az3"}
	err := settings.CheckUpdate(c, p)
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CheckUpdate = %v", err)
	}
	for _, f := range []string{"region", "vpcCidr", "zoneIds"} {
		if _, ok := ve.Field(f); !ok {
			t.Errorf("change of %s not reported in %v", f, err)
		}
	}
}

func TestUpdateKeepsUnsetFieldsAndRevalidates(t *testing.T) {
	c := current(t)
	out, err := defaults.Update(c, settings.Settings{AcknowledgeSmallCIDR: true})
	if err != nil {
		t.Fatal(err)
	}
	want := clone(c)
	want.AcknowledgeSmallCIDR = true
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("Update = %+v, want %+v", out, want)
	}
}

func TestUpdateRefusesImmutableChangeAndReturnsCurrent(t *testing.T) {
	c := current(t)
	out, err := defaults.Update(c, settings.Settings{Region: "eu-west-1"})
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Update = %v", err)
	}
	if fe, ok := ve.Field("region"); !ok || fe.Value != "eu-west-1" {
		t.Errorf("region change not named: %v", err)
	}
	if !reflect.DeepEqual(out, c) {
		t.Errorf("refused Update returned %+v, want current %+v", out, c)
	}
}

func TestUpdateRefusesDroppingSmallCIDRAcknowledgement(t *testing.T) {
	small, err := defaults.Normalize(settings.Settings{
		CustomerID: "acme", AccountID: "123456789012", Region: "eu-west-2",
		VPCCIDR: "10.9.8.0/23", AcknowledgeSmallCIDR: true,
	})
	if err != nil || small.ServerPodLimit != settings.SmallCIDRServerPodLimit {
		t.Fatalf("small settings = %+v, %v", small, err)
	}
	proposed := clone(small)
	proposed.AcknowledgeSmallCIDR = false
	out, err := defaults.Update(small, proposed)
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Update = %v, want refusal", err)
	}
	if fe, ok := ve.Field("vpcCidr"); !ok || !strings.Contains(fe.Rule, "acknowledgeSmallCidr") {
		t.Errorf("error %v does not explain the acknowledgement", err)
	}
	if !reflect.DeepEqual(out, small) {
		t.Errorf("refused Update returned %+v", out)
	}
}
