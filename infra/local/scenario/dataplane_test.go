package scenario

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
)

func TestIngestLogSumsStateIngestBatchLines(t *testing.T) {
	var l IngestLog
	batch := `[stateingest] {"time":"2026-11-25T11:00:00Z","level":"INFO","msg":"state batch","messages":4,"applied":2,"duplicate":1,"out-of-order":1,"rejected":0,"retry":0}` + "\n"
	// Split mid-line: the line counts once it is complete.
	if _, err := l.Write([]byte(batch[:40])); err != nil {
		t.Fatal(err)
	}
	if got := l.Totals(); got.Batches != 0 {
		t.Fatalf("a partial line was counted: %+v", got)
	}
	_, _ = l.Write([]byte(batch[40:]))
	_, _ = l.Write([]byte(
		`[statesweep] {"msg":"state batch","messages":99}` + "\n" + // another function
			`[stateingest] {"msg":"health transition","messages":99}` + "\n" + // another line
			`[stateingest] {"msg":"state batch", not json` + "\n" +
			`[stateingest] {"msg":"state batch","messages":2,"applied":0,"duplicate":0,"out-of-order":0,"rejected":1,"retry":1}` + "\n"))
	want := IngestTotals{Batches: 2, Messages: 6, Applied: 2, Duplicate: 1, OutOfOrder: 1, Rejected: 1, Retry: 1}
	if got := l.Totals(); got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
	if d := want.Minus(IngestTotals{Batches: 1, Messages: 4, Applied: 2, Duplicate: 1, OutOfOrder: 1}); d != (IngestTotals{Batches: 1, Messages: 2, Rejected: 1, Retry: 1}) {
		t.Fatalf("minus %+v", d)
	}
	if s := want.String(); s != "6 messages in 2 batches: 2 applied, 1 duplicate, 1 out-of-order, 1 rejected, 1 retried" {
		t.Fatalf("String() = %q", s)
	}
}

func TestDataPlaneOptionsAreRefusedBeforeAnythingRuns(t *testing.T) {
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Scenario: Onboard, DataPlane: true, Fault: "sideways"}, `unknown fault "sideways"`},
		{Options{Scenario: Onboard, Fault: datasim.Unhealthy}, "there is no data plane to inject it into"},
		{Options{Scenario: InfraFails, DataPlane: true}, "scenario infra-fails: its deployment does not become ready"},
		{Options{Scenario: WrongExternalID, DataPlane: true, Fault: datasim.Silence}, "scenario wrong-external-id: its deployment does not become ready"},
	}
	for _, c := range cases {
		// A Runner with no cloud: a refused option must fail before touching it.
		res, err := (&Runner{}).Run(context.Background(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || res.Deployment.ID != "" || res.Health != nil {
			t.Errorf("%+v: %v, %+v; want %q", c.o, err, res, c.want)
		}
	}
	for _, s := range ReadyScenarios {
		for _, f := range append([]datasim.Fault{""}, datasim.Faults...) {
			if err := (Options{Scenario: s, DataPlane: true, Fault: f}).checkDataPlane(); err != nil {
				t.Errorf("%s with fault %q: %v", s, f, err)
			}
		}
	}
}

func TestWatchSeesEveryMatchUntilStopped(t *testing.T) {
	r := &Runner{}
	health := func(s string) localcloud.Event { return localcloud.Event{Kind: localcloud.KindHealth, Subject: s} }
	events, stop := r.watch(func(e localcloud.Event) bool { return e.Kind == localcloud.KindHealth })
	once := r.expect(func(e localcloud.Event) bool { return e.Kind == localcloud.KindHealth })
	r.Observe(localcloud.Event{Kind: localcloud.KindStack})
	r.Observe(health("a"))
	r.Observe(health("b"))
	if e := <-once; e.Subject != "a" {
		t.Fatalf("expect got %q", e.Subject)
	}
	for _, want := range []string{"a", "b"} {
		select {
		case e := <-events:
			if e.Subject != want {
				t.Fatalf("watch got %q, want %q", e.Subject, want)
			}
		default:
			t.Fatalf("watch missed %q", want)
		}
	}
	stop()
	r.Observe(health("c"))
	select {
	case e := <-events:
		t.Fatalf("a stopped watch got %q", e.Subject)
	default:
	}
	if len(r.waiters) != 0 {
		t.Fatalf("%d waiters left", len(r.waiters))
	}
}

func TestAWatcherThatStopsReadingNeverBlocksTheCloud(t *testing.T) {
	r := &Runner{}
	_, stop := r.watch(func(localcloud.Event) bool { return true })
	defer stop()
	done := make(chan struct{})
	go func() {
		for range 5000 { // more than the watch buffers
			r.Observe(localcloud.Event{Kind: localcloud.KindHealth})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Observe blocked on a full watch")
	}
}

func alert(scope health.Scope, svc string, from, to health.Health) servicestate.AlertDetail {
	a, _ := health.AlertFor(health.Transition{Scope: scope, DeploymentID: "d1", ServiceID: svc, From: from, To: to})
	return servicestate.AlertDetail{AlertID: string(scope) + svc + string(to), Alert: a}
}

func TestHealthOutcomeChecks(t *testing.T) {
	svcs := func(h health.Health) []servicestate.Service {
		var out []servicestate.Service
		for _, id := range DataPlaneServices {
			out = append(out, servicestate.Service{ServiceID: id, Health: h})
		}
		return out
	}
	to := func(from, h health.Health) []servicestate.AlertDetail {
		var out []servicestate.AlertDetail
		for _, id := range DataPlaneServices {
			out = append(out, alert(health.ScopeService, id, from, h))
		}
		return append(out, alert(health.ScopeDeployment, "", from, h))
	}
	healthy := to(health.Unknown, health.Healthy)
	cases := []struct {
		name  string
		fault datasim.Fault
		hr    HealthResult
		want  string
	}{
		{"healthy", "", HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy}, ""},
		{"never healthy", "", HealthResult{Final: health.Unknown, Services: svcs(health.Unknown)}, `stored health is "unknown", want "healthy"`},
		{"a service missing", "", HealthResult{Final: health.Healthy, Services: svcs(health.Healthy)[:1], Transitions: healthy}, "1 services stored, want 2"},
		{"a storm", "", HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: append(healthy, healthy[0])}, "4 transitions to healthy, want 3"},
		{"unhealthy", datasim.Unhealthy, HealthResult{Final: health.Unhealthy, Services: svcs(health.Unhealthy),
			Transitions: append(healthy, to(health.Healthy, health.Unhealthy)...)}, ""},
		{"unhealthy not reached", datasim.Unhealthy, HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy}, `want "unhealthy"`},
		{"stale", datasim.Silence, HealthResult{Final: health.Stale, Services: svcs(health.Stale),
			Transitions: append(healthy, to(health.Healthy, health.Stale)...)}, ""},
		{"one service stale", datasim.Silence, HealthResult{Final: health.Stale, Services: append(svcs(health.Stale)[:1], servicestate.Service{ServiceID: "x", Health: health.Healthy}),
			Transitions: healthy}, `service x is "healthy", want "stale"`},
		{"duplicates dropped", datasim.Duplicate, HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy,
			Ingest: &IngestTotals{Messages: 8, Applied: 4, Duplicate: 4}}, ""},
		{"no duplicate seen", datasim.Duplicate, HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy,
			Ingest: &IngestTotals{Messages: 8, Applied: 8}}, "counted no duplicate"},
		{"no out-of-order seen", datasim.OutOfOrder, HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy,
			Ingest: &IngestTotals{Messages: 8, Applied: 8}}, "counted no out-of-order"},
		{"rejected", "", HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy,
			Ingest: &IngestTotals{Messages: 8, Applied: 7, Rejected: 1}}, "rejected 1 and retried 0"},
		{"no logs: no count check", datasim.OutOfOrder, HealthResult{Final: health.Healthy, Services: svcs(health.Healthy), Transitions: healthy}, ""},
	}
	for _, c := range cases {
		err := checkHealth(Options{Scenario: Onboard, Fault: c.fault}, &c.hr)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestHealthReportAndTimelineLines(t *testing.T) {
	var out bytes.Buffer
	tl := NewTimeline(&out)
	at := tl.start.Add(2 * time.Second)
	tl.Observe(localcloud.Event{At: at, Kind: localcloud.KindHealth, Subject: "service d1/ch-primary", Status: "healthy -> unhealthy", Detail: "critical: no ready replica", Failed: true})
	tl.Observe(localcloud.Event{At: at, Kind: localcloud.KindDataPlane, Subject: "d1", Status: "step 2: 2 state message(s) sent"})
	reportHealth(tl, "d1", &HealthResult{Steps: 2, Sent: 4, Final: health.Unhealthy, Elapsed: 1500 * time.Millisecond,
		Services:    []servicestate.Service{{ServiceID: "ch-primary", Health: health.Unhealthy, OrderKey: "k2", HealthReason: "no ready replica"}},
		Transitions: []servicestate.AlertDetail{alert(health.ScopeService, "ch-primary", health.Healthy, health.Unhealthy)}, Redelivered: 1,
		Ingest: &IngestTotals{Batches: 2, Messages: 4, Applied: 4}})
	want := "   2.000s ! health   service d1/ch-primary  healthy -> unhealthy  critical: no ready replica\n" +
		"   2.000s   cluster  d1  step 2: 2 state message(s) sent\n" +
		"\ndata plane of d1: 2 steps, 4 state messages sent in 1.5s; stored health unhealthy\n" +
		"  ch-primary     unhealthy  report k2  no ready replica\n" +
		"health alerts on the vendor bus: 1 (+1 redelivered, same alert id)\n" +
		"stateingest: 4 messages in 2 batches: 4 applied, 0 duplicate, 0 out-of-order, 0 rejected, 0 retried\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	reportHealth(tl, "d1", &HealthResult{Final: health.Healthy, Command: &CommandResult{Execution: "apply-release-d1", ServiceID: "ch-primary",
		Release: CommandRelease, CommandID: "c0ffee", Status: "SUCCEEDED", Elapsed: 2500 * time.Millisecond}})
	if line := "command workflow apply-release-d1: apply-release " + CommandRelease + " to ch-primary SUCCEEDED in 2.5s (command c0ffee)\n"; !strings.HasSuffix(out.String(), line) {
		t.Errorf("got\n%s\nwant it to end with\n%s", out.String(), line)
	}
	for f, note := range map[datasim.Fault]string{"": "", datasim.Unhealthy: "critical alert is the expected outcome", datasim.Silence: "stale alerts are the expected outcome",
		datasim.Duplicate: "duplicate messages changed nothing", datasim.OutOfOrder: "out-of-order messages changed nothing"} {
		if got := expectedNote(f, nil); note == "" && got != "" || !strings.Contains(got, note) {
			t.Errorf("expectedNote(%q) = %q, want %q", f, got, note)
		}
	}
	counted := &HealthResult{Ingest: &IngestTotals{Duplicate: 6, OutOfOrder: 3}}
	if got := expectedNote(datasim.OutOfOrder, counted); !strings.Contains(got, "stateingest dropped 3") {
		t.Errorf("out-of-order note %q", got)
	}
	if got := expectedNote(datasim.Duplicate, counted); !strings.Contains(got, "stateingest dropped 6") {
		t.Errorf("duplicate note %q", got)
	}
}

func TestASilenceLongerThanTheTimeoutLeftIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := fitsDeadline(ctx, 7*time.Minute+30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "up to 7m30s at this clock speed, more than the 1m0s the scenario has left (raise --speed or --timeout)") {
		t.Errorf("error %v", err)
	}
	if err := fitsDeadline(ctx, 37*time.Second); err != nil {
		t.Errorf("a wait that fits: %v", err)
	}
	if err := fitsDeadline(context.Background(), time.Hour); err != nil {
		t.Errorf("no deadline: %v", err)
	}
}
