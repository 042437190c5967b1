package servicestate

import (
	"context"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/health"
)

func TestFirstReportRecordsServiceAndDeploymentTransitions(t *testing.T) {
	f := newFixture(t)
	res := f.apply(t, report("dep1", "svc-a", 1))
	if res.Outcome != Applied {
		t.Fatalf("outcome %s", res.Outcome)
	}
	s, err := f.repo.Service(context.Background(), "dep1", "svc-a")
	if err != nil {
		t.Fatal(err)
	}
	if s.Health != health.Healthy || s.PrevHealth != health.Unknown || s.Versions.ClickHouse != "24.8.1" || s.Replicas.Ready != 3 ||
		!s.LastSeenAt.Equal(t0) || s.OrderKey != report("dep1", "svc-a", 1).OrderKey() || s.MessageID == "" {
		t.Fatalf("stored service %+v", s)
	}
	if len(res.Alerts) != 2 {
		t.Fatalf("alerts %+v, want the service's and the deployment's", res.Alerts)
	}
	svc, dep := res.Alerts[0].Alert, res.Alerts[1].Alert
	if svc.Scope != health.ScopeService || svc.From != health.Unknown || svc.To != health.Healthy || svc.Severity != health.SeverityInfo {
		t.Fatalf("service alert %+v", svc)
	}
	if dep.Scope != health.ScopeDeployment || dep.To != health.Healthy || dep.Reason != "all 1 services healthy" {
		t.Fatalf("deployment alert %+v", dep)
	}
	dh, err := f.repo.DeploymentHealth(context.Background(), "dep1")
	if err != nil || dh.Health != health.Healthy || dh.Version != 1 || dh.Services != 1 {
		t.Fatalf("deployment health %+v %v", dh, err)
	}
}

func TestSteadyReportIsOneWriteAndNoAlert(t *testing.T) {
	f := newFixture(t)
	f.publishAll(t, f.apply(t, report("dep1", "svc-a", 1)).Alerts)
	before := f.db.Writes()
	for seq := int64(2); seq <= 11; seq++ {
		res := f.apply(t, report("dep1", "svc-a", seq))
		if res.Outcome != Applied || len(res.Alerts) != 0 {
			t.Fatalf("seq %d: outcome %s alerts %v", seq, res.Outcome, res.Alerts)
		}
	}
	if got := f.db.Writes() - before; got != 10 {
		t.Fatalf("10 steady reports cost %d writes, want 10", got)
	}
	hist, err := f.repo.History(context.Background(), "dep1", 100)
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %v %v: steady reports must not add history", hist, err)
	}
}

func TestDuplicateChangesNothing(t *testing.T) {
	f := newFixture(t)
	m := report("dep1", "svc-a", 1)
	f.publishAll(t, f.apply(t, m).Alerts)
	f.apply(t, report("dep1", "svc-a", 2))
	before := f.snapshot(t)
	dup := report("dep1", "svc-a", 2)
	res := f.apply(t, dup)
	if res.Outcome != Duplicate || len(res.Alerts) != 0 {
		t.Fatalf("outcome %s alerts %v", res.Outcome, res.Alerts)
	}
	if after := f.snapshot(t); after != before {
		t.Fatalf("a duplicate changed the table:\nbefore %s\nafter  %s", before, after)
	}
}

func TestOutOfOrderReportNeverOverwritesNewer(t *testing.T) {
	f := newFixture(t)
	f.publishAll(t, f.apply(t, report("dep1", "svc-a", 5)).Alerts)
	before := f.snapshot(t)
	old := unhealthy(report("dep1", "svc-a", 4)) // older, and would be a transition
	res := f.apply(t, old)
	if res.Outcome != OutOfOrder || len(res.Alerts) != 0 {
		t.Fatalf("outcome %s alerts %v", res.Outcome, res.Alerts)
	}
	if res.Service.Health != health.Healthy {
		t.Fatalf("result reports %s, want the stored healthy state", res.Service.Health)
	}
	if after := f.snapshot(t); after != before {
		t.Fatalf("an older report changed the table:\nbefore %s\nafter  %s", before, after)
	}
}

func TestRestartedExporterOutranksItsPreviousLife(t *testing.T) {
	f := newFixture(t)
	f.apply(t, report("dep1", "svc-a", 900))
	restarted := unhealthy(report("dep1", "svc-a", 1))
	restarted.ExporterEpoch++
	if res := f.apply(t, restarted); res.Outcome != Applied || res.Service.Health != health.Unhealthy {
		t.Fatalf("outcome %s health %s", res.Outcome, res.Service.Health)
	}
}

func TestTransitionsBuildHistoryAndDeploymentIsWorstService(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.publishAll(t, f.apply(t, report("dep1", "svc-a", 1)).Alerts)
	f.publishAll(t, f.apply(t, report("dep1", "svc-b", 2)).Alerts)

	res := f.apply(t, unhealthy(report("dep1", "svc-b", 3)))
	if len(res.Alerts) != 2 {
		t.Fatalf("alerts %+v, want service and deployment", res.Alerts)
	}
	if a := res.Alerts[0].Alert; a.Severity != health.SeverityCritical || a.ServiceID != "svc-b" || a.From != health.Healthy {
		t.Fatalf("service alert %+v", a)
	}
	if a := res.Alerts[1].Alert; a.Scope != health.ScopeDeployment || a.To != health.Unhealthy || a.Reason != "service svc-b is unhealthy: exporter reported unhealthy" {
		t.Fatalf("deployment alert %+v", a)
	}
	f.publishAll(t, res.Alerts)

	// Another service degrading does not change a deployment that is already worse.
	deg := report("dep1", "svc-a", 4)
	deg.Replicas.Ready = 2
	res = f.apply(t, deg)
	if len(res.Alerts) != 1 || res.Alerts[0].Alert.Scope != health.ScopeService || res.Alerts[0].Alert.To != health.Degraded {
		t.Fatalf("alerts %+v, want only the service's", res.Alerts)
	}
	f.publishAll(t, res.Alerts)

	// svc-b recovers: the deployment is now as bad as svc-a.
	res = f.apply(t, report("dep1", "svc-b", 5))
	if len(res.Alerts) != 2 || !res.Alerts[0].Alert.Recovered || res.Alerts[1].Alert.To != health.Degraded {
		t.Fatalf("alerts %+v", res.Alerts)
	}
	dh, _ := f.repo.DeploymentHealth(ctx, "dep1")
	if dh.Health != health.Degraded || dh.Services != 2 {
		t.Fatalf("deployment health %+v", dh)
	}
	hist, err := f.repo.History(ctx, "dep1", 100)
	if err != nil {
		t.Fatal(err)
	}
	// a, dep, b, b unhealthy, dep unhealthy, a degraded, b healthy, dep degraded
	if len(hist) != 8 {
		t.Fatalf("history has %d entries, want 8: %v", len(hist), hist)
	}
	if first := hist[0]; first.Scope != health.ScopeDeployment || first.To != health.Degraded {
		t.Fatalf("newest entry %v", first)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].At.After(hist[i-1].At) {
			t.Fatalf("history not newest first at %d: %v", i, hist)
		}
	}
}

func TestReplayedTransitionLeavesItsAlertToTheOutbox(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	m := report("dep1", "svc-a", 1)
	first := f.apply(t, m)
	if len(first.Alerts) != 2 {
		t.Fatalf("alerts %v", first.Alerts)
	}
	// A copy delivered while the first is still publishing must not announce it again.
	res := f.apply(t, m)
	if res.Outcome != Duplicate || len(res.Alerts) != 0 {
		t.Fatalf("replay: outcome %s alerts %v", res.Outcome, res.Alerts)
	}
	hist, _ := f.repo.History(ctx, "dep1", 100)
	if len(hist) != 2 {
		t.Fatalf("replay duplicated history: %v", hist)
	}
	// If the first delivery never published, the outbox still holds both alerts.
	f.clock.Advance(time.Minute)
	if pending, err := f.repo.Unpublished(ctx, f.clock.now); err != nil || len(pending) != 2 {
		t.Fatalf("outbox %v %v", pending, err)
	}
}

func TestUnpublishedAlertsAreFoundByIndexUntilMarked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	alerts := f.apply(t, report("dep1", "svc-a", 1)).Alerts
	f.clock.Advance(time.Minute)
	pending, err := f.repo.Unpublished(ctx, f.clock.now.Add(-30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Fatalf("pending %v", pending)
	}
	if pending[0].Alert.To != health.Healthy || pending[0].Alert.Severity != health.SeverityInfo {
		t.Fatalf("pending alert decoded as %+v", pending[0].Alert)
	}
	young, err := f.repo.Unpublished(ctx, t0.Add(-time.Second))
	if err != nil || len(young) != 0 {
		t.Fatalf("alerts newer than the cutoff were returned: %v %v", young, err)
	}
	f.publishAll(t, alerts)
	f.publishAll(t, alerts) // twice is harmless
	pending, err = f.repo.Unpublished(ctx, f.clock.now)
	if err != nil || len(pending) != 0 {
		t.Fatalf("published alerts still pending: %v %v", pending, err)
	}
}

func TestServicesListsOnlyReportedServices(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(t, report("dep1", "svc-a", 1))
	if _, err := f.repo.RegisterWaiter(ctx, "dep1", Condition{ServiceID: "svc-new", Health: health.Healthy}, "token-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	list, err := f.repo.Services(ctx, "dep1")
	if err != nil || len(list) != 1 || list[0].ServiceID != "svc-a" {
		t.Fatalf("services %v %v", list, err)
	}
	if _, err := f.repo.Service(ctx, "dep1", "svc-zzz"); !IsNotFound(err) {
		t.Fatalf("missing service: %v", err)
	}
	// A service created by a waiter becomes a normal service on its first report.
	res := f.apply(t, report("dep1", "svc-new", 2))
	if res.Outcome != Applied || res.Service.Waiters != 1 || res.Alerts[0].Alert.From != health.Unknown {
		t.Fatalf("first report of a waited-for service: %+v", res)
	}
}
