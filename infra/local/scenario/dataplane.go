package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// DataPlaneServices are the services the simulated data plane of a new deployment runs.
var DataPlaneServices = []string{"ch-primary", "ch-analytics"}

// Output of the control-plane stack the data-plane follow-up reads.
const outStateQueueURL = localcloud.OutputStateQueueURL

// How the follow-up paces the simulator. Exporters report every 30 seconds; the local
// data plane reports every StepInterval of real time, and waits for stateingest to take
// each report before the next, so one service's reports never race in one batch.
const (
	StepInterval = 500 * time.Millisecond
	// PhaseTimeout bounds each wait for the control plane's answer (healthy, the alert).
	PhaseTimeout = 30 * time.Second
	// SteadySteps are the reports sent after the deployment is healthy to show that a
	// steady state raises no alert (and, with duplicate or out-of-order, that the stored
	// state does not move backwards).
	SteadySteps = 2
)

// HealthResult is what the data-plane follow-up observed.
type HealthResult struct {
	Fault datasim.Fault
	Steps int // simulator rounds
	Sent  int // state messages sent (duplicates count twice)
	// Transitions are the health alerts the vendor bus carried for the deployment, in
	// order of arrival, each alert id once (delivery is at least once).
	Transitions []servicestate.AlertDetail
	// Redelivered counts alert events that arrived again with a known alert id.
	Redelivered int
	Final       health.Health          // the deployment's stored health at the end
	Services    []servicestate.Service // the stored service states at the end
	// Ingest sums stateingest's "state batch" log lines of the follow-up, when the runner
	// reads the functions' logs (Runner.Ingest).
	Ingest *IngestTotals
	// Command is the command workflow's run, made once a deployment without injected
	// faults is healthy and steady.
	Command *CommandResult
	// Ledger is what the simulated data plane did (commands applied, last reports sent),
	// taken when the follow-up removes it.
	Ledger  *datasim.Ledger
	Elapsed time.Duration

	// live is the simulator, still holding the deployment, when the runner keeps data
	// planes running after the follow-up (Runner.KeepDataPlane).
	live *datasim.Simulator
}

// follow runs the deployment's simulated data plane until the control plane judges it as
// the fault (if any) should make it: healthy; then unhealthy with a critical alert
// (unhealthy), stale (silence), or still healthy with nothing moved backwards (duplicate,
// out-of-order). Without a fault, the command workflow then applies a release to a service.
func (r *Runner) follow(ctx context.Context, o Options, d store.Deployment) (*HealthResult, error) {
	began := time.Now()
	hr := &HealthResult{Fault: o.Fault}
	defer func() { hr.Elapsed = time.Since(began) }()
	fail := func(format string, args ...any) error {
		return &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf(format, args...)}
	}
	dp, err := servicestate.DataPlaneFromOutputs(d.ID, o.Customer, d.Outputs)
	if err != nil {
		return hr, fail("the deployment record does not name its data-plane roles: %v", err)
	}
	queueURL := r.ControlPlane.Outputs[outStateQueueURL]
	if queueURL == "" {
		return hr, fail("the control plane has no output %s: the state queue is not deployed", outStateQueueURL)
	}
	if err := r.Cloud.WatchStateEvents(ctx, r.ControlPlane.Outputs[outVendorBusName]); err != nil {
		return hr, err
	}
	f := &follower{r: r, o: o, hr: hr, id: d.ID,
		repo:   servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable]),
		seen:   map[string]bool{},
		stored: map[string]string{},
	}
	f.events, f.stop = r.watch(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindHealth && isHealthAlert(e.DetailType) && eventDeployment(e) == d.ID
	})
	defer f.stop()
	var stopBatches func()
	f.batches, stopBatches = r.watch(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindBatch && e.Subject == contract.FunctionStateIngest
	})
	defer stopBatches()
	if r.Ingest != nil {
		f.ingest0 = r.Ingest.Totals()
	}

	sim := r.Cloud.DataPlane(func(c *datasim.Config) { c.StateQueueURL = queueURL })
	dep := datasim.Deployment{ID: d.ID, ExporterRoleARN: dp.ExporterRoleARN, AgentRoleARN: dp.AgentRoleARN}
	for _, s := range DataPlaneServices {
		dep.Services = append(dep.Services, datasim.Service{ID: s})
	}
	if o.Fault != "" && o.Fault != datasim.Silence {
		// Injected at Add: unhealthy breaks the services after their first (healthy)
		// report; duplicate and out-of-order apply to every report.
		dep.Faults = []datasim.Fault{o.Fault}
	}
	if err := sim.Add(dep); err != nil {
		return hr, err
	}
	if r.KeepDataPlane {
		hr.live = sim
	} else {
		defer func() {
			ledger := sim.Ledger(d.ID)
			hr.Ledger = &ledger
			sim.Remove(d.ID)
		}()
	}
	f.sim = sim
	f.progress("started: services %s, exporter %s, agent %s%s", strings.Join(DataPlaneServices, ", "),
		dp.ExporterRoleARN, dp.AgentRoleARN, faultNote(o.Fault))

	// Healthy: the deployment, and each service (the control plane learns of a service from
	// its first report, which may arrive after another service made the deployment healthy).
	if err := f.until(ctx, o.PhaseTimeout, fmt.Sprintf("the %q events to healthy of the deployment and each service", contract.DetailTypeDeploymentHealthChanged), allHealthy()); err != nil {
		return f.finish(ctx, err)
	}
	switch o.Fault {
	case datasim.Unhealthy:
		err = f.until(ctx, o.PhaseTimeout, fmt.Sprintf("the critical %q event to unhealthy", contract.DetailTypeDeploymentHealthChanged),
			func(a servicestate.AlertDetail) bool {
				return deploymentTo(health.Unhealthy)(a) && a.Severity == health.SeverityCritical
			})
	case datasim.Silence:
		staleAfter := r.StaleAfter(ctx)
		bound := r.cloudDuration(staleAfter+2*time.Minute) + o.PhaseTimeout
		if err := fitsDeadline(ctx, bound); err != nil {
			return f.finish(ctx, fail("--fault silence: %v", err))
		}
		if err := sim.Inject(d.ID, datasim.Silence); err != nil {
			return f.finish(ctx, err)
		}
		f.silentAt, f.silentCloud = time.Now(), r.Cloud.Clock.Now()
		f.progress("silent from now: the statesweep schedule should mark the services stale after %s of the cloud's clock (waiting up to %s)",
			staleAfter, bound.Round(time.Second))
		err = f.until(ctx, bound, fmt.Sprintf("the %q event to stale", contract.DetailTypeDeploymentHealthChanged), deploymentTo(health.Stale))
	default: // none, duplicate, out-of-order: a steady state raises no alert
		before := len(hr.Transitions)
		for range SteadySteps {
			if err := f.step(ctx); err != nil {
				return f.finish(ctx, err)
			}
			time.Sleep(StepInterval)
		}
		if late := changedAfterHealthy(hr.Transitions, before); len(late) > 0 {
			err = fail("%d health transition(s) after the deployment was healthy, with nothing changed in the data plane: %s", len(late), describe(late))
		}
		if err == nil && o.Fault == "" {
			err = f.command(ctx)
		}
	}
	return f.finish(ctx, err)
}

// deploymentTo matches the deployment's transition to h.
func deploymentTo(h health.Health) func(servicestate.AlertDetail) bool {
	return func(a servicestate.AlertDetail) bool { return a.Scope == health.ScopeDeployment && a.To == h }
}

// allHealthy matches, statefully, once the deployment and every service of DataPlaneServices
// have had a transition to healthy.
func allHealthy() func(servicestate.AlertDetail) bool {
	seen := map[string]bool{}
	return func(a servicestate.AlertDetail) bool {
		if a.To == health.Healthy {
			seen[a.ServiceID] = true // "" is the deployment
		}
		for _, s := range append([]string{""}, DataPlaneServices...) {
			if !seen[s] {
				return false
			}
		}
		return true
	}
}

// changedAfterHealthy are the transitions that arrived from index from on and happened after
// the deployment turned healthy. The vendor bus delivers at least once and in no particular
// order, so a service's own transition to healthy may arrive after the deployment's: it
// happened before, and is no change of the steady state.
func changedAfterHealthy(ts []servicestate.AlertDetail, from int) []servicestate.AlertDetail {
	var healthyAt time.Time // when it turned healthy before the window: a flap inside it must count
	for _, a := range ts[:from] {
		if deploymentTo(health.Healthy)(a) {
			healthyAt = a.At
		}
	}
	var late []servicestate.AlertDetail
	for _, a := range ts[from:] {
		if a.At.After(healthyAt) {
			late = append(late, a)
		}
	}
	return late
}

// fitsDeadline refuses a wait of up to bound that the scenario's deadline would cut short,
// so the run says why instead of timing out midway.
func fitsDeadline(ctx context.Context, bound time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < bound {
		return fmt.Errorf("staleness may take up to %s at this clock speed, more than the %s the scenario has left (raise --speed or --timeout)",
			bound.Round(time.Second), time.Until(deadline).Round(time.Second))
	}
	return nil
}

// follower is one follow-up's state.
type follower struct {
	r        *Runner
	o        Options
	hr       *HealthResult
	id       string
	sim      *datasim.Simulator
	repo     *servicestate.Repo
	events   <-chan localcloud.Event
	stop     func()
	batches  <-chan localcloud.Event // stateingest's batches
	handed   int                     // messages handed to stateingest so far
	rejected []string                // rejections announced on the bus
	// silentAt and silentCloud are when the silence fault began, in real and cloud time.
	silentAt, silentCloud time.Time
	silentSteps           int
	seen                  map[string]bool   // alert ids
	stored                map[string]string // service id -> the order key last read
	ingest0               IngestTotals
	lastErr               error // the last failed data-plane step, for a failure's reason
}

// lastError describes the last failed data-plane step, if any, for a failure's reason.
func (f *follower) lastError() string {
	if f.lastErr == nil {
		return ""
	}
	return "; the last failed data-plane step: " + f.lastErr.Error()
}

func (f *follower) progress(format string, args ...any) {
	if f.r.Progress != nil {
		f.r.Progress(localcloud.Event{At: time.Now(), Kind: localcloud.KindDataPlane, Subject: f.id, Status: fmt.Sprintf(format, args...)})
	}
}

// step runs the simulator once and waits until stateingest has taken what it sent.
func (f *follower) step(ctx context.Context) error {
	reports, err := f.sim.Step(ctx)
	f.hr.Steps++
	r := reports[f.id]
	f.hr.Sent += r.Sent
	switch {
	case err != nil:
		// An agent or exporter whose call failed tries again next round, as a real one does.
		f.lastErr = fmt.Errorf("data-plane step %d: %w", f.hr.Steps, err)
		f.progress("step %d failed, retried next round: %v", f.hr.Steps, err)
	case r.Sent > 0:
		f.progress("step %d: %d state message(s) sent", f.hr.Steps, r.Sent)
	case !f.silentAt.IsZero():
		if f.silentSteps++; f.silentSteps%4 == 1 {
			f.progress("step %d: silent for %.1fs, %s of the cloud's clock", f.hr.Steps,
				time.Since(f.silentAt).Seconds(), f.r.Cloud.Clock.Now().Sub(f.silentCloud).Round(time.Second))
		}
	case f.o.Fault == datasim.OutOfOrder:
		f.progress("step %d: reports held back, to follow the next ones (out-of-order)", f.hr.Steps)
	default:
		f.progress("step %d: nothing sent", f.hr.Steps)
	}
	wait, cancel := context.WithTimeout(ctx, f.o.PhaseTimeout)
	defer cancel()
	if err := f.ingested(wait); err != nil {
		return err
	}
	f.collect()
	if len(f.rejected) > 0 {
		return &Failure{Scenario: f.o.Scenario, Reason: "stateingest rejected the data plane's state messages: " + strings.Join(f.rejected, "; ")}
	}
	return f.checkOrder(ctx)
}

// until steps every StepInterval until an alert matching want arrives, for at most bound.
func (f *follower) until(ctx context.Context, bound time.Duration, what string, want func(servicestate.AlertDetail) bool) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	began := time.Now()
	from := 0
	for {
		if err := f.step(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		for _, a := range f.hr.Transitions[from:] {
			if want(a) {
				return nil
			}
		}
		from = len(f.hr.Transitions)
		select {
		case <-ctx.Done():
		case <-time.After(StepInterval):
			continue
		}
		break
	}
	stored := "unknown"
	if dh, err := f.repo.DeploymentHealth(context.WithoutCancel(ctx), f.id); err == nil && dh.Health != "" {
		stored = string(dh.Health)
	}
	return &Failure{Scenario: f.o.Scenario, Reason: fmt.Sprintf(
		"%s for deployment %s did not arrive on the vendor bus within %s (%d data-plane steps, %d state messages sent; the deployment's stored health is %s; alerts seen: %s)%s",
		what, f.id, time.Since(began).Round(time.Second), f.hr.Steps, f.hr.Sent, stored, describe(f.hr.Transitions), f.lastError())}
}

// ingested waits until the event source has handed stateingest as many messages as the
// simulator sent, and stateingest has answered (a batch is reported once the function
// returned, and its alerts are on the bus by then). Only this deployment's messages count:
// a late report of another deployment sharing the queue is not this one's. Counting batches
// rather than watching the queue empty keeps a rejected message, which stays in flight, from
// stalling the run.
func (f *follower) ingested(ctx context.Context) error {
	for {
		for {
			select {
			case e := <-f.batches:
				f.handed += e.HandedBy[f.id]
				continue
			default:
			}
			break
		}
		if f.handed >= f.hr.Sent {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stateingest was handed %d of the %d state messages sent: %w", f.handed, f.hr.Sent, ctx.Err())
		case e := <-f.batches:
			f.handed += e.HandedBy[f.id]
		}
	}
}

// collect takes the health events that arrived so far.
func (f *follower) collect() {
	for {
		select {
		case e := <-f.events:
			if e.DetailType == contract.DetailTypeStateMessageRejected {
				f.rejected = append(f.rejected, e.Status+": "+e.Detail)
				continue
			}
			var a servicestate.AlertDetail
			if err := json.Unmarshal(e.Data, &a); err != nil || a.AlertID == "" {
				continue
			}
			if f.seen[a.AlertID] {
				f.hr.Redelivered++
				continue
			}
			f.seen[a.AlertID] = true
			f.hr.Transitions = append(f.hr.Transitions, a)
		default:
			return
		}
	}
}

// checkOrder reads the stored services and fails if one went back to an older report:
// duplicates and out-of-order messages must never move the stored state backwards.
func (f *follower) checkOrder(ctx context.Context) error {
	svcs, err := f.repo.Services(ctx, f.id)
	if err != nil {
		return err
	}
	for _, s := range svcs {
		if prev := f.stored[s.ServiceID]; s.OrderKey < prev {
			return &Failure{Scenario: f.o.Scenario, Reason: fmt.Sprintf("service %s/%s went back from report %s to the older %s", f.id, s.ServiceID, prev, s.OrderKey)}
		}
		f.stored[s.ServiceID] = s.OrderKey
	}
	f.hr.Services = svcs
	return nil
}

// finish reads the final stored state and stateingest's counts.
func (f *follower) finish(ctx context.Context, err error) (*HealthResult, error) {
	ctx = context.WithoutCancel(ctx)
	if dh, derr := f.repo.DeploymentHealth(ctx, f.id); derr == nil {
		f.hr.Final = dh.Health
	}
	if svcs, serr := f.repo.Services(ctx, f.id); serr == nil {
		f.hr.Services = svcs
	}
	if f.r.Ingest != nil {
		t := f.r.Ingest.Totals().Minus(f.ingest0)
		f.hr.Ingest = &t
	}
	if err == nil {
		err = checkHealth(f.o, f.hr)
	}
	return f.hr, err
}

// checkHealth compares the follow-up's outcome with what its fault should produce.
func checkHealth(o Options, hr *HealthResult) error {
	fail := func(format string, args ...any) error {
		return &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf(format, args...)}
	}
	want := health.Healthy
	switch o.Fault {
	case datasim.Unhealthy:
		want = health.Unhealthy
	case datasim.Silence:
		want = health.Stale
	}
	if hr.Final != want {
		return fail("the deployment's stored health is %q, want %q (alerts: %s)", hr.Final, want, describe(hr.Transitions))
	}
	if len(hr.Services) != len(DataPlaneServices) {
		return fail("%d services stored, want %d", len(hr.Services), len(DataPlaneServices))
	}
	for _, s := range hr.Services {
		if s.Health != want {
			return fail("service %s is %q, want %q", s.ServiceID, s.Health, want)
		}
	}
	// Each service and the deployment: one transition per change of health, never more.
	changes := map[health.Health]int{}
	for _, a := range hr.Transitions {
		changes[a.To]++
	}
	if n := changes[want]; n != len(DataPlaneServices)+1 {
		return fail("%d transitions to %s, want %d (each service and the deployment once): %s", n, want, len(DataPlaneServices)+1, describe(hr.Transitions))
	}
	if t := hr.Ingest; t != nil {
		if t.Rejected+t.Retry > 0 {
			return fail("stateingest rejected %d and retried %d of the simulator's messages", t.Rejected, t.Retry)
		}
		switch {
		case o.Fault == datasim.Duplicate && t.Duplicate == 0:
			return fail("the duplicate fault is on, yet stateingest counted no duplicate (%s)", t)
		case o.Fault == datasim.OutOfOrder && t.OutOfOrder == 0:
			return fail("the out-of-order fault is on, yet stateingest counted no out-of-order message (%s)", t)
		}
	}
	return nil
}

// describe lists alerts as "scope id: from -> to (severity)".
func describe(alerts []servicestate.AlertDetail) string {
	if len(alerts) == 0 {
		return "none"
	}
	var parts []string
	for _, a := range alerts {
		who := string(a.Scope)
		if a.ServiceID != "" {
			who += " " + a.ServiceID
		}
		parts = append(parts, fmt.Sprintf("%s: %s -> %s (%s)", who, a.From, a.To, a.Severity))
	}
	return strings.Join(parts, "; ")
}

// eventDeployment is the deployment a KindHealth event concerns.
func eventDeployment(e localcloud.Event) string {
	var d struct {
		DeploymentID        string `json:"deploymentId"`
		ClaimedDeploymentID string `json:"claimedDeploymentId"`
	}
	_ = json.Unmarshal(e.Data, &d)
	if d.DeploymentID != "" {
		return d.DeploymentID
	}
	return d.ClaimedDeploymentID
}

func faultNote(f datasim.Fault) string {
	if f == "" {
		return ""
	}
	return "; fault " + string(f)
}

// StaleAfter is statesweep's STATE_STALE_AFTER, read from the deployed function (the
// default when it is unset or unreadable).
func (r *Runner) StaleAfter(ctx context.Context) time.Duration {
	name, err := r.ControlPlane.FunctionName(contract.FunctionStateSweep)
	if err != nil {
		return health.DefaultStaleAfter
	}
	out, err := lambda.NewFromConfig(r.Cloud.WatchConfig()).GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil || out.Environment == nil {
		return health.DefaultStaleAfter
	}
	if d, err := time.ParseDuration(out.Environment.Variables[contract.EnvStateStaleAfter]); err == nil && d > 0 {
		return d
	}
	return health.DefaultStaleAfter
}

// cloudDuration is the real time a span of the cloud's clock takes.
func (r *Runner) cloudDuration(d time.Duration) time.Duration {
	if s, ok := r.Cloud.Clock.(interface{ Speed() float64 }); ok && s.Speed() > 0 {
		return time.Duration(float64(d) / s.Speed())
	}
	return d
}

// isHealthAlert tells the state events the follow-up judges (health transitions, rejections)
// from the maintenance notices the same watch carries.
func isHealthAlert(detailType string) bool {
	switch detailType {
	case contract.DetailTypeServiceHealthChanged, contract.DetailTypeDeploymentHealthChanged, contract.DetailTypeStateMessageRejected:
		return true
	}
	return false
}
