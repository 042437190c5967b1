// Package clock is the functions' time. In AWS it is the machine's. The local cloud can run
// its clock faster than real time (a demo reaching next week's maintenance window in
// seconds); it tells its function processes that clock through EnvLocalClock, which nothing
// sets in AWS, so a window the cloud's Scheduler opens is open for the functions too.
package clock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvLocalClock is "<cloud start, unix ns>/<real start, unix ns>/<speed>": the cloud's time is
// cloud start + (now - real start) × speed.
const EnvLocalClock = "BYOC_LOCAL_CLOCK"

var (
	once  sync.Once
	local func() time.Time
)

// Now is the current time: the machine's, or the local cloud's.
func Now() time.Time {
	once.Do(func() {
		if v := os.Getenv(EnvLocalClock); v != "" {
			f, err := Parse(v)
			if err != nil {
				panic(err) // only the local cloud sets it: a bad value is its defect
			}
			local = f
		}
	})
	if local != nil {
		return local()
	}
	return time.Now()
}

// Format renders a clock for EnvLocalClock.
func Format(cloudStart, realStart time.Time, speed float64) string {
	return fmt.Sprintf("%d/%d/%s", cloudStart.UnixNano(), realStart.UnixNano(), strconv.FormatFloat(speed, 'f', -1, 64))
}

// Parse reads EnvLocalClock's value into a clock.
func Parse(v string) (func() time.Time, error) {
	parts := strings.Split(v, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%s=%q: want <cloud start ns>/<real start ns>/<speed>", EnvLocalClock, v)
	}
	cs, err1 := strconv.ParseInt(parts[0], 10, 64)
	rs, err2 := strconv.ParseInt(parts[1], 10, 64)
	speed, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || speed <= 0 {
		return nil, fmt.Errorf("%s=%q: want <cloud start ns>/<real start ns>/<speed>", EnvLocalClock, v)
	}
	cloudStart, realStart := time.Unix(0, cs), time.Unix(0, rs)
	return func() time.Time {
		return cloudStart.Add(time.Duration(float64(time.Since(realStart)) * speed))
	}, nil
}
