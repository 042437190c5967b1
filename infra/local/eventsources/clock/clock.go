// Package clock is the local cloud's time: real, accelerated (a demo where a maintenance
// window an hour away opens in seconds) or manual (a test that moves time itself). The
// schedule firer and the stack engine's delays both read it, so one speed setting moves the
// whole cloud.
package clock

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Clock tells the time and waits. Its After matches the stack engine's Clock interface.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the clock's time once d of clock time passed.
	After(d time.Duration) <-chan time.Time
}

// Real is the machine's clock.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Accelerated runs Speed times faster than the machine's clock, from the moment it was
// made: after one real second, Now has moved Speed seconds. Jump moves it forward at once
// (a demo reaching next week's maintenance window), releasing the waits that came due.
type Accelerated struct {
	speed     float64
	realStart time.Time

	mu      sync.Mutex
	start   time.Time // the clock's reading at realStart, jumps included
	waiters []*accelWaiter
	// OnJump, when set, is told the clock's new anchor after a jump, before the waits it
	// released are: the local cloud passes it on to the function processes.
	OnJump func(cloudStart, realStart time.Time, speed float64)
}

type accelWaiter struct {
	at   time.Time
	ch   chan time.Time
	done bool
}

// NewAccelerated returns a clock running speed times faster than real time, starting at
// the current time. A speed of 1 is the real clock; speeds below 1 slow time down.
func NewAccelerated(speed float64) *Accelerated {
	if speed <= 0 {
		speed = 1
	}
	now := time.Now()
	return &Accelerated{speed: speed, realStart: now, start: now}
}

// Anchor is where the clock started, in its own time (jumps included) and in real time:
// with Speed, all a process needs to read the same clock (shared/clock).
func (a *Accelerated) Anchor() (cloudStart, realStart time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.start, a.realStart
}

// Speed is the clock's rate relative to real time.
func (a *Accelerated) Speed() float64 { return a.speed }

// OnJumpDo sets OnJump.
func (a *Accelerated) OnJumpDo(f func(cloudStart, realStart time.Time, speed float64)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.OnJump = f
}

// Jumping is a clock that can jump and tell a process how to read it: Accelerated, or a
// test's own.
type Jumping interface {
	Clock
	Jump(d time.Duration)
	Anchor() (cloudStart, realStart time.Time)
	Speed() float64
	OnJumpDo(func(cloudStart, realStart time.Time, speed float64))
}

var _ Jumping = (*Accelerated)(nil)

func (a *Accelerated) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now()
}

func (a *Accelerated) now() time.Time {
	return a.start.Add(time.Duration(float64(time.Since(a.realStart)) * a.speed))
}

func (a *Accelerated) After(d time.Duration) <-chan time.Time {
	a.mu.Lock()
	w := &accelWaiter{at: a.now().Add(d), ch: make(chan time.Time, 1)}
	a.waiters = append(a.waiters, w)
	a.mu.Unlock()
	time.AfterFunc(time.Duration(float64(d)/a.speed), func() { a.fire(w) })
	return w.ch
}

// Jump moves the clock forward by d at once; waits that came due are released.
func (a *Accelerated) Jump(d time.Duration) {
	if d <= 0 {
		return
	}
	a.mu.Lock()
	a.start = a.start.Add(d)
	start, onJump := a.start, a.OnJump
	a.mu.Unlock()
	if onJump != nil {
		onJump(start, a.realStart, a.speed)
	}
	a.mu.Lock()
	now := a.now()
	var due []*accelWaiter
	keep := a.waiters[:0]
	for _, w := range a.waiters {
		switch {
		case w.done:
		case !w.at.After(now):
			w.done = true
			due = append(due, w)
		default:
			keep = append(keep, w)
		}
	}
	a.waiters = keep
	a.mu.Unlock()
	for _, w := range due {
		w.ch <- now
	}
}

// fire releases one wait when its real time has passed (unless a jump released it).
func (a *Accelerated) fire(w *accelWaiter) {
	a.mu.Lock()
	if w.done {
		a.mu.Unlock()
		return
	}
	w.done = true
	a.waiters = slices.DeleteFunc(a.waiters, func(x *accelWaiter) bool { return x == w })
	now := a.now()
	a.mu.Unlock()
	w.ch <- now
}

// Manual moves only when told: Advance and Set fire the waits whose time has come, in
// order. Tests use it to reach a schedule's next occurrence without waiting for it.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewManual returns a clock stopped at start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *Manual) After(d time.Duration) <-chan time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan time.Time, 1)
	at := m.now.Add(d)
	if d <= 0 {
		ch <- m.now
		return ch
	}
	m.waiters = append(m.waiters, waiter{at: at, ch: ch})
	return ch
}

// Advance moves the clock forward by d.
func (m *Manual) Advance(d time.Duration) { m.Set(m.Now().Add(d)) }

// Set moves the clock to t (never backwards) and releases the waits due by then.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	if t.Before(m.now) {
		m.mu.Unlock()
		return
	}
	m.now = t
	sort.Slice(m.waiters, func(i, j int) bool { return m.waiters[i].at.Before(m.waiters[j].at) })
	var due []waiter
	keep := m.waiters[:0]
	for _, w := range m.waiters {
		if !w.at.After(t) {
			due = append(due, w)
		} else {
			keep = append(keep, w)
		}
	}
	m.waiters = keep
	m.mu.Unlock()
	for _, w := range due {
		w.ch <- t
	}
}

// Waiting is how many waits are pending: a test advances once the code under test waits.
func (m *Manual) Waiting() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters)
}
