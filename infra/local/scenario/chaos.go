package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
)

// DataPlaneScenario is onboarding followed by the deployment's simulated data plane: state
// reports through the state queue until the deployment is healthy, then a command through
// the command workflow to the agent and its acknowledgement back.
const DataPlaneScenario = "dataplane"

// ChaosScenarios are the scenarios `make chaos` runs: every scenario, and the data plane.
var ChaosScenarios = append(slices.Clone(Names), DataPlaneScenario)

// ChaosRun is one scenario run under one profile and seed.
type ChaosRun struct {
	Scenario   string
	Profile    string
	Seed       uint64
	Faults     chaos.Report
	Elapsed    time.Duration
	Violations []Violation
}

// Baseline is a scenario's fault-free run: what every chaos run of it must end as.
type Baseline struct {
	Scenario string
	Facts    Facts
	Elapsed  time.Duration
}

// Baseline runs a scenario without faults and reads what it left.
func (r *Runner) Baseline(ctx context.Context, scenario string) (Baseline, error) {
	r.Cloud.Chaos.Disarm()
	facts, elapsed, err := r.runAndRead(ctx, scenario)
	if err != nil {
		return Baseline{}, fmt.Errorf("the fault-free run of %s: %w", scenario, err)
	}
	if len(facts.Unsettled) > 0 || len(facts.Lost) > 0 || facts.Running > 0 {
		return Baseline{}, fmt.Errorf("the fault-free run of %s did not settle: %v %v, %d execution(s) running", scenario, facts.Unsettled, facts.Lost, facts.Running)
	}
	return Baseline{Scenario: scenario, Facts: facts, Elapsed: elapsed}, nil
}

// ChaosRun runs a scenario with the profile's faults decided by seed, lets the cloud settle
// with the faults off, and checks the invariants against the baseline.
func (r *Runner) ChaosRun(ctx context.Context, b Baseline, p chaos.Profile, seed uint64) ChaosRun {
	run := ChaosRun{Scenario: b.Scenario, Profile: p.Name, Seed: seed}
	r.Cloud.Chaos.Arm(seed, p)
	facts, elapsed, err := r.runAndRead(ctx, b.Scenario)
	run.Faults, run.Elapsed = r.Cloud.Chaos.Report(), elapsed
	if err != nil {
		run.Violations = append(run.Violations, Violation{SameOutcome, err.Error()})
	}
	if facts.Deployment != "" || b.Facts.Deployment == "" {
		run.Violations = append(run.Violations, Compare(b.Facts, facts)...)
	}
	return run
}

// runAndRead runs a scenario (chaos armed or not), disarms chaos, waits until the cloud has
// settled, and reads the facts.
func (r *Runner) runAndRead(ctx context.Context, scenario string) (Facts, time.Duration, error) {
	o := Options{Scenario: scenario}
	if scenario == DataPlaneScenario {
		o = Options{Scenario: Onboard, DataPlane: true}
	}
	o.Timeout, o.PhaseTimeout = runTimeout, chaosPhaseTimeout
	res, err := r.Run(ctx, o)
	r.Cloud.Chaos.Disarm()
	serr := r.settle(ctx, res.Customer, res.Deployment.ID)
	if serr != nil && err == nil {
		err = serr
	}
	var ledger *datasim.Ledger
	if res.Health != nil {
		ledger = res.Health.Ledger
	}
	if res.Maintenance != nil {
		ledger = res.Maintenance.Ledger
	}
	facts, ferr := r.Facts(context.WithoutCancel(ctx), res.Customer, res.Deployment.ID, ledger)
	if ferr != nil && err == nil {
		err = ferr
	}
	// Retired once settled only: a workflow still running could connect it again.
	if serr == nil {
		if rerr := r.Retire(context.WithoutCancel(ctx), res.Deployment.ID); rerr != nil && err == nil {
			err = rerr
		}
	}
	return facts, res.Elapsed, err
}

// Retire disconnects a run's deployment from the state queue and its command channel once
// its facts are read, as teardown will: the state queue's policy names every connected
// exporter, and SQS caps a policy at 8 KiB, about 97 exporters (a limit a fleet must get
// past; the matrix alone provisions over 500 deployments in one cloud).
func (r *Runner) Retire(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	if err := r.disarm(ctx, id); err != nil {
		return err
	}
	repo := servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])
	if err := channel.Disconnect(ctx, sqs.NewFromConfig(r.Cloud.WatchConfig()), repo, r.ControlPlane.Outputs[outStateQueueURL], id); err != nil {
		return fmt.Errorf("retire deployment %s: %w", id, err)
	}
	return nil
}

// Settling: the cloud has settled when the deployment's workflows have ended, no customer
// stack is changing, the state queue is empty and nothing has happened for settleQuiet (late deliveries, Lambda's
// asynchronous retries and restarted processes finish first).
const (
	settleQuiet   = 1500 * time.Millisecond
	settleTimeout = 2 * time.Minute
)

// runTimeout bounds one run: a stack event that Lambda dropped after its asynchronous
// retries (three crashes in a row) is found by the provision workflow's fallback poll, five
// minutes later, as on AWS.
const runTimeout = 8 * time.Minute

// chaosPhaseTimeout bounds the data plane's waits in a chaos run: a health alert whose
// publishing a crash cut short waits in the outbox for the next minute's sweep.
const chaosPhaseTimeout = 3 * time.Minute

func (r *Runner) settle(ctx context.Context, customer, id string) error {
	events, stop := r.watch(func(e localcloud.Event) bool { return e.Kind != localcloud.KindDataPlane })
	defer stop()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	last := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-events:
			last = time.Now()
			continue
		case <-ctx.Done():
			return fmt.Errorf("the cloud did not settle within %s after the run", settleTimeout)
		case <-tick.C:
		}
		if time.Since(last) < settleQuiet {
			continue
		}
		if busy, err := r.busy(ctx, customer, id); err == nil && busy == "" {
			return nil
		}
	}
}

// busy says what of a deployment is still working: a running execution, a changing stack.
func (r *Runner) busy(ctx context.Context, customer, id string) (string, error) {
	f, err := r.Facts(ctx, customer, id, nil)
	if err != nil {
		return "", err
	}
	if f.Running > 0 {
		return fmt.Sprintf("%d execution(s) running", f.Running), nil
	}
	for name, status := range f.Final {
		if strings.HasSuffix(status, "_IN_PROGRESS") {
			return "stack " + name + " is " + status, nil
		}
	}
	if url := r.ControlPlane.Outputs[outStateQueueURL]; url != "" {
		waiting, _, err := queueDepths(ctx, sqs.NewFromConfig(r.Cloud.WatchConfig()), url)
		if err != nil {
			return "", err
		}
		if waiting > 0 {
			return fmt.Sprintf("%d message(s) on the state queue", waiting), nil
		}
	}
	return "", nil
}
