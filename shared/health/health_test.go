package health

import (
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/statemsg"
)

func report(status statemsg.Status, ready, desired, errors int) statemsg.Message {
	return statemsg.Message{Status: status, Replicas: statemsg.Replicas{Ready: ready, Desired: desired}, Errors: errors}
}

func TestOfReport(t *testing.T) {
	cases := []struct {
		name   string
		m      statemsg.Message
		want   Health
		reason string
	}{
		{"healthy", report(statemsg.StatusHealthy, 3, 3, 0), Healthy, "exporter reported healthy"},
		{"more ready than desired while scaling down", report(statemsg.StatusHealthy, 4, 3, 0), Healthy, "exporter reported healthy"},
		{"healthy but no replica ready", report(statemsg.StatusHealthy, 0, 3, 0), Unhealthy, "no ready replica of 3 desired"},
		{"healthy but short of replicas", report(statemsg.StatusHealthy, 2, 3, 0), Degraded, "2 of 3 replicas ready"},
		{"healthy but errors firing", report(statemsg.StatusHealthy, 3, 3, 2), Degraded, "2 errors firing"},
		{"warnings alone do not degrade", statemsg.Message{Status: statemsg.StatusHealthy, Replicas: statemsg.Replicas{Ready: 1, Desired: 1}, Warnings: 5}, Healthy, "exporter reported healthy"},
		{"degraded", report(statemsg.StatusDegraded, 3, 3, 0), Degraded, "exporter reported degraded"},
		{"degraded with no replica is unhealthy", report(statemsg.StatusDegraded, 0, 2, 0), Unhealthy, "no ready replica of 2 desired"},
		{"unhealthy", report(statemsg.StatusUnhealthy, 3, 3, 0), Unhealthy, "exporter reported unhealthy"},
		{"stopped has no replicas and is fine", report(statemsg.StatusStopped, 0, 0, 0), Stopped, "exporter reported stopped"},
		{"idle", report(statemsg.StatusIdle, 0, 3, 0), Idle, "exporter reported idle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, reason := OfReport(c.m)
			if got != c.want || reason != c.reason {
				t.Fatalf("OfReport = %s (%s), want %s (%s)", got, reason, c.want, c.reason)
			}
		})
	}
}

func TestWorst(t *testing.T) {
	cases := []struct {
		in   []Health
		want Health
	}{
		{nil, Unknown},
		{[]Health{Healthy}, Healthy},
		{[]Health{Healthy, Idle, Healthy}, Idle},
		{[]Health{Stopped, Healthy}, Stopped},
		{[]Health{Healthy, Degraded, Stopped}, Degraded},
		{[]Health{Degraded, Stale}, Stale},
		{[]Health{Stale, Unhealthy, Healthy}, Unhealthy},
		{[]Health{Unknown, Healthy}, Healthy},
	}
	for _, c := range cases {
		if got := Worst(c.in...); got != c.want {
			t.Errorf("Worst(%v) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestSeverityIsATotalOrder(t *testing.T) {
	order := []Health{Unknown, Healthy, Idle, Stopped, Degraded, Stale, Unhealthy}
	for i := 1; i < len(order); i++ {
		if order[i-1].Severity() >= order[i].Severity() {
			t.Fatalf("%s does not rank below %s", order[i-1], order[i])
		}
	}
	for _, h := range order {
		if !h.Valid() {
			t.Fatalf("%s is not valid", h)
		}
	}
	if Health("sick").Valid() {
		t.Fatal("an unknown word is valid health")
	}
}

func TestIsStale(t *testing.T) {
	seen := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	if IsStale(seen, seen.Add(DefaultStaleAfter), DefaultStaleAfter) {
		t.Fatal("stale exactly at the limit")
	}
	if !IsStale(seen, seen.Add(DefaultStaleAfter+time.Second), DefaultStaleAfter) {
		t.Fatal("not stale after the limit")
	}
	if got := StaleCutoff(seen, time.Minute); !got.Equal(seen.Add(-time.Minute)) {
		t.Fatalf("cutoff %s", got)
	}
}

func TestAlertOnlyOnTransitions(t *testing.T) {
	steady := Transition{Scope: ScopeService, From: Healthy, To: Healthy}
	if _, ok := AlertFor(steady); ok {
		t.Fatal("a steady state raised an alert")
	}
	cases := []struct {
		from, to  Health
		severity  Severity
		recovered bool
	}{
		{Healthy, Unhealthy, SeverityCritical, false},
		{Degraded, Unhealthy, SeverityCritical, false},
		{Healthy, Degraded, SeverityWarning, false},
		{Healthy, Stale, SeverityWarning, false},
		{Unhealthy, Degraded, SeverityWarning, false}, // better, but still bad: not a recovery
		{Unhealthy, Healthy, SeverityInfo, true},
		{Stale, Healthy, SeverityInfo, true},
		{Healthy, Stopped, SeverityInfo, false},
		{Unknown, Healthy, SeverityInfo, false},
	}
	for _, c := range cases {
		a, ok := AlertFor(Transition{Scope: ScopeDeployment, DeploymentID: "d", From: c.from, To: c.to})
		if !ok {
			t.Fatalf("%s -> %s raised no alert", c.from, c.to)
		}
		if a.Severity != c.severity || a.Recovered != c.recovered {
			t.Errorf("%s -> %s: severity %s recovered %v, want %s %v", c.from, c.to, a.Severity, a.Recovered, c.severity, c.recovered)
		}
	}
}

func TestTransitionString(t *testing.T) {
	s := Transition{Scope: ScopeService, DeploymentID: "d1", ServiceID: "s1", From: Healthy, To: Stale, Reason: "silent for 6m"}.String()
	if s != "service d1/s1: healthy -> stale (silent for 6m)" {
		t.Fatal(s)
	}
	s = Transition{Scope: ScopeDeployment, DeploymentID: "d1", From: Unknown, To: Healthy, Reason: "worst of 2 services"}.String()
	if s != "deployment d1: unknown -> healthy (worst of 2 services)" {
		t.Fatal(s)
	}
}

func TestParseStaleAfter(t *testing.T) {
	if d, err := ParseStaleAfter(""); err != nil || d != DefaultStaleAfter {
		t.Fatalf("empty = %v, %v; want the default", d, err)
	}
	for in, want := range map[string]time.Duration{"1m": time.Minute, "90s": 90 * time.Second, "24h": 24 * time.Hour} {
		if d, err := ParseStaleAfter(in); err != nil || d != want {
			t.Errorf("%q = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{"59s", "24h1s", "five minutes", "-5m", "0"} {
		if _, err := ParseStaleAfter(bad); err == nil || !strings.Contains(err.Error(), "between 1m and 24h") || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v, want the rule and the value", bad, err)
		}
	}
}
