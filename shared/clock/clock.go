// Package clock is the functions' time. In AWS it is the machine's. The local cloud's clock
// can run faster than real time and jump forward (a demo reaching next week's maintenance
// window in seconds); it tells its function processes that clock through the file
// EnvLocalClock names, which nothing sets in AWS, so a window the cloud's Scheduler opens is
// open for the functions too.
package clock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvLocalClock names a file holding "<cloud start, unix ns>/<real start, unix ns>/<speed>":
// the cloud's time is cloud start + (now - real start) × speed. The local cloud rewrites it
// (by rename) when its clock jumps.
const EnvLocalClock = "BYOC_LOCAL_CLOCK_FILE"

var (
	mu      sync.Mutex
	modTime time.Time
	local   func() time.Time
)

// Now is the current time: the machine's, or the local cloud's.
func Now() time.Time {
	path := os.Getenv(EnvLocalClock)
	if path == "" {
		return time.Now()
	}
	mu.Lock()
	defer mu.Unlock()
	if info, err := os.Stat(path); err == nil && !info.ModTime().Equal(modTime) {
		body, err := os.ReadFile(path)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", EnvLocalClock, err)) // only the local cloud sets it: its defect
		}
		f, err := Parse(strings.TrimSpace(string(body)))
		if err != nil {
			panic(err)
		}
		local, modTime = f, info.ModTime()
	}
	if local == nil {
		return time.Now()
	}
	return local()
}

// Format renders a clock for the EnvLocalClock file.
func Format(cloudStart, realStart time.Time, speed float64) string {
	return fmt.Sprintf("%d/%d/%s", cloudStart.UnixNano(), realStart.UnixNano(), strconv.FormatFloat(speed, 'f', -1, 64))
}

// Parse reads the EnvLocalClock file's content into a clock.
func Parse(v string) (func() time.Time, error) {
	parts := strings.Split(v, "/")
	if len(parts) != 3 {
		return nil, fmt.Errorf("local clock %q: want <cloud start ns>/<real start ns>/<speed>", v)
	}
	cs, err1 := strconv.ParseInt(parts[0], 10, 64)
	rs, err2 := strconv.ParseInt(parts[1], 10, 64)
	speed, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || speed <= 0 {
		return nil, fmt.Errorf("local clock %q: want <cloud start ns>/<real start ns>/<speed>", v)
	}
	cloudStart, realStart := time.Unix(0, cs), time.Unix(0, rs)
	return func() time.Time {
		return cloudStart.Add(time.Duration(float64(time.Since(realStart)) * speed))
	}, nil
}
