// Package window is a deployment's maintenance window: a weekly slot (weekday, local start
// time, IANA time zone, duration) during which regular upgrades may run. It computes the
// window's occurrences as instants, across daylight-saving changes, and is pure: no AWS
// calls, every rule unit-tested.
//
// Daylight saving, the two cases a weekly local time meets:
//   - a start that does not exist that day (02:30 in Los Angeles on the spring-forward
//     Sunday) opens at the first valid instant after it (03:00 PDT) and keeps its full
//     elapsed duration: the week's window is never skipped;
//   - a start that occurs twice (01:30 on the fall-back Sunday) opens once, at the first.
//
// EventBridge Scheduler's cron skips the first case silently, which is why byoc schedules
// each occurrence as a one-time at() in UTC computed here, and re-arms it after each window.
package window

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // every IANA zone, whatever the machine (or Lambda's image) has installed

	"github.com/byocloud/byoc/shared/settings"
)

// Window is a weekly maintenance slot.
type Window struct {
	Day      string `json:"day"`           // lowercase English weekday: "tuesday"
	Start    string `json:"start"`         // local start, "HH:MM" (24-hour)
	TimeZone string `json:"timeZone"`      // IANA zone: "America/Los_Angeles"
	Hours    int    `json:"durationHours"` // 1 to 8
}

// Limits and the default of a window's duration.
const (
	MinHours     = 1
	MaxHours     = 8
	DefaultHours = 4
	// defaultStart and defaultDay: the region's night, early in the week, away from the
	// weekend's batch jobs and Monday's catch-up.
	defaultStart = "02:00"
	defaultDay   = "tuesday"
)

var startPattern = regexp.MustCompile(`^([01]\d|2[0-3]):[0-5]\d$`)

var days = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// regionZones is the zone whose night a region's default window falls in.
var regionZones = map[string]string{
	"us-east-1": "America/New_York", "us-east-2": "America/New_York", "us-west-2": "America/Los_Angeles",
	"ca-central-1": "America/Toronto", "mx-central-1": "America/Mexico_City", "sa-east-1": "America/Sao_Paulo",
	"eu-central-1": "Europe/Berlin", "eu-west-1": "Europe/Dublin", "eu-west-2": "Europe/London", "eu-north-1": "Europe/Stockholm",
	"il-central-1": "Asia/Jerusalem", "af-south-1": "Africa/Johannesburg",
	"ap-northeast-1": "Asia/Tokyo", "ap-northeast-2": "Asia/Seoul", "ap-south-1": "Asia/Kolkata",
	"ap-southeast-1": "Asia/Singapore", "ap-southeast-2": "Australia/Sydney", "ap-southeast-3": "Asia/Jakarta",
	"ap-east-1": "Asia/Hong_Kong",
}

// Default is the window a deployment gets when its invitation names none: Tuesday 02:00 for
// four hours in the region's own time zone (UTC for a region byoc has no zone for).
func Default(region string) Window {
	zone := regionZones[region]
	if zone == "" {
		zone = "UTC"
	}
	return Window{Day: defaultDay, Start: defaultStart, TimeZone: zone, Hours: DefaultHours}
}

// Rules, phrased for settings.FieldError.Rule.
const (
	ruleDay   = "must be a weekday in English: monday, tuesday, wednesday, thursday, friday, saturday or sunday"
	ruleStart = "must be a local time HH:MM on the 24-hour clock (00:00 to 23:59)"
	ruleZone  = "must be an IANA time zone such as America/Los_Angeles or Europe/London"
	ruleHours = "must be a whole number of hours from 1 to 8"
)

// Normalize fills in the default duration, lowercases the day and validates everything; a
// broken rule is reported as a *settings.ValidationError naming the field (prefixed with
// field, "window" in an invitation) and the rule, with the input returned unchanged.
func Normalize(w Window, field string) (Window, error) {
	out := w
	out.Day = strings.ToLower(strings.TrimSpace(w.Day))
	if out.Hours == 0 {
		out.Hours = DefaultHours
	}
	c := settings.Collector{Of: "window"}
	if _, ok := days[out.Day]; !ok {
		c.Add(field+".day", w.Day, ruleDay)
	}
	if !startPattern.MatchString(w.Start) {
		c.Add(field+".start", w.Start, ruleStart)
	}
	if _, err := loadZone(w.TimeZone); err != nil {
		c.Add(field+".timeZone", w.TimeZone, ruleZone)
	}
	if out.Hours < MinHours || out.Hours > MaxHours {
		c.Add(field+".durationHours", fmt.Sprint(w.Hours), ruleHours)
	}
	if err := c.Err(); err != nil {
		return w, err
	}
	return out, nil
}

// loadZone refuses the names time.LoadLocation accepts but a customer cannot mean: "" and
// "Local" (the machine's zone). Zones are kept once loaded: loading one reads and parses
// the embedded database, far more work than computing a window.
func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("no such zone %q", name)
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, loc)
	return loc, nil
}

var zones sync.Map // name -> *time.Location

// Location is the window's time zone.
func (w Window) Location() (*time.Location, error) { return loadZone(w.TimeZone) }

// Occurrence is one opening of a window.
type Occurrence struct {
	// Key names the occurrence by its local date ("2027-03-14"): the same for every
	// computation of it, so it can name an execution or a deferral.
	Key    string    `json:"key"`
	Opens  time.Time `json:"opens"`
	Closes time.Time `json:"closes"`
}

// Current returns the occurrence open at t, or the next one to open after t. The window
// must be valid (Normalize).
func (w Window) Current(t time.Time) (Occurrence, error) {
	loc, err := loadZone(w.TimeZone)
	if err != nil {
		return Occurrence{}, fmt.Errorf("window: %w", err)
	}
	day, ok := days[w.Day]
	if !ok {
		return Occurrence{}, fmt.Errorf("window: unknown day %q", w.Day)
	}
	var hh, mm int
	if _, err := fmt.Sscanf(w.Start, "%d:%d", &hh, &mm); err != nil {
		return Occurrence{}, fmt.Errorf("window: start %q: %w", w.Start, err)
	}
	length := time.Duration(w.Hours) * time.Hour
	// The occurrence open at t began at most MaxHours earlier, so start looking a week
	// before t's local date; two weeks of dates always hold the answer.
	local := t.In(loc)
	date := time.Date(local.Year(), local.Month(), local.Day(), 12, 0, 0, 0, time.UTC).AddDate(0, 0, -7)
	for range 15 {
		if date.Weekday() == day {
			opens := Opening(date.Year(), date.Month(), date.Day(), hh, mm, loc)
			if closes := opens.Add(length); closes.After(t) {
				return Occurrence{Key: date.Format(time.DateOnly), Opens: opens, Closes: closes}, nil
			}
		}
		date = date.AddDate(0, 0, 1)
	}
	return Occurrence{}, fmt.Errorf("window: no occurrence within two weeks of %s", t.Format(time.RFC3339)) // unreachable for a valid window
}

// Next returns n occurrences: the one open at t (or the next to open), then the following.
func (w Window) Next(t time.Time, n int) ([]Occurrence, error) {
	var out []Occurrence
	for len(out) < n {
		o, err := w.Current(t)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
		t = o.Closes
	}
	return out, nil
}

// After returns the first occurrence whose key is later than key: the one after a given
// occurrence, whatever its length.
func (w Window) After(o Occurrence) (Occurrence, error) { return w.Current(o.Closes) }

// Opening is the instant a local wall time of a date begins in loc: the earlier one when
// the time occurs twice (a fall-back), and the first valid instant after it when it does
// not occur (a spring-forward gap).
func Opening(y int, m time.Month, d, hh, mm int, loc *time.Location) time.Time {
	wall := time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
	var best time.Time
	found := false
	// Every offset the zone uses within a day of the wall time: an instant whose local
	// reading is the wall time has one of them.
	for _, probe := range []time.Time{wall.Add(-36 * time.Hour), wall, wall.Add(36 * time.Hour)} {
		_, offset := probe.In(loc).Zone()
		u := wall.Add(-time.Duration(offset) * time.Second)
		if sameWall(u.In(loc), wall) && (!found || u.Before(best)) {
			best, found = u, true
		}
	}
	if found {
		return best
	}
	// A gap: read the wall time with the offset before the change; that instant lies past
	// the change, and the zone period it falls in began at the first valid instant.
	_, before := wall.Add(-36 * time.Hour).In(loc).Zone()
	u := wall.Add(-time.Duration(before) * time.Second)
	start, _ := u.In(loc).ZoneBounds()
	if start.IsZero() || start.After(u) {
		return u
	}
	return start
}

func sameWall(local, wall time.Time) bool {
	return local.Year() == wall.Year() && local.Month() == wall.Month() && local.Day() == wall.Day() &&
		local.Hour() == wall.Hour() && local.Minute() == wall.Minute()
}

// Describe is the window as a person reads it: "tuesday 02:00 America/New_York, 4 h".
func (w Window) Describe() string {
	return fmt.Sprintf("%s %s %s, %d h", w.Day, w.Start, w.TimeZone, w.Hours)
}
