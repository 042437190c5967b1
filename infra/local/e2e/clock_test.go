package e2e

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// cloudClock is the shared cloud's clock: the machine's time plus an offset a test may move.
// Everything else in the run (onboarding, stack delays, workflow timeouts, the schedules)
// sees real time, as with clock.Real; the staleness test jumps it forward to reach the
// sweep's cutoff without waiting minutes, then brings it back. clock.Manual would stop the
// cloud's time for every other test, so the e2e package keeps its own.
type cloudClock struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters []*clockWaiter
	start   time.Time // real time when the clock was made (Anchor)
	onJump  func(cloudStart, realStart time.Time, speed float64)
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *cloudClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// After fires once the clock has reached now+d: when that much real time passed, or when
// a jump moved the clock past it, whichever comes first.
func (c *cloudClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.Now()
		return ch
	}
	w := &clockWaiter{at: c.Now().Add(d), ch: ch}
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	c.arm(w, d)
	return ch
}

// arm checks w again after d of real time; if the clock went back meanwhile, it waits on.
func (c *cloudClock) arm(w *clockWaiter, d time.Duration) {
	time.AfterFunc(d, func() {
		if left, pending := c.fire(w); pending {
			c.arm(w, left)
		}
	})
}

// fire releases w if its time has come. Otherwise it says how far off it is, and whether
// it still waits (a jump may have released it already).
func (c *cloudClock) fire(w *clockWaiter) (left time.Duration, pending bool) {
	c.mu.Lock()
	i := slices.Index(c.waiters, w)
	now := time.Now().Add(c.offset)
	if i < 0 || w.at.After(now) {
		c.mu.Unlock()
		return w.at.Sub(now), i >= 0
	}
	c.waiters = slices.Delete(c.waiters, i, i+1)
	c.mu.Unlock()
	w.ch <- now
	return 0, false
}

// Anchor, Speed and OnJumpDo let the local cloud give the function processes this clock.
func (c *cloudClock) Anchor() (cloudStart, realStart time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start.IsZero() {
		c.start = time.Now()
	}
	return c.start.Add(c.offset), c.start
}

func (c *cloudClock) Speed() float64 { return 1 }

func (c *cloudClock) OnJumpDo(f func(cloudStart, realStart time.Time, speed float64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onJump = f
}

// Jump moves the clock by d (forward or back) and releases the waits now due.
func (c *cloudClock) Jump(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	waiting := slices.Clone(c.waiters)
	onJump := c.onJump
	c.mu.Unlock()
	if onJump != nil {
		cloudStart, realStart := c.Anchor()
		onJump(cloudStart, realStart, 1)
	}
	for _, w := range waiting {
		c.fire(w)
	}
}

// Offset is how far the clock is from the machine's.
func (c *cloudClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// The cloud's clock follows real time, releases a wait when a jump passes it, and a wait
// whose time a jump back moved away fires when the clock reaches it again.
func TestCloudClockJumps(t *testing.T) {
	c := &cloudClock{}
	if d := c.Now().Sub(time.Now()); d > time.Second || d < -time.Second {
		t.Fatalf("a fresh clock is %s off", d)
	}
	long := c.After(time.Hour)
	c.Jump(2 * time.Hour)
	select {
	case <-long:
	case <-time.After(10 * time.Second):
		t.Fatal("a jump past a wait did not release it")
	}
	back := c.After(50 * time.Millisecond)
	c.Jump(-c.Offset())
	if c.Offset() != 0 {
		t.Fatalf("offset %s after jumping back", c.Offset())
	}
	select {
	case <-back:
		t.Fatal("a wait fired although the clock went back two hours")
	case <-time.After(200 * time.Millisecond):
	}
	c.Jump(2 * time.Hour)
	select {
	case <-back:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not fire once the clock reached it again")
	}
}
