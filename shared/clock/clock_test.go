package clock

import (
	"os"
	"testing"
	"time"
)

func TestLocalClockRunsAtItsSpeedFromItsStart(t *testing.T) {
	realStart := time.Now().Add(-2 * time.Second)
	cloudStart := time.Date(2027, 3, 14, 9, 0, 0, 0, time.UTC)
	now, err := Parse(Format(cloudStart, realStart, 60))
	if err != nil {
		t.Fatal(err)
	}
	// At least two real seconds passed: at least two cloud minutes.
	if got := now().Sub(cloudStart); got < 2*time.Minute || got > time.Hour {
		t.Fatalf("cloud time moved %s after 2 s at speed 60", got)
	}
	for _, bad := range []string{"", "1/2", "a/2/3", "1/2/0", "1/2/-1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNowFollowsTheClockFileAcrossJumps(t *testing.T) {
	path := t.TempDir() + "/clock"
	t.Setenv(EnvLocalClock, path)
	write := func(cloudStart time.Time) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(Format(cloudStart, time.Now(), 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		// A jump must be seen even within the file system's timestamp resolution.
		later := time.Now().Add(time.Duration(len(cloudStart.String())) * time.Second)
		_ = os.Chtimes(tmp, later, cloudStart)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	week := time.Date(2027, 3, 14, 9, 0, 0, 0, time.UTC)
	write(week)
	if got := Now(); got.Sub(week).Abs() > time.Minute {
		t.Fatalf("Now = %s, want about %s", got, week)
	}
	write(week.Add(7 * 24 * time.Hour))
	if got := Now(); got.Sub(week.Add(7*24*time.Hour)).Abs() > time.Minute {
		t.Fatalf("after the jump Now = %s", got)
	}
}
