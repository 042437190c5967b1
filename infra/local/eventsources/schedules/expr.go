package schedules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Expression is a parsed ScheduleExpression.
type Expression interface {
	// Next returns the first occurrence strictly after t, or false when there is none.
	Next(t time.Time) (time.Time, bool)
	String() string
}

// ValidationError is an expression or time zone EventBridge Scheduler would refuse.
type ValidationError struct{ Field, Value, Rule string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Rule)
}

// LoadZone reads ScheduleExpressionTimezone: an IANA name, UTC when empty.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, &ValidationError{"ScheduleExpressionTimezone", name, "must be an IANA time zone name such as Europe/Paris"}
	}
	return loc, nil
}

// Parse reads at(...), rate(...) or cron(...) in time zone loc. For rate, anchor is the
// first occurrence (the schedule's StartDate, or its creation).
func Parse(expr string, loc *time.Location, anchor time.Time) (Expression, error) {
	bad := func(rule string) error { return &ValidationError{"ScheduleExpression", expr, rule} }
	switch {
	case strings.HasPrefix(expr, "at(") && strings.HasSuffix(expr, ")"):
		t, err := time.ParseInLocation("2006-01-02T15:04:05", expr[3:len(expr)-1], loc)
		if err != nil {
			return nil, bad("at() takes yyyy-mm-ddThh:mm:ss")
		}
		return at{t: t, text: expr}, nil
	case strings.HasPrefix(expr, "rate(") && strings.HasSuffix(expr, ")"):
		fields := strings.Fields(expr[5 : len(expr)-1])
		if len(fields) != 2 {
			return nil, bad("rate() takes a value and a unit: rate(5 minutes)")
		}
		n, err := strconv.Atoi(fields[0])
		if err != nil || n <= 0 {
			return nil, bad("the rate value must be a positive integer")
		}
		unit := map[string]time.Duration{
			"minute": time.Minute, "minutes": time.Minute, "hour": time.Hour, "hours": time.Hour,
			"day": 24 * time.Hour, "days": 24 * time.Hour,
		}[fields[1]]
		if unit == 0 {
			return nil, bad("the rate unit must be minutes, hours or days")
		}
		if (n == 1) != !strings.HasSuffix(fields[1], "s") {
			return nil, bad(fmt.Sprintf("the unit must be singular for 1 and plural otherwise (rate(1 %s), rate(2 %ss))", strings.TrimSuffix(fields[1], "s"), strings.TrimSuffix(fields[1], "s")))
		}
		// A day is 24 hours of elapsed time, whatever daylight saving does to the clock.
		return rate{every: time.Duration(n) * unit, anchor: anchor, text: expr}, nil
	case strings.HasPrefix(expr, "cron(") && strings.HasSuffix(expr, ")"):
		c, err := parseCron(expr[5:len(expr)-1], loc)
		if err != nil {
			return nil, bad(err.Error())
		}
		c.text = expr
		return c, nil
	}
	return nil, bad("must be at(...), rate(...) or cron(...)")
}

type at struct {
	t    time.Time
	text string
}

func (a at) Next(t time.Time) (time.Time, bool) { return a.t, a.t.After(t) }
func (a at) String() string                     { return a.text }

type rate struct {
	every  time.Duration
	anchor time.Time
	text   string
}

func (r rate) Next(t time.Time) (time.Time, bool) {
	if t.Before(r.anchor) {
		return r.anchor, true
	}
	n := t.Sub(r.anchor)/r.every + 1
	return r.anchor.Add(n * r.every), true
}
func (r rate) String() string { return r.text }

// cron is EventBridge's six-field cron: minutes hours day-of-month month day-of-week year.
// https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
type cron struct {
	minutes, hours, months, years set
	dom                           domSpec
	dow                           dowSpec
	loc                           *time.Location
	text                          string
}

type set map[int]bool

type domSpec struct {
	any     bool // ?
	days    set
	last    bool // L
	weekday int  // nW: nearest weekday to day n (0: none)
}

type dowSpec struct {
	any    bool // ?
	days   set  // 1=SUN..7=SAT
	lastOf int  // nL: last day n of the month (0: none)
	nth    int  // d#n: the n-th day d of the month
	nthDay int
}

var (
	monthNames = map[string]int{"JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6, "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12}
	dayNames   = map[string]int{"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
	weekdayW   = regexp.MustCompile(`^([0-9]{1,2})W$`)
	lastDow    = regexp.MustCompile(`^([1-7A-Za-z]{1,3})L$`)
	nthDow     = regexp.MustCompile(`^([1-7A-Za-z]{1,3})#([1-5])$`)
)

func parseCron(text string, loc *time.Location) (*cron, error) {
	f := strings.Fields(text)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron() takes six fields: minutes hours day-of-month month day-of-week year")
	}
	c := &cron{loc: loc}
	var err error
	if c.minutes, err = parseField(f[0], 0, 59, nil, "minutes"); err != nil {
		return nil, err
	}
	if c.hours, err = parseField(f[1], 0, 23, nil, "hours"); err != nil {
		return nil, err
	}
	if c.months, err = parseField(f[3], 1, 12, monthNames, "month"); err != nil {
		return nil, err
	}
	if c.years, err = parseField(f[5], 1970, 2199, nil, "year"); err != nil {
		return nil, err
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf("exactly one of day-of-month and day-of-week must be ?")
	}
	switch {
	case f[2] == "?":
		c.dom.any = true
	case f[2] == "L":
		c.dom.last = true
	case weekdayW.MatchString(f[2]):
		n, _ := strconv.Atoi(weekdayW.FindStringSubmatch(f[2])[1])
		if n < 1 || n > 31 {
			return nil, fmt.Errorf("day-of-month %s: the day must be 1 to 31", f[2])
		}
		c.dom.weekday = n
	default:
		if c.dom.days, err = parseField(f[2], 1, 31, nil, "day-of-month"); err != nil {
			return nil, err
		}
	}
	switch {
	case f[4] == "?":
		c.dow.any = true
	case lastDow.MatchString(f[4]):
		d, err := dayValue(lastDow.FindStringSubmatch(f[4])[1])
		if err != nil {
			return nil, err
		}
		c.dow.lastOf = d
	case nthDow.MatchString(f[4]):
		m := nthDow.FindStringSubmatch(f[4])
		d, err := dayValue(m[1])
		if err != nil {
			return nil, err
		}
		c.dow.nthDay = d
		c.dow.nth, _ = strconv.Atoi(m[2])
	default:
		if c.dow.days, err = parseField(f[4], 1, 7, dayNames, "day-of-week"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func dayValue(s string) (int, error) {
	if d, ok := dayNames[strings.ToUpper(s)]; ok {
		return d, nil
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 1 || d > 7 {
		return 0, fmt.Errorf("day-of-week %q: must be 1 to 7 or SUN to SAT", s)
	}
	return d, nil
}

// parseField reads a list of *, values, ranges a-b and steps x/n.
func parseField(field string, lo, hi int, names map[string]int, what string) (set, error) {
	out := set{}
	value := func(s string) (int, error) {
		if v, ok := names[strings.ToUpper(s)]; ok {
			return v, nil
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < lo || v > hi {
			return 0, fmt.Errorf("%s %q: values must be %d to %d", what, s, lo, hi)
		}
		return v, nil
	}
	for part := range strings.SplitSeq(field, ",") {
		rangePart, stepPart, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepPart)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%s %q: the step must be a positive integer", what, part)
			}
			step = n
		}
		var from, to int
		switch {
		case rangePart == "*":
			from, to = lo, hi
		case strings.Contains(rangePart, "-"):
			a, b, _ := strings.Cut(rangePart, "-")
			var err error
			if from, err = value(a); err != nil {
				return nil, err
			}
			if to, err = value(b); err != nil {
				return nil, err
			}
			if to < from {
				return nil, fmt.Errorf("%s %q: a range must go upwards", what, part)
			}
		default:
			v, err := value(rangePart)
			if err != nil {
				return nil, err
			}
			from, to = v, v
			if hasStep {
				to = hi // 0/10: from 0 every 10
			}
		}
		for v := from; v <= to; v += step {
			out[v] = true
		}
	}
	return out, nil
}

func (c *cron) String() string { return c.text }

// Next walks the wall clock of the schedule's time zone. A wall time that daylight saving
// skips does not exist, so it is not an occurrence; a wall time that the fall-back hour
// repeats maps to its first instant only, so it occurs once — as EventBridge Scheduler
// documents.
func (c *cron) Next(t time.Time) (time.Time, bool) {
	local := t.In(c.loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, time.UTC)
	for range 366 * 8 { // a few years: enough for any expression that still occurs
		y, m, d := day.Date()
		if y > 2199 {
			return time.Time{}, false
		}
		if c.years[y] && c.months[int(m)] && c.dayMatches(y, m, d) {
			for h := range 24 {
				if !c.hours[h] {
					continue
				}
				for minute := range 60 {
					if !c.minutes[minute] {
						continue
					}
					cand, exists := firstInstant(y, m, d, h, minute, c.loc)
					if exists && cand.After(t) {
						return cand, true
					}
				}
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}, false
}

// firstInstant returns the earliest instant whose wall time in loc is the given one; false
// when daylight saving skips that wall time. (time.Date does not say which instant it
// picks for a repeated wall time.)
func firstInstant(y int, m time.Month, d, h, minute int, loc *time.Location) (time.Time, bool) {
	wall := time.Date(y, m, d, h, minute, 0, 0, time.UTC)
	var best time.Time
	found := false
	for _, probe := range []time.Duration{-36 * time.Hour, 0, 36 * time.Hour} {
		_, offset := wall.Add(probe).In(loc).Zone()
		inst := wall.Add(-time.Duration(offset) * time.Second)
		l := inst.In(loc)
		if l.Year() == y && l.Month() == m && l.Day() == d && l.Hour() == h && l.Minute() == minute {
			if !found || inst.Before(best) {
				best, found = inst, true
			}
		}
	}
	return best, found
}

func (c *cron) dayMatches(y int, m time.Month, d int) bool {
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	weekday := int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()) + 1 // 1=SUN
	if !c.dom.any {
		switch {
		case c.dom.last:
			return d == last
		case c.dom.weekday > 0:
			return d == nearestWeekday(y, m, min(c.dom.weekday, last), last)
		default:
			return c.dom.days[d]
		}
	}
	switch {
	case c.dow.lastOf > 0:
		return weekday == c.dow.lastOf && d+7 > last
	case c.dow.nth > 0:
		return weekday == c.dow.nthDay && (d-1)/7+1 == c.dow.nth
	default:
		return c.dow.days[weekday]
	}
}

// nearestWeekday is the weekday closest to day n of the month, never leaving the month.
func nearestWeekday(y int, m time.Month, n, last int) int {
	switch time.Date(y, m, n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == last {
			return n - 2
		}
		return n + 1
	}
	return n
}
