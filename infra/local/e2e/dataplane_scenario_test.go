package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
)

// The scenario make local runs (owned by the scenario package, helper D): once the
// deployment is ready, its simulated data plane reports until the control plane judges it,
// and the health alerts reach the timeline through the cloud's state watch.

// healthLines are the timeline's health lines for a deployment, in order.
func healthLines(rec *recording, dep string) []localcloud.Event {
	var out []localcloud.Event
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindHealth && strings.Contains(e.Subject, " "+dep) {
			out = append(out, e)
		}
	}
	return out
}

// badOnce checks that each service and the deployment turned from healthy to bad once,
// each line marked ! with the severity.
func badOnce(t *testing.T, rec *recording, dep string, bad health.Health, severity health.Severity) {
	t.Helper()
	n := 0
	for _, e := range healthLines(rec, dep) {
		if e.Status == "healthy -> "+string(bad) {
			if !e.Failed || !strings.HasPrefix(e.Detail, string(severity)) {
				t.Errorf("health line %s: want %s, marked !", e, severity)
			}
			n++
		}
	}
	if n != len(scenario.DataPlaneServices)+1 {
		t.Errorf("%d lines to %s, want each service and the deployment once", n, bad)
	}
}

func healthTo(dep string, to health.Health) step {
	return step{"deployment " + dep + " -> " + string(to), func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindHealth && e.Subject == "deployment "+dep && strings.HasSuffix(e.Status, "-> "+string(to))
	}}
}

func TestScenarioDataPlaneReportsTheDeploymentHealthy(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Onboard, DataPlane: true})
	d, h := res.Deployment, res.Health
	if h == nil || h.Final != health.Healthy || len(h.Services) != len(scenario.DataPlaneServices) {
		t.Fatalf("health %+v: want the deployment and its %d services healthy", h, len(scenario.DataPlaneServices))
	}
	order(t, rec, workflow(d.ID, "SUCCEEDED"), healthTo(d.ID, health.Healthy))
	// Each service and the deployment once, nothing for the steady reports that followed.
	lines := healthLines(rec, d.ID)
	if len(lines) != len(scenario.DataPlaneServices)+1 || h.Steps < 1+scenario.SteadySteps {
		t.Fatalf("%d steps, health lines %v; want one per service and one for the deployment", h.Steps, lines)
	}
	for _, e := range lines {
		if e.Failed || !strings.HasPrefix(e.Detail, "info") || e.Status != "unknown -> healthy" {
			t.Errorf("health line %s: want unknown -> healthy, info", e)
		}
	}
	// Then the operator's loop: the command workflow applies a release to the first service,
	// the simulated agent applies it and the exporter acknowledges it.
	c := h.Command
	if c == nil || c.Status != "SUCCEEDED" || c.CommandID == "" || c.ServiceID != scenario.DataPlaneServices[0] {
		t.Fatalf("command workflow run %+v: want it succeeded for %s", c, scenario.DataPlaneServices[0])
	}
	order(t, rec, healthTo(d.ID, health.Healthy), step{"the command workflow succeeded", func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindExecution && e.Detail == c.Execution && e.Status == "SUCCEEDED"
	}})
	for _, s := range h.Services {
		if s.ServiceID == c.ServiceID && s.Versions.ClickHouse != scenario.CommandRelease {
			t.Errorf("%s is stored on %s after the command, want %s", s.ServiceID, s.Versions.ClickHouse, scenario.CommandRelease)
		}
	}
}

func TestScenarioUnhealthyFaultShowsTheCriticalAlert(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Onboard, DataPlane: true, Fault: datasim.Unhealthy})
	d := res.Deployment
	if res.Health.Final != health.Unhealthy {
		t.Fatalf("deployment %s is %s, want unhealthy", d.ID, res.Health.Final)
	}
	order(t, rec, healthTo(d.ID, health.Healthy), healthTo(d.ID, health.Unhealthy))
	badOnce(t, rec, d.ID, health.Unhealthy, health.SeverityCritical)
}

func TestScenarioDuplicateAndOutOfOrderChangeNothing(t *testing.T) {
	for _, f := range []datasim.Fault{datasim.Duplicate, datasim.OutOfOrder} {
		t.Run(string(f), func(t *testing.T) {
			// The runner fails the run if a stored report ever went back to an older one
			// (it reads the services after every step) or if any alert followed healthy.
			res, rec := run(t, scenario.Options{Scenario: scenario.Onboard, DataPlane: true, Fault: f})
			if res.Health.Final != health.Healthy || len(healthLines(rec, res.Deployment.ID)) != len(scenario.DataPlaneServices)+1 {
				t.Fatalf("health %+v, lines %v", res.Health, healthLines(rec, res.Deployment.ID))
			}
			// Duplicate: every report twice. Out-of-order: every other step holds its
			// reports back and the next sends them after its own.
			n, steps := len(scenario.DataPlaneServices), res.Health.Steps
			want := map[datasim.Fault]int{datasim.Duplicate: 2 * n * steps, datasim.OutOfOrder: n * (steps - steps%2)}[f]
			if res.Health.Sent != want {
				t.Errorf("%d messages in %d steps, want %d", res.Health.Sent, steps, want)
			}
		})
	}
}

func TestScenarioSilenceTurnsTheDeploymentStale(t *testing.T) {
	// The shared cloud's clock must not be moved by this test (a jump back leaves the sweep
	// schedule's next occurrence minutes ahead), and it may be ahead of real time (the
	// maintenance scenarios jump it forward to their windows). So once the runner says the
	// exporter fell silent, statesweep is invoked as its schedule will invoke it after the
	// silence: with that scheduledTime of the cloud's clock, as of which it judges.
	sweep, ok := shared.cloud.FunctionName(contract.FunctionStateSweep)
	if !ok {
		t.Fatal("statesweep is not running")
	}
	silence := shared.runner.StaleAfter(context.Background()) + 2*time.Minute
	var swept []byte
	var sweepErr error
	shared.runner.Progress = func(e localcloud.Event) {
		if e.Kind != localcloud.KindDataPlane || !strings.HasPrefix(e.Status, "silent from now") || swept != nil {
			return
		}
		in := fmt.Sprintf(`{"scheduledTime":%q}`, shared.clock.Now().Add(silence).UTC().Format(time.RFC3339))
		// A failed sweep is retried, as the Scheduler retries its target: the sweep is
		// idempotent, and under heavy load the local cloud now and then cuts an answer short.
		for range 3 {
			out, err := lambda.NewFromConfig(shared.cloud.WatchConfig()).Invoke(context.Background(), &lambda.InvokeInput{
				FunctionName: aws.String(sweep), Payload: []byte(in)})
			swept, sweepErr = []byte(in), err
			if err == nil && out.FunctionError != nil {
				sweepErr = fmt.Errorf("statesweep failed: %s", out.Payload)
			}
			if sweepErr == nil {
				break
			}
		}
	}
	t.Cleanup(func() { shared.runner.Progress = nil })
	rec := shared.record(t)
	// Timeout: the runner checks that a silence in real time (7 minutes) would fit.
	res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: scenario.Onboard, DataPlane: true,
		Fault: datasim.Silence, Timeout: 10 * time.Minute})
	if sweepErr != nil || swept == nil {
		t.Fatalf("sweep %s: %v", swept, sweepErr)
	}
	if err != nil {
		t.Fatalf("%v\nresult: %+v", err, res.Health)
	}
	d := res.Deployment
	if res.Health.Final != health.Stale {
		t.Fatalf("deployment %s is %s after the sweep %s: want stale", d.ID, res.Health.Final, swept)
	}
	order(t, rec, healthTo(d.ID, health.Healthy), healthTo(d.ID, health.Stale))
	badOnce(t, rec, d.ID, health.Stale, health.SeverityWarning)
}
