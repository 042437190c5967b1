package e2e

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
)

// BenchmarkLocalCloudStart is the time to a serving local cloud: kumo, the front door, the
// engines and the event sources (target: under 2 s on 2 cores, warm build cache).
func BenchmarkLocalCloudStart(b *testing.B) {
	for b.Loop() {
		c, err := localcloud.Start(context.Background(), localcloud.Options{Addr: "127.0.0.1:0", BinDir: binDir, Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
	b.ReportMetric(shared.deploy.Seconds(), "controlplane-deploy-s")
}

// BenchmarkOnboarding is the onboarding scenario with zero stack delay, end to end (target:
// under 10 s), with what it costs: Lambda invocations, workflow state transitions and AWS
// calls at the front door.
func BenchmarkOnboarding(b *testing.B) {
	var total localcloud.Counters
	n := 0
	for b.Loop() {
		res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: scenario.Onboard})
		if err != nil {
			b.Fatal(err)
		}
		total.AWSCalls += res.Counters.AWSCalls
		total.LambdaInvocations += res.Counters.LambdaInvocations
		total.StateTransitions += res.Counters.StateTransitions
		n++
	}
	b.ReportMetric(float64(total.LambdaInvocations)/float64(n), "invocations/op")
	b.ReportMetric(float64(total.StateTransitions)/float64(n), "transitions/op")
	b.ReportMetric(float64(total.AWSCalls)/float64(n), "awscalls/op")
}

// BenchmarkMaintenanceWindow is the upgrade scenario: what one window that upgrades a
// deployment (a Kubernetes minor: control plane and node groups, and ClickHouse on two
// services) costs, from its opening to the upgrade's end. docs/maintenance.md turns the
// counts into dollars at list prices.
func BenchmarkMaintenanceWindow(b *testing.B) {
	var total localcloud.Counters
	n := 0
	for b.Loop() {
		res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: scenario.Upgrade, Timeout: 3 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if err := shared.runner.Retire(context.Background(), res.Deployment.ID); err != nil {
			b.Fatal(err)
		}
		w := res.Maintenance.Window
		total.AWSCalls += w.AWSCalls
		total.LambdaInvocations += w.LambdaInvocations
		total.StateTransitions += w.StateTransitions
		n++
	}
	b.ReportMetric(float64(total.LambdaInvocations)/float64(n), "invocations/window")
	b.ReportMetric(float64(total.StateTransitions)/float64(n), "transitions/window")
	b.ReportMetric(float64(total.AWSCalls)/float64(n), "awscalls/window")
}
