package scenario

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
)

// Timeline prints the cloud's events as they happen, with the time since Start: the
// progress a person watches while a scenario runs.
type Timeline struct {
	mu    sync.Mutex
	out   io.Writer
	start time.Time
	quiet map[localcloud.Kind]bool
}

// NewTimeline prints to out, timing from now. Kinds listed in hide are not printed.
func NewTimeline(out io.Writer, hide ...localcloud.Kind) *Timeline {
	t := &Timeline{out: out, start: time.Now(), quiet: map[localcloud.Kind]bool{}}
	for _, k := range hide {
		t.quiet[k] = true
	}
	return t
}

// Observe prints one event.
func (t *Timeline) Observe(e localcloud.Event) {
	if t.quiet[e.Kind] {
		return
	}
	mark := " "
	if e.Failed {
		mark = "!"
	}
	line := fmt.Sprintf("%8.3fs %s %-8s %s", e.At.Sub(t.start).Seconds(), mark, e.Kind, e.Subject)
	if e.Status != "" {
		line += "  " + e.Status
	}
	if e.Account != "" && e.Kind == localcloud.KindStack {
		line += "  [" + e.Account + "]"
	}
	if e.Detail != "" {
		line += "  " + e.Detail
	}
	t.Printf("%s\n", line)
}

// Printf writes a line of the scenario's own narration.
func (t *Timeline) Printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = fmt.Fprintf(t.out, format, args...)
}

// Since is the time since the timeline started.
func (t *Timeline) Since() time.Duration { return time.Since(t.start) }
