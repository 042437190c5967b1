package window

import (
	"errors"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/settings"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestOccurrencesAcrossDaylightSaving(t *testing.T) {
	cases := []struct {
		name          string
		w             Window
		at            string // look from here
		key           string
		opens, closes string
	}{
		{"a start in the spring-forward gap opens at the first valid instant and keeps its length",
			Window{"sunday", "02:30", "America/Los_Angeles", 4}, "2027-03-13T00:00:00Z", "2027-03-14", "2027-03-14T10:00:00Z", "2027-03-14T14:00:00Z"},
		{"a start that occurs twice opens at the first",
			Window{"sunday", "01:30", "America/Los_Angeles", 2}, "2026-10-31T00:00:00Z", "2026-11-01", "2026-11-01T08:30:00Z", "2026-11-01T10:30:00Z"},
		{"the week after the fall-back is on standard time",
			Window{"sunday", "01:30", "America/Los_Angeles", 2}, "2026-11-02T00:00:00Z", "2026-11-08", "2026-11-08T09:30:00Z", "2026-11-08T11:30:00Z"},
		{"London spring-forward gap",
			Window{"sunday", "01:30", "Europe/London", 4}, "2027-03-27T00:00:00Z", "2027-03-28", "2027-03-28T01:00:00Z", "2027-03-28T05:00:00Z"},
		{"London repeated hour opens on summer time",
			Window{"sunday", "01:30", "Europe/London", 1}, "2026-10-24T00:00:00Z", "2026-10-25", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"},
		{"Kolkata (no daylight saving, +05:30) crossing midnight",
			Window{"friday", "23:00", "Asia/Kolkata", 4}, "2026-12-07T00:00:00Z", "2026-12-11", "2026-12-11T17:30:00Z", "2026-12-11T21:30:00Z"},
		{"Lord Howe's 30-minute spring-forward gap",
			Window{"sunday", "02:15", "Australia/Lord_Howe", 3}, "2026-10-02T00:00:00Z", "2026-10-04", "2026-10-03T15:30:00Z", "2026-10-03T18:30:00Z"},
		{"Lord Howe's repeated half hour opens at the first",
			Window{"sunday", "01:45", "Australia/Lord_Howe", 1}, "2027-04-02T00:00:00Z", "2027-04-04", "2027-04-03T14:45:00Z", "2027-04-03T15:45:00Z"},
		{"a window crossing the week boundary is still open on Monday",
			Window{"sunday", "22:00", "UTC", 4}, "2026-12-14T01:00:00Z", "2026-12-13", "2026-12-13T22:00:00Z", "2026-12-14T02:00:00Z"},
		{"once closed, the next week's",
			Window{"sunday", "22:00", "UTC", 4}, "2026-12-14T02:00:00Z", "2026-12-20", "2026-12-20T22:00:00Z", "2026-12-21T02:00:00Z"},
		{"the seed's example: Tuesday 1:00 a.m. Pacific",
			Window{"tuesday", "01:00", "America/Los_Angeles", 4}, "2026-12-07T12:00:00Z", "2026-12-08", "2026-12-08T09:00:00Z", "2026-12-08T13:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := c.w.Current(utc(c.at))
			if err != nil {
				t.Fatal(err)
			}
			if o.Key != c.key || !o.Opens.Equal(utc(c.opens)) || !o.Closes.Equal(utc(c.closes)) {
				t.Fatalf("got %s %s..%s, want %s %s..%s", o.Key, o.Opens.UTC().Format(time.RFC3339), o.Closes.UTC().Format(time.RFC3339), c.key, c.opens, c.closes)
			}
			if o.Closes.Sub(o.Opens) != time.Duration(c.w.Hours)*time.Hour {
				t.Fatalf("elapsed length %s, want %d h", o.Closes.Sub(o.Opens), c.w.Hours)
			}
		})
	}
}

func TestNextListsEveryWeekOnceAcrossAChange(t *testing.T) {
	w := Window{"sunday", "02:30", "America/Los_Angeles", 4}
	got, err := w.Next(utc("2027-03-01T00:00:00Z"), 4)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2027-03-07T10:30:00Z", "2027-03-14T10:00:00Z", "2027-03-21T09:30:00Z", "2027-03-28T09:30:00Z"}
	if len(got) != len(want) {
		t.Fatalf("%d occurrences, want %d", len(got), len(want))
	}
	for i, o := range got {
		if !o.Opens.Equal(utc(want[i])) {
			t.Fatalf("occurrence %d opens %s, want %s", i, o.Opens.UTC().Format(time.RFC3339), want[i])
		}
	}
	after, err := w.After(got[1])
	if err != nil || after.Key != got[2].Key {
		t.Fatalf("After(%s) = %s, %v; want %s", got[1].Key, after.Key, err, got[2].Key)
	}
}

func TestDefaultIsTheRegionsNight(t *testing.T) {
	for region, zone := range map[string]string{"us-west-2": "America/Los_Angeles", "ap-south-1": "Asia/Kolkata", "xx-nowhere-1": "UTC"} {
		w := Default(region)
		if w.TimeZone != zone || w.Hours != DefaultHours || w.Start != "02:00" {
			t.Fatalf("Default(%s) = %+v", region, w)
		}
		if _, err := Normalize(w, "window"); err != nil {
			t.Fatalf("default window of %s invalid: %v", region, err)
		}
	}
	for region, zone := range regionZones {
		if _, err := loadZone(zone); err != nil {
			t.Errorf("region %s: zone %s: %v", region, zone, err)
		}
	}
}

func TestNormalizeRefusesEveryBadFieldAndKeepsTheInput(t *testing.T) {
	in := Window{Day: "Funday", Start: "24:00", TimeZone: "Mars/Olympus", Hours: 9}
	out, err := Normalize(in, "window")
	var ve *settings.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error, got %v", err)
	}
	for _, f := range []string{"window.day", "window.start", "window.timeZone", "window.durationHours"} {
		if _, ok := ve.Field(f); !ok {
			t.Errorf("no error about %s in %v", f, err)
		}
	}
	if out != in {
		t.Fatalf("refused input changed: %+v", out)
	}
	for _, bad := range []Window{{"monday", "1:00", "UTC", 4}, {"monday", "01:00", "Local", 4}, {"monday", "01:00", "", 4}, {"monday", "01:00", "UTC", -1}} {
		if _, err := Normalize(bad, "window"); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	ok, err := Normalize(Window{Day: "Tuesday", Start: "01:00", TimeZone: "America/Los_Angeles"}, "window")
	if err != nil || ok.Day != "tuesday" || ok.Hours != DefaultHours {
		t.Fatalf("Normalize = %+v, %v", ok, err)
	}
}
