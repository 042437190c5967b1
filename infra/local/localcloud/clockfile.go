package localcloud

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/byocloud/byoc/infra/local/eventsources/clock"
	fnclock "github.com/byocloud/byoc/shared/clock"
)

// functionClock gives the function processes the cloud's clock: a file they read it from
// (shared/clock), rewritten when the clock jumps. A manual clock (tests that move time
// themselves, with no function processes that care) gives none: functions use real time.
func functionClock(c clock.Clock) (map[string]string, error) {
	a, ok := c.(clock.Jumping)
	if !ok {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "byoc-clock-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "clock")
	write := func(cloudStart, realStart time.Time, speed float64) error {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(fnclock.Format(cloudStart, realStart, speed)), 0o600); err != nil {
			return err
		}
		// The readers notice a change by the file's modification time: make it the cloud's
		// start, which every jump changes, whatever the file system's resolution.
		if err := os.Chtimes(tmp, time.Now(), cloudStart); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
	cloudStart, realStart := a.Anchor()
	if err := write(cloudStart, realStart, a.Speed()); err != nil {
		return nil, fmt.Errorf("the functions' clock file: %w", err)
	}
	a.OnJumpDo(func(cloudStart, realStart time.Time, speed float64) {
		if err := write(cloudStart, realStart, speed); err != nil {
			panic(fmt.Sprintf("the functions' clock file: %v", err)) // the functions would run on another time
		}
	})
	return map[string]string{fnclock.EnvLocalClock: path}, nil
}

// Jump moves the cloud's clock forward by d at once, for every part of it: the schedules
// whose time came fire, workflow waits and timeouts that came due end, and the functions
// read the new time. Only an accelerated clock (the default) can jump.
func (c *Cloud) Jump(d time.Duration) error {
	a, ok := c.Clock.(clock.Jumping)
	if !ok {
		return fmt.Errorf("the cloud's clock (%T) cannot jump", c.Clock)
	}
	from := a.Now()
	a.Jump(d)
	c.emit(Event{Kind: KindClock, Subject: "clock", Status: "jumped " + d.Round(time.Second).String(),
		Detail: fmt.Sprintf("%s -> %s", from.UTC().Format(time.RFC3339), a.Now().UTC().Format(time.RFC3339))})
	return nil
}
