package health

import (
	"fmt"
	"time"
)

// Scope says whether a transition concerns one service or a whole deployment.
type Scope string

const (
	ScopeService    Scope = "service"
	ScopeDeployment Scope = "deployment"
)

// Severity of an alert, for routing (page on critical, ticket on warning, log info).
type Severity string

const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// Transition is a change of health: one entry of the history, and the content of an alert.
type Transition struct {
	Scope        Scope     `json:"scope"`
	DeploymentID string    `json:"deploymentId"`
	ServiceID    string    `json:"serviceId,omitempty"` // empty for a deployment transition
	From         Health    `json:"from"`
	To           Health    `json:"to"`
	Reason       string    `json:"reason"`
	At           time.Time `json:"at"`
	// Cause identifies what caused the change (the report's order key, or "sweep@<time>"):
	// retries of the same cause produce the same transition, which keeps history and alerts
	// idempotent.
	Cause string `json:"cause"`
}

// Changed reports whether the transition changes anything. A steady state produces no
// transition, hence no history entry and no alert.
func (t Transition) Changed() bool { return t.From != t.To }

// Severity of the alert for this transition: critical when it enters unhealthy, warning when
// it enters degraded or stale, info otherwise (recoveries, starts, stops).
func (t Transition) Severity() Severity {
	switch {
	case t.To == Unhealthy:
		return SeverityCritical
	case t.To.Bad():
		return SeverityWarning
	}
	return SeverityInfo
}

// Alert is the detail of the EventBridge event that announces a transition.
type Alert struct {
	Transition
	Severity Severity `json:"severity"`
	// Recovered is true when a bad health gave way to a good one, so on-call tooling can
	// resolve the incident the earlier alert opened.
	Recovered bool `json:"recovered"`
}

// AlertFor returns the alert announcing t, or false when t changes nothing: only
// transitions raise alerts, never a steady state.
func AlertFor(t Transition) (Alert, bool) {
	if !t.Changed() {
		return Alert{}, false
	}
	return Alert{Transition: t, Severity: t.Severity(), Recovered: t.From.Bad() && !t.To.Bad()}, true
}

// String is a one-line description for logs and timelines.
func (t Transition) String() string {
	subject := "deployment " + t.DeploymentID
	if t.Scope == ScopeService {
		subject = fmt.Sprintf("service %s/%s", t.DeploymentID, t.ServiceID)
	}
	return fmt.Sprintf("%s: %s -> %s (%s)", subject, t.From, t.To, t.Reason)
}
