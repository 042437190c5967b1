// Package health is the control plane's model of service and deployment health: what a
// State Exporter report means, how a deployment's health follows from its services', when a
// silent service becomes stale, and when a change of health is worth an alert. It is pure:
// the repository (package servicestate) stores what it decides.
package health

import (
	"fmt"
	"time"

	"github.com/byocloud/byoc/shared/statemsg"
)

// Health is the control plane's judgement of a service or a deployment.
type Health string

const (
	// Unknown: nothing reported yet (a deployment with no services, a service never heard).
	Unknown   Health = "unknown"
	Healthy   Health = "healthy"
	Idle      Health = "idle"
	Stopped   Health = "stopped"
	Degraded  Health = "degraded"
	Stale     Health = "stale" // the exporter went silent: the truth is unknown, and that is bad
	Unhealthy Health = "unhealthy"
)

// severity orders health from best to worst. Idle and stopped are states a customer chose,
// not faults, so they rank with healthy's neighbours; stale ranks below unhealthy because a
// known failure is worse than an unknown state, but above degraded because silence from a
// cluster usually means it (or its network) is down.
var severity = map[Health]int{
	Unknown:   0,
	Healthy:   1,
	Idle:      2,
	Stopped:   3,
	Degraded:  4,
	Stale:     5,
	Unhealthy: 6,
}

// Valid reports whether h is a known health.
func (h Health) Valid() bool {
	_, ok := severity[h]
	return ok
}

// Severity ranks h: a greater value is worse. Unknown health ranks lowest, so a deployment's
// health is never "unknown" once any service has reported.
func (h Health) Severity() int { return severity[h] }

// Bad reports whether h calls for attention.
func (h Health) Bad() bool { return h == Degraded || h == Stale || h == Unhealthy }

// Worst returns the worst of hs, or Unknown when hs is empty: a deployment is as healthy as
// its sickest service.
func Worst(hs ...Health) Health {
	worst := Unknown
	for _, h := range hs {
		if h.Severity() > worst.Severity() {
			worst = h
		}
	}
	return worst
}

// OfReport judges a service from one exporter report, and says why. The exporter's status is
// the starting point, but the report's own numbers can only make it worse: a service that
// says healthy with no ready replica is down, one with fewer ready replicas than desired or
// with errors firing is degraded.
func OfReport(m statemsg.Message) (Health, string) {
	switch m.Status {
	case statemsg.StatusUnhealthy:
		return Unhealthy, "exporter reported unhealthy"
	case statemsg.StatusStopped:
		return Stopped, "exporter reported stopped"
	case statemsg.StatusIdle:
		return Idle, "exporter reported idle"
	case statemsg.StatusTerminated:
		return Stopped, "exporter reported terminated"
	}
	r := m.Replicas
	if r.Desired > 0 && r.Ready == 0 {
		return Unhealthy, fmt.Sprintf("no ready replica of %d desired", r.Desired)
	}
	if r.Ready < r.Desired {
		return Degraded, fmt.Sprintf("%d of %d replicas ready", r.Ready, r.Desired)
	}
	if m.Status == statemsg.StatusDegraded {
		return Degraded, "exporter reported degraded"
	}
	if m.Errors > 0 {
		return Degraded, fmt.Sprintf("%d errors firing", m.Errors)
	}
	return Healthy, "exporter reported healthy"
}

// DefaultStaleAfter is how long a service may stay silent before it is stale, when the
// deployment does not configure it. Exporters report every 30 seconds; ten missed reports
// are not a network blip.
const DefaultStaleAfter = 5 * time.Minute

// Bounds of a configured staleness period: the sweep index has one-minute resolution, and a
// day of silence unnoticed is no longer monitoring.
const (
	MinStaleAfter = time.Minute
	MaxStaleAfter = 24 * time.Hour
)

// ParseStaleAfter reads a staleness period (a Go duration such as "5m"); empty means
// DefaultStaleAfter. It is the one rule for STATE_STALE_AFTER, applied by statesweep at cold
// start and by the CDK app at synthesis.
func ParseStaleAfter(s string) (time.Duration, error) {
	if s == "" {
		return DefaultStaleAfter, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinStaleAfter || d > MaxStaleAfter {
		return 0, fmt.Errorf("%q: must be a duration between 1m and 24h (the sweep index has one-minute resolution)", s)
	}
	return d, nil
}

// IsStale reports whether a service last heard at lastSeen is stale at now.
func IsStale(lastSeen, now time.Time, staleAfter time.Duration) bool {
	return now.Sub(lastSeen) > staleAfter
}

// StaleCutoff is the instant before which a last report makes a service stale at now.
func StaleCutoff(now time.Time, staleAfter time.Duration) time.Time {
	return now.Add(-staleAfter)
}
