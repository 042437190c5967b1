package asl

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock is the engine's only source of time: Wait states, retry back-off, task and execution
// timeouts and every timestamp go through it, so tests can run them without waiting.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer fires once on C unless stopped first.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is real time. (Inside a testing/synctest bubble it is the bubble's fake time,
// which is how the conformance suite runs hour-long waits instantly.)
func SystemClock() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time { return t.t.C }
func (t systemTimer) Stop() bool          { return t.t.Stop() }

// ManualClock stands still until Advance moves it; timers fire when their time is reached.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
	added  chan struct{}
}

// NewManualClock starts a manual clock at start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, added: make(chan struct{}, 1)}
}

type manualTimer struct {
	clock *ManualClock
	at    time.Time
	c     chan time.Time
	done  bool
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer registers a timer; a non-positive duration fires at once.
func (c *ManualClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{clock: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.done = true
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

// Advance moves the clock forward and fires, in order, every timer that falls due.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			t.c <- t.at
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Pending counts the timers waiting to fire.
func (c *ManualClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.done {
			n++
		}
	}
	return n
}

// WaitForPending blocks until at least n timers are pending (the engine has reached the waits
// a test wants to move past), or ctx ends.
func (c *ManualClock) WaitForPending(ctx context.Context, n int) error {
	for {
		if c.Pending() >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.added:
		case <-time.After(time.Millisecond):
		}
	}
}

// sleep waits d on clock, or returns ctx's error if ctx ends first.
func sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
