package clock

import (
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
