package main

import (
	"strings"
	"testing"
	"time"
)

// FuzzAsOf: whatever the schedule's input says, a sweep runs as of a UTC time or refuses,
// naming scheduledTime.
func FuzzAsOf(f *testing.F) {
	f.Add("2026-11-25T09:00:00Z")
	f.Add("")
	f.Add("2026-11-25 09:00")
	clock := func() time.Time { return time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, scheduled string) {
		at, err := Event{ScheduledTime: scheduled}.AsOf(clock)
		if err != nil {
			if !strings.Contains(err.Error(), "scheduledTime") {
				t.Fatalf("error %v does not name scheduledTime", err)
			}
			return
		}
		if at.Location() != time.UTC {
			t.Fatalf("as of %v, want UTC", at)
		}
	})
}
