package release

import (
	"fmt"
	"slices"
	"time"
)

// Channels a deployment follows, earliest first. A release reaches fast deployments first
// and slow ones last; inside each channel the canaries go before the rest.
const (
	ChannelFast    = "fast"
	ChannelRegular = "regular"
	ChannelSlow    = "slow"
)

// Channels lists the channels in rollout order.
var Channels = []string{ChannelFast, ChannelRegular, ChannelSlow}

// Wave is one step of a rollout: a channel's canaries, or the rest of it.
type Wave struct {
	Channel string `json:"channel"`
	Canary  bool   `json:"canary"`
}

// Waves are a release's waves, in order.
var Waves = func() []Wave {
	var out []Wave
	for _, c := range Channels {
		out = append(out, Wave{c, true}, Wave{c, false})
	}
	return out
}()

// WaveOf is the index in Waves of a deployment's wave.
func WaveOf(channel string, canary bool) int {
	return slices.Index(Waves, Wave{channel, canary})
}

// Name is "regular/canary" or "regular/rest".
func (w Wave) Name() string {
	if w.Canary {
		return w.Channel + "/canary"
	}
	return w.Channel + "/rest"
}

// ValidChannel reports whether c names a channel.
func ValidChannel(c string) bool { return slices.Contains(Channels, c) }

// Wave states, as the release shows them.
const (
	WaveWaiting = "waiting" // not opened: an earlier wave is running, baking or halted
	WaveRunning = "running" // opened: its deployments upgrade (in their windows, or off-cycle)
	WaveBaking  = "baking"  // every deployment settled; the bake time runs
	WaveDone    = "done"
	WaveHalted  = "halted" // a deployment of it failed or regressed: nothing goes on until resumed
)

// WaveProgress is what a release records of one wave.
type WaveProgress struct {
	Wave
	State     string     `json:"state"`
	Members   int        `json:"members"`          // deployments counted into the wave when it opened
	Counted   bool       `json:"counted"`          // every member was counted (and, for security, armed)
	Cursor    string     `json:"cursor,omitempty"` // where counting stopped (a page's last key)
	Settled   int        `json:"settled"`          // members with an outcome (upgraded, current or failed)
	Failed    int        `json:"failed"`
	OpenedAt  *time.Time `json:"openedAt,omitempty"`
	SettledAt *time.Time `json:"settledAt,omitempty"`
}

// NewProgress is a release's rollout before anything opened.
func NewProgress() []WaveProgress {
	out := make([]WaveProgress, len(Waves))
	for i, w := range Waves {
		out[i] = WaveProgress{Wave: w, State: WaveWaiting}
	}
	return out
}

// Advance moves a rollout on at now: a running wave whose members have all settled starts
// baking; a baked wave is done and opens the next. It returns the index of a wave it opened
// (the caller counts its members), or -1. A halted rollout does not move.
func Advance(p []WaveProgress, bake time.Duration, halted bool, now time.Time) int {
	if halted {
		return -1
	}
	for i := range p {
		w := &p[i]
		switch w.State {
		case WaveDone:
			continue
		case WaveWaiting:
			if i == 0 || p[i-1].State == WaveDone {
				at := now.UTC()
				w.State, w.OpenedAt = WaveRunning, &at
				return i
			}
			return -1
		case WaveRunning:
			if !w.Counted || w.Settled < w.Members {
				return -1
			}
			at := now.UTC()
			w.SettledAt = &at
			if w.Members == 0 {
				w.State = WaveDone // nothing ran: nothing to bake
				continue
			}
			w.State = WaveBaking
			fallthrough
		case WaveBaking:
			if now.Before(w.SettledAt.Add(bake)) {
				return -1
			}
			w.State = WaveDone
		case WaveHalted:
			return -1
		}
	}
	return -1
}

// Open reports whether a deployment's wave has opened (it may take the release).
func Open(p []WaveProgress, channel string, canary bool) bool {
	i := WaveOf(channel, canary)
	return i >= 0 && i < len(p) && p[i].State != WaveWaiting
}

// Summary is "fast/canary done, fast/rest running 3/5, …".
func Summary(p []WaveProgress) string {
	s := ""
	for i, w := range p {
		if i > 0 {
			s += ", "
		}
		s += w.Name() + " " + w.State
		if w.State == WaveRunning || w.State == WaveHalted {
			s += fmt.Sprintf(" %d/%d", w.Settled, w.Members)
		}
	}
	return s
}
