package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
)

// runMaintenance runs a maintenance scenario and retires its deployment afterwards, so it
// does not wake at a window the later tests' clock jumps reach.
func runMaintenance(t *testing.T, name string) (scenario.Result, *recording) {
	t.Helper()
	rec := shared.record(t)
	// Onboarding, the data plane, up to three clock jumps and the upgrade: more than the
	// minute run gives a scenario on a loaded machine.
	res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: name, Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatalf("%v\nresult: %+v", err, res)
	}
	t.Cleanup(func() {
		if err := shared.runner.Retire(context.Background(), res.Deployment.ID); err != nil {
			t.Error(err)
		}
	})
	return res, rec
}

func notice(detailType, id string) step {
	return step{detailType, func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindHealth && e.DetailType == detailType && strings.Contains(e.Status, id)
	}}
}

func customerStack(account, name, status string) step {
	return step{name + " " + status, func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindStack && e.Account == account && e.Subject == name && e.Status == status
	}}
}

// The window's notice, then its opening, then the plan's order: the control plane's stack
// update, the node groups' (a second update), then ClickHouse service by service, each
// confirmed by the service's report; the deployment ends ready on the new versions.
func TestUpgradeInsideTheWindow(t *testing.T) {
	res, rec := runMaintenance(t, scenario.Upgrade)
	d, m := res.Deployment, res.Maintenance
	order(t, rec,
		step{"the clock jumps to the notice", func(e localcloud.Event) bool { return e.Kind == localcloud.KindClock }},
		notice(contract.DetailTypeMaintenanceUpcoming, d.ID),
		step{"the clock jumps to the opening", func(e localcloud.Event) bool { return e.Kind == localcloud.KindClock }},
		notice(contract.DetailTypeMaintenanceStarted, d.ID),
		customerStack(res.Customer, d.StackName, "UPDATE_COMPLETE"), // control plane
		customerStack(res.Customer, d.StackName, "UPDATE_COMPLETE"), // node groups
		notice(contract.DetailTypeMaintenanceCompleted, d.ID),
	)
	if d.Status != lifecycle.Ready || m.Status != "SUCCEEDED" || d.Maintenance.Last.Outcome != "done" {
		t.Fatalf("deployment %s, upgrade %s, last %+v", d.Status, m.Status, d.Maintenance.Last)
	}
	k8s := strings.TrimPrefix(m.Releases[0], "kubernetes-")
	if m.Versions[contract.InfraParamKubernetesVersion] != k8s || m.Versions[contract.InfraParamNodeKubernetesVersion] != k8s {
		t.Fatalf("stack versions %v, want Kubernetes %s on the control plane and the nodes", m.Versions, k8s)
	}
	ch := strings.TrimPrefix(m.Releases[1], "clickhouse-")
	for id, v := range m.Services {
		if v != ch {
			t.Fatalf("service %s runs ClickHouse %s, want %s", id, v, ch)
		}
	}
	if m.Window.StateTransitions == 0 || m.Window.LambdaInvocations == 0 || m.Window.AWSCalls == 0 {
		t.Fatalf("window counters %+v", m.Window)
	}
}

func TestSecurityFixOffCycle(t *testing.T) {
	res, rec := runMaintenance(t, scenario.SecurityFix)
	d := res.Deployment
	order(t, rec,
		notice(contract.DetailTypeMaintenanceScheduled, d.ID),
		step{"the clock jumps the notice lead", func(e localcloud.Event) bool { return e.Kind == localcloud.KindClock }},
		notice(contract.DetailTypeMaintenanceStarted, d.ID),
		notice(contract.DetailTypeMaintenanceCompleted, d.ID),
	)
	if !strings.Contains(res.Maintenance.Execution, "-security-") || d.Maintenance.Security != nil {
		t.Fatalf("execution %s, pending security start %+v", res.Maintenance.Execution, d.Maintenance.Security)
	}
}

func TestAFailedUpgradeHaltsTheRelease(t *testing.T) {
	res, rec := runMaintenance(t, scenario.UpgradeHalts)
	d := res.Deployment
	order(t, rec,
		notice(contract.DetailTypeMaintenanceStarted, d.ID),
		step{"the critical alert", func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindHealth && e.DetailType == contract.DetailTypeDeploymentHealthChanged && strings.Contains(e.Status, "-> unhealthy")
		}},
		notice(contract.DetailTypeMaintenanceFailed, d.ID),
		notice(contract.DetailTypeReleaseHalted, d.ID),
	)
	if d.Status != lifecycle.Ready || d.Maintenance.Last.Outcome != "failed" || !strings.Contains(d.Maintenance.Last.Step, "ClickHouse service") {
		t.Fatalf("deployment %s, last %+v", d.Status, d.Maintenance.Last)
	}
	if !slices.Contains(res.Maintenance.Notices, contract.DetailTypeMaintenanceFailed) {
		t.Fatalf("notices %v", res.Maintenance.Notices)
	}
}
