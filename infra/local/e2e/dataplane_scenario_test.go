package e2e

import (
	"strings"
	"testing"

	"github.com/byocloud/byoc/infra/local/cloud"
	"github.com/byocloud/byoc/infra/local/dataplane"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/health"
)

// The scenario make local runs (owned by the scenario package, helper D): once the
// deployment is ready, its simulated data plane reports until the control plane judges it,
// and the health alerts reach the timeline through the cloud's state watch.

// healthLines are the timeline's health lines for a deployment, in order.
func healthLines(rec *recording, dep string) []cloud.Event {
	var out []cloud.Event
	for _, e := range rec.all() {
		if e.Kind == cloud.KindHealth && strings.Contains(e.Subject, " "+dep) {
			out = append(out, e)
		}
	}
	return out
}

func healthTo(dep string, to health.Health) step {
	return step{"deployment " + dep + " -> " + string(to), func(e cloud.Event) bool {
		return e.Kind == cloud.KindHealth && e.Subject == "deployment "+dep && strings.HasSuffix(e.Status, "-> "+string(to))
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
}

func TestScenarioUnhealthyFaultShowsTheCriticalAlert(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Onboard, DataPlane: true, Fault: dataplane.Unhealthy})
	d := res.Deployment
	if res.Health.Final != health.Unhealthy {
		t.Fatalf("deployment %s is %s, want unhealthy", d.ID, res.Health.Final)
	}
	order(t, rec, healthTo(d.ID, health.Healthy), healthTo(d.ID, health.Unhealthy))
	critical := 0
	for _, e := range healthLines(rec, d.ID) {
		if e.Status == "healthy -> unhealthy" {
			if !e.Failed || !strings.HasPrefix(e.Detail, "critical") {
				t.Errorf("health line %s: an unhealthy transition is a critical alert, marked !", e)
			}
			critical++
		}
	}
	if critical != len(scenario.DataPlaneServices)+1 {
		t.Errorf("%d critical lines, want each service and the deployment once", critical)
	}
}

func TestScenarioDuplicateAndOutOfOrderChangeNothing(t *testing.T) {
	for _, f := range []dataplane.Fault{dataplane.Duplicate, dataplane.OutOfOrder} {
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
			want := map[dataplane.Fault]int{dataplane.Duplicate: 2 * n * steps, dataplane.OutOfOrder: n * (steps - steps%2)}[f]
			if res.Health.Sent != want {
				t.Errorf("%d messages in %d steps, want %d", res.Health.Sent, steps, want)
			}
		})
	}
}
