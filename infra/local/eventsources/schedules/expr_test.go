package schedules

import (
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestCronOccurrences(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	utc := time.UTC
	cases := []struct {
		expr  string
		loc   *time.Location
		after time.Time
		want  time.Time
	}{
		// Weekdays at 09:00 Paris time: Friday after nine -> Monday.
		{"cron(0 9 ? * MON-FRI *)", paris, time.Date(2025, 6, 6, 10, 0, 0, 0, paris), time.Date(2025, 6, 9, 9, 0, 0, 0, paris)},
		// Steps and lists.
		{"cron(0/15 8,20 * * ? *)", utc, time.Date(2025, 1, 1, 8, 40, 0, 0, utc), time.Date(2025, 1, 1, 8, 45, 0, 0, utc)},
		{"cron(0/15 8,20 * * ? *)", utc, time.Date(2025, 1, 1, 8, 45, 0, 0, utc), time.Date(2025, 1, 1, 20, 0, 0, 0, utc)},
		// Last day of the month, leap year.
		{"cron(0 0 L * ? *)", utc, time.Date(2024, 2, 1, 0, 0, 0, 0, utc), time.Date(2024, 2, 29, 0, 0, 0, 0, utc)},
		// Nearest weekday: 15 June 2025 is a Sunday -> Monday 16; 1 November 2025 is a Saturday -> Monday 3.
		{"cron(0 12 15W * ? *)", utc, time.Date(2025, 6, 1, 0, 0, 0, 0, utc), time.Date(2025, 6, 16, 12, 0, 0, 0, utc)},
		{"cron(0 12 1W * ? *)", utc, time.Date(2025, 10, 15, 0, 0, 0, 0, utc), time.Date(2025, 11, 3, 12, 0, 0, 0, utc)},
		// Last Friday; second Tuesday.
		{"cron(0 18 ? * 6L *)", utc, time.Date(2025, 5, 1, 0, 0, 0, 0, utc), time.Date(2025, 5, 30, 18, 0, 0, 0, utc)},
		{"cron(0 3 ? * TUE#2 *)", utc, time.Date(2025, 5, 1, 0, 0, 0, 0, utc), time.Date(2025, 5, 13, 3, 0, 0, 0, utc)},
		// Year and month names.
		{"cron(0 0 1 JAN ? 2027)", utc, time.Date(2025, 5, 1, 0, 0, 0, 0, utc), time.Date(2027, 1, 1, 0, 0, 0, 0, utc)},
		// Spring forward in Paris (30 March 2025, 02:00 -> 03:00): 02:30 does not exist that
		// day, so that occurrence is skipped.
		{"cron(30 2 * * ? *)", paris, time.Date(2025, 3, 29, 2, 31, 0, 0, paris), time.Date(2025, 3, 31, 2, 30, 0, 0, paris)},
		// Fall back (26 October 2025, 03:00 -> 02:00): 02:30 happens twice on the wall clock,
		// the schedule runs at the first one only.
		{"cron(30 2 * * ? *)", paris, time.Date(2025, 10, 26, 0, 0, 0, 0, paris), time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC)},
		{"cron(30 2 * * ? *)", paris, time.Date(2025, 10, 26, 0, 30, 0, 0, time.UTC), time.Date(2025, 10, 27, 2, 30, 0, 0, paris)},
	}
	for _, c := range cases {
		e, err := Parse(c.expr, c.loc, time.Time{})
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		got, ok := e.Next(c.after)
		if !ok || !got.Equal(c.want) {
			t.Errorf("%s in %s after %s = %s (%v), want %s", c.expr, c.loc, c.after, got.In(c.loc), ok, c.want.In(c.loc))
		}
	}
	past, _ := Parse("cron(0 0 1 1 ? 2020)", utc, time.Time{})
	if _, ok := past.Next(time.Date(2025, 1, 1, 0, 0, 0, 0, utc)); ok {
		t.Error("a cron whose years are past has no next occurrence")
	}
}

func TestRateCountsElapsedTimeAcrossDaylightSaving(t *testing.T) {
	paris := mustZone(t, "Europe/Paris")
	anchor := time.Date(2025, 3, 29, 9, 0, 0, 0, paris)
	e, err := Parse("rate(1 day)", paris, anchor)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := e.Next(anchor.Add(-time.Second)); !first.Equal(anchor) {
		t.Errorf("first occurrence %s, want the anchor", first)
	}
	next, _ := e.Next(anchor)
	// 24 hours later, which the shorter spring day shows as 10:00 local.
	if want := time.Date(2025, 3, 30, 10, 0, 0, 0, paris); !next.Equal(want) {
		t.Errorf("next = %s, want %s", next.In(paris), want)
	}
	e, _ = Parse("rate(5 minutes)", time.UTC, anchor)
	if next, _ := e.Next(anchor.Add(7 * time.Minute)); !next.Equal(anchor.Add(10 * time.Minute)) {
		t.Errorf("rate(5 minutes) after 7m = %s", next.Sub(anchor))
	}
}

func TestAtFiresOnceInItsZone(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	e, err := Parse("at(2025-06-01T10:00:00)", ny, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 6, 1, 14, 0, 0, 0, time.UTC)
	if got, ok := e.Next(want.Add(-time.Hour)); !ok || !got.Equal(want) {
		t.Errorf("at = %s, %v", got, ok)
	}
	if _, ok := e.Next(want); ok {
		t.Error("at() has no occurrence after its time")
	}
}

func TestBadExpressionsAndZonesAreRefused(t *testing.T) {
	cases := []struct{ expr, want string }{
		{"cron(0 9 * * *)", "six fields"},
		{"cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(0 9 * * MON *)", "exactly one of day-of-month and day-of-week must be ?"},
		{"cron(60 9 * * ? *)", `minutes "60": values must be 0 to 59`},
		{"cron(0 9 32 * ? *)", `day-of-month "32": values must be 1 to 31`},
		{"cron(0 9 ? * 8 *)", `day-of-week "8": values must be 1 to 7`},
		{"cron(0 9 ? FOO * *)", `month "FOO": values must be 1 to 12`},
		{"cron(0 9 1 FOO ? *)", `month "FOO": values must be 1 to 12`},
		{"cron(0 9 1 * ? 1969)", `year "1969": values must be 1970 to 2199`},
		{"cron(0 9/0 1 * ? *)", "the step must be a positive integer"},
		{"cron(0 9-3 1 * ? *)", "a range must go upwards"},
		{"rate(0 minutes)", "positive integer"},
		{"rate(1 minutes)", "singular for 1"},
		{"rate(5 minute)", "singular for 1"},
		{"rate(5 weeks)", "minutes, hours or days"},
		{"at(2025-06-01 10:00)", "yyyy-mm-ddThh:mm:ss"},
		{"every 5 minutes", "must be at(...), rate(...) or cron(...)"},
	}
	for _, c := range cases {
		_, err := Parse(c.expr, time.UTC, time.Time{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), `ScheduleExpression "`+c.expr+`"`) {
			t.Errorf("Parse(%q) error = %v, want ScheduleExpression ... %q", c.expr, err, c.want)
		}
	}
	for _, zone := range []string{"Mars/Olympus", "Local", "Europe/"} {
		if _, err := LoadZone(zone); err == nil || !strings.Contains(err.Error(), `ScheduleExpressionTimezone "`+zone+`": must be an IANA time zone name`) {
			t.Errorf("LoadZone(%q) error = %v", zone, err)
		}
	}
}
