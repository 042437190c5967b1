package clock

import (
	"testing"
	"time"
)

func TestAcceleratedClockRunsFaster(t *testing.T) {
	c := NewAccelerated(600) // ten minutes per real second
	// Real time is read around the clock's, so a loaded machine cannot make this fail.
	realStart := time.Now()
	start := c.Now()
	time.Sleep(50 * time.Millisecond)
	now := c.Now()
	realMoved := time.Since(realStart)
	if moved := now.Sub(start); moved < 600*50*time.Millisecond || moved > 600*realMoved {
		t.Errorf("after %s real, the clock moved %s; want 600 times that", realMoved, moved)
	}
	began := time.Now()
	fired := <-c.After(time.Minute) // 100 ms of real time
	if real := time.Since(began); real > 10*time.Second {
		t.Errorf("a one-minute wait took %s of real time, want about 100ms", real)
	}
	if fired.Sub(start) < time.Minute {
		t.Errorf("the wait ended at clock time %s after start, before its minute", fired.Sub(start))
	}
	if NewAccelerated(0).Speed() != 1 || NewAccelerated(-3).Speed() != 1 {
		t.Error("a non-positive speed must mean real time")
	}
}

func TestManualClockReleasesWaitsInOrder(t *testing.T) {
	start := time.Date(2025, 3, 30, 0, 0, 0, 0, time.UTC)
	c := NewManual(start)
	late, early := c.After(2*time.Hour), c.After(time.Hour)
	if c.Waiting() != 2 {
		t.Fatalf("Waiting() = %d", c.Waiting())
	}
	c.Advance(90 * time.Minute)
	select {
	case at := <-early:
		if !at.Equal(start.Add(90 * time.Minute)) {
			t.Errorf("early wait released at %s", at)
		}
	default:
		t.Fatal("the one-hour wait was not released after 90 minutes")
	}
	select {
	case <-late:
		t.Fatal("the two-hour wait was released early")
	default:
	}
	c.Set(start) // backwards: ignored
	if !c.Now().Equal(start.Add(90 * time.Minute)) {
		t.Errorf("Set backwards moved the clock to %s", c.Now())
	}
	c.Advance(time.Hour)
	if _, ok := <-late; !ok || c.Waiting() != 0 {
		t.Error("the two-hour wait must be released")
	}
	select {
	case <-c.After(0):
	default:
		t.Error("a zero wait must be ready at once")
	}
}

func TestAcceleratedJumpReleasesWhatCameDue(t *testing.T) {
	a := NewAccelerated(1)
	var anchor time.Time
	a.OnJump = func(cloudStart, _ time.Time, _ float64) { anchor = cloudStart }
	soon, later := a.After(30*time.Minute), a.After(3*time.Hour)
	before := a.Now()
	a.Jump(time.Hour)
	if got := a.Now().Sub(before); got < time.Hour || got > time.Hour+time.Minute {
		t.Fatalf("a one-hour jump moved the clock %s", got)
	}
	if anchor.IsZero() {
		t.Fatal("OnJump was not told the new anchor")
	}
	select {
	case <-soon:
	case <-time.After(5 * time.Second):
		t.Fatal("a wait that came due was not released by the jump")
	}
	select {
	case <-later:
		t.Fatal("a wait still two hours off was released")
	default:
	}
	quick := a.After(20 * time.Millisecond)
	select {
	case <-quick: // real time still moves it
	case <-time.After(5 * time.Second):
		t.Fatal("a short wait was never released")
	}
}
