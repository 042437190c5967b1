package servicestate

import (
	"context"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/health"
)

func TestSilentServiceBecomesStaleOnceAndRecovers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.publishAll(t, f.apply(t, report("dep1", "svc-a", 1)).Alerts)
	f.clock.Advance(2*time.Minute + 10*time.Second)
	f.publishAll(t, f.apply(t, report("dep1", "svc-b", 2)).Alerts)

	// Three minutes after svc-a's report, with a five-minute limit: nobody is silent.
	f.clock.Advance(50 * time.Second)
	cutoff := health.StaleCutoff(f.clock.now, 5*time.Minute)
	if keys, err := f.repo.SilentServices(ctx, cutoff); err != nil || len(keys) != 0 {
		t.Fatalf("silent services %v %v", keys, err)
	}

	// 6m05s after svc-a's report, 3m55s after svc-b's.
	f.clock.Advance(3*time.Minute + 5*time.Second)
	cutoff = health.StaleCutoff(f.clock.now, 5*time.Minute)
	keys, err := f.repo.SilentServices(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != (ServiceKey{"dep1", "svc-a"}) {
		t.Fatalf("silent services %v, want svc-a alone", keys)
	}
	alerts, err := f.repo.MarkStale(ctx, keys[0], cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 2 {
		t.Fatalf("alerts %v, want the service's and the deployment's", alerts)
	}
	if a := alerts[0].Alert; a.To != health.Stale || a.From != health.Healthy || a.Severity != health.SeverityWarning || a.Reason != "no report for 6m5s" {
		t.Fatalf("stale alert %+v", a)
	}
	if a := alerts[1].Alert; a.Scope != health.ScopeDeployment || a.To != health.Stale {
		t.Fatalf("deployment alert %+v", a)
	}
	f.publishAll(t, alerts)

	// Marking again, or sweeping again later, raises nothing more: a stale service has
	// left the index.
	if again, err := f.repo.MarkStale(ctx, keys[0], cutoff); err != nil || len(again) != 0 {
		t.Fatalf("second mark: %v %v", again, err)
	}
	f.clock.Advance(10 * time.Minute)
	keys, err = f.repo.SilentServices(ctx, health.StaleCutoff(f.clock.now, 5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ServiceID == "svc-a" {
			t.Fatal("a stale service is still swept")
		}
	}

	// svc-a reports again: it recovers, and is back in the index.
	res := f.apply(t, report("dep1", "svc-a", 3))
	if len(res.Alerts) == 0 || res.Alerts[0].Alert.From != health.Stale || !res.Alerts[0].Alert.Recovered {
		t.Fatalf("recovery alerts %v", res.Alerts)
	}
	f.clock.Advance(6 * time.Minute)
	keys, _ = f.repo.SilentServices(ctx, health.StaleCutoff(f.clock.now, 5*time.Minute))
	found := false
	for _, k := range keys {
		found = found || k.ServiceID == "svc-a"
	}
	if !found {
		t.Fatal("a recovered service is not swept any more")
	}
}

func TestMarkStaleRefusesAServiceThatReportedSinceTheQuery(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(t, report("dep1", "svc-a", 1))
	f.clock.Advance(10 * time.Minute)
	cutoff := health.StaleCutoff(f.clock.now, 5*time.Minute)
	keys, err := f.repo.SilentServices(ctx, cutoff)
	if err != nil || len(keys) != 1 {
		t.Fatalf("silent services %v %v", keys, err)
	}
	f.apply(t, report("dep1", "svc-a", 2)) // the report lands between the query and the mark
	before := f.snapshot(t)
	alerts, err := f.repo.MarkStale(ctx, keys[0], cutoff)
	if err != nil || len(alerts) != 0 {
		t.Fatalf("mark: %v %v", alerts, err)
	}
	if after := f.snapshot(t); after != before {
		t.Fatal("marking a live service stale changed the table")
	}
}

func TestSweepIndexKeyChangesAtMostOncePerMinute(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sweepAt := func() string {
		out, err := f.repo.get(ctx, "DEP#dep1", "SVC#svc-a")
		if err != nil {
			t.Fatal(err)
		}
		return render(out[AttrSweepAt])
	}
	f.apply(t, report("dep1", "svc-a", 1))
	first := sweepAt()
	for seq := int64(2); seq < 6; seq++ {
		f.clock.Advance(10 * time.Second)
		f.apply(t, report("dep1", "svc-a", seq))
		if got := sweepAt(); got != first {
			t.Fatalf("index key moved within the minute: %s -> %s", first, got)
		}
	}
	f.clock.Advance(20 * time.Second)
	f.apply(t, report("dep1", "svc-a", 9))
	if sweepAt() == first {
		t.Fatal("index key did not follow the minute")
	}
}

// A run judging as of another time than the clock (the sweep, as of its schedule) records
// the transition at that time, and the repository it came from keeps its clock.
func TestMarkStaleAsOfATimeRecordsThatTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.apply(t, report("dep1", "svc-a", 1))
	asOf := f.clock.now.Add(6 * time.Minute) // the clock has not moved
	repo := f.repo.AsOf(asOf)
	cutoff := health.StaleCutoff(asOf, 5*time.Minute)
	keys, err := repo.SilentServices(ctx, cutoff)
	if err != nil || len(keys) != 1 {
		t.Fatalf("silent services %v %v", keys, err)
	}
	alerts, err := repo.MarkStale(ctx, keys[0], cutoff)
	if err != nil || len(alerts) != 2 {
		t.Fatalf("mark: %v %v", alerts, err)
	}
	for _, p := range alerts {
		if !p.Alert.At.Equal(asOf) {
			t.Fatalf("alert %+v, want it at %s", p.Alert, asOf)
		}
	}
	if a := alerts[0].Alert; a.Reason != "no report for 6m0s" {
		t.Fatalf("alert reason %q", a.Reason)
	}
	if got := f.repo.Now(); !got.Equal(t0) {
		t.Fatalf("the original clock moved to %s", got)
	}
}
