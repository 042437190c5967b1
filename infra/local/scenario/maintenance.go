package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// The maintenance scenarios: onboard, the data plane healthy, then releases and windows.
const (
	// Upgrade: a Kubernetes minor and a ClickHouse version are published; the window is
	// three days and an hour away: the clock jumps to its notice (BYOC Maintenance Upcoming),
	// then to its opening; the control plane, the node groups and each ClickHouse service are
	// upgraded in order, and the deployment ends ready on the new versions.
	Upgrade = "upgrade"
	// SecurityFix: a security release of ClickHouse: BYOC Maintenance Scheduled with its
	// lead time, then the off-cycle upgrade, outside any window and before the deadline.
	SecurityFix = "security-fix"
	// UpgradeHalts: a canary of the fast channel takes a ClickHouse version that turns its
	// service unhealthy: the step times out, the service is put back on its version, the
	// upgrade fails (BYOC Maintenance Failed), the release halts and its next wave never opens.
	UpgradeHalts = "upgrade-halts"
)

// MaintenanceScenarios are the scenarios of a deployment's maintenance.
var MaintenanceScenarios = []string{Upgrade, SecurityFix, UpgradeHalts}

// Initial versions of the simulated services when the catalogue has none.
const (
	baseClickHouse = "25.3.2.39"
	baseOperator   = "0.26.0"
)

// MaintenanceResult is what a maintenance scenario saw.
type MaintenanceResult struct {
	Releases  []string          // published
	Execution string            // the upgrade execution
	Status    string            // how it ended
	Versions  map[string]string // the stack's version parameters at the end
	Services  map[string]string // each service's ClickHouse version at the end
	Notices   []string          // maintenance notices seen, in order
	Ledger    *datasim.Ledger   // what the simulated data plane did
	// Window is what the window's firing and its upgrade cost, from the jump to its
	// opening to the upgrade's end (the data plane's own reports included).
	Window localcloud.Counters
}

// maint runs one maintenance scenario.
type maint struct {
	r       *Runner
	o       Options
	id      string
	st      *store.Store
	repo    *servicestate.Repo
	sim     *datasim.Simulator
	stop    func()
	res     *MaintenanceResult
	notes   <-chan localcloud.Event
	unwatch func()
}

func (r *Runner) maintenance(ctx context.Context, o Options, res Result) (Result, error) {
	m := &maint{r: r, o: o, id: res.Deployment.ID, res: &MaintenanceResult{},
		st:   store.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable]),
		repo: servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])}
	res.Maintenance = m.res
	if err := r.Cloud.WatchStateEvents(ctx, r.ControlPlane.Outputs[outVendorBusName]); err != nil {
		return res, err
	}
	m.notes, m.unwatch = r.watch(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindHealth && eventDeployment(e) == m.id && !isHealthAlert(e.DetailType)
	})
	defer m.unwatch()
	err := m.run(ctx, res.Deployment)
	if m.stop != nil {
		m.stop()
	}
	if d, gerr := m.st.Get(context.WithoutCancel(ctx), m.id); gerr == nil {
		res.Deployment = d
		m.res.Versions = d.StackVersions
	}
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			err = &Failure{Scenario: o.Scenario, Reason: err.Error()}
		}
	}
	return res, err
}

func (m *maint) fail(format string, args ...any) error {
	return &Failure{Scenario: m.o.Scenario, Reason: fmt.Sprintf(format, args...)}
}

func (m *maint) progress(format string, args ...any) {
	if m.r.Progress != nil {
		m.r.Progress(localcloud.Event{At: time.Now(), Kind: localcloud.KindDataPlane, Subject: m.id, Status: fmt.Sprintf(format, args...)})
	}
}

func (m *maint) run(ctx context.Context, d store.Deployment) error {
	rs, err := m.st.Releases(ctx)
	if err != nil {
		return err
	}
	cat := store.Catalogue(rs)
	ch := cat.Target(release.ClickHouse)
	if ch == "" {
		ch = baseClickHouse
	}
	if err := m.startDataPlane(ctx, d, ch); err != nil {
		return err
	}
	next := bump(ch)
	switch m.o.Scenario {
	case Upgrade:
		k8s := release.MinorString(release.Minor(cat.Target(release.Kubernetes)) + 1)
		if err := m.publish(ctx, map[string]any{"component": release.Kubernetes, "version": k8s, "notes": "byoc-local upgrade scenario"}); err != nil {
			return err
		}
		if err := m.publish(ctx, map[string]any{"component": release.ClickHouse, "version": next}); err != nil {
			return err
		}
		// A window three days and an hour away: its notice is an hour away.
		if err := m.setWindow(ctx, 73*time.Hour, 4); err != nil {
			return err
		}
		if err := m.jumpToArm(ctx, "notice"); err != nil {
			return err
		}
		if _, err := m.notice(ctx, contract.DetailTypeMaintenanceUpcoming); err != nil {
			return err
		}
		before := m.r.Cloud.Counters()
		if err := m.jumpToArm(ctx, "open"); err != nil {
			return err
		}
		if err := m.awaitUpgrade(ctx, "SUCCEEDED"); err != nil {
			return err
		}
		after := m.r.Cloud.Counters()
		m.res.Window = localcloud.Counters{AWSCalls: after.AWSCalls - before.AWSCalls, LambdaInvocations: after.LambdaInvocations - before.LambdaInvocations,
			StateTransitions: after.StateTransitions - before.StateTransitions}
		return m.check(ctx, map[string]string{contract.InfraParamKubernetesVersion: k8s, contract.InfraParamNodeKubernetesVersion: k8s}, next, "done")
	case SecurityFix:
		deadline := m.r.Cloud.Clock.Now().Add(10 * 24 * time.Hour).UTC()
		if err := m.publish(ctx, map[string]any{"component": release.ClickHouse, "version": next, "kind": release.Security, "severity": "high",
			"cves": []string{"CVE-2026-41234"}, "deadline": deadline.Format(time.RFC3339), "noticeLead": "2h"}); err != nil {
			return err
		}
		if _, err := m.notice(ctx, contract.DetailTypeMaintenanceScheduled); err != nil {
			return err
		}
		if err := m.jumpToArm(ctx, "security"); err != nil {
			return err
		}
		if err := m.awaitUpgrade(ctx, "SUCCEEDED"); err != nil {
			return err
		}
		if now := m.r.Cloud.Clock.Now(); now.After(deadline) {
			return m.fail("the security upgrade finished at %s, after its deadline %s", now.Format(time.RFC3339), deadline.Format(time.RFC3339))
		}
		return m.check(ctx, nil, next, "done")
	case UpgradeHalts:
		if err := m.setChannel(ctx, release.ChannelFast, true); err != nil {
			return err
		}
		if err := m.publish(ctx, map[string]any{"component": release.ClickHouse, "version": next}); err != nil {
			return err
		}
		if err := m.sim.Inject(m.id, datasim.Unhealthy); err != nil {
			return err
		}
		if err := m.setWindow(ctx, 30*time.Minute, 4); err != nil {
			return err
		}
		unhealthy := m.r.expect(func(e localcloud.Event) bool {
			return e.Kind == localcloud.KindHealth && e.DetailType == contract.DetailTypeDeploymentHealthChanged && eventDeployment(e) == m.id &&
				strings.Contains(e.Status, "-> "+string(health.Unhealthy))
		})
		if err := m.jumpToArm(ctx, "open"); err != nil {
			return err
		}
		if _, err := await(ctx, unhealthy, "the critical alert of the service the new version broke"); err != nil {
			return err
		}
		// The gate waits for the service healthy on the new version until its timeout.
		// The gate's timeout counts from when its task started, which retries (throttling) may
		// have put after the alert: the clock runs on until the upgrade ends.
		for attempt := 1; ; attempt++ {
			m.progress("the service is unhealthy on %s: the clock runs to the step's timeout", next)
			if err := m.jump(ctx, 31*time.Minute); err != nil {
				return err
			}
			err := m.awaitUpgradeWithin(ctx, "FAILED", 20*time.Second)
			if err == nil || attempt == 3 {
				if err != nil {
					return err
				}
				break
			}
		}
		if _, err := m.notice(ctx, contract.DetailTypeMaintenanceFailed); err != nil {
			return err
		}
		if err := m.sim.Clear(m.id, datasim.Unhealthy); err != nil {
			return err
		}
		if err := m.check(ctx, nil, ch, "failed"); err != nil {
			return err
		}
		return m.checkHalted(ctx, release.ID(release.ClickHouse, next))
	}
	return fmt.Errorf("scenario %s is not a maintenance scenario", m.o.Scenario)
}

// bump is the next patch of a ClickHouse version: 25.3.2.39 -> 25.3.2.40.
func bump(v string) string {
	i := strings.LastIndex(v, ".")
	n, _ := strconv.Atoi(v[i+1:])
	return v[:i+1] + strconv.Itoa(n+1)
}

// startDataPlane runs the deployment's simulated data plane (its services on version ch)
// until the scenario ends, and waits until every service reports healthy.
func (m *maint) startDataPlane(ctx context.Context, d store.Deployment, ch string) error {
	dp, err := servicestate.DataPlaneFromOutputs(d.ID, m.o.Customer, d.Outputs)
	if err != nil {
		return m.fail("the deployment record does not name its data-plane roles: %v", err)
	}
	m.sim = m.r.Cloud.DataPlane(func(c *datasim.Config) { c.StateQueueURL = m.r.ControlPlane.Outputs[outStateQueueURL] })
	dep := datasim.Deployment{ID: d.ID, ExporterRoleARN: dp.ExporterRoleARN, AgentRoleARN: dp.AgentRoleARN, Region: d.Settings.Region}
	for _, s := range DataPlaneServices {
		dep.Services = append(dep.Services, datasim.Service{ID: s, Versions: statemsg.Versions{ClickHouse: ch, Operator: baseOperator, Kubernetes: d.StackVersions[contract.InfraParamKubernetesVersion]}})
	}
	if err := m.sim.Add(dep); err != nil {
		return err
	}
	stepCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for stepCtx.Err() == nil {
			if _, err := m.sim.Step(stepCtx); err != nil && stepCtx.Err() == nil {
				m.progress("data plane step: %v", err)
			}
			select {
			case <-stepCtx.Done():
			case <-time.After(StepInterval):
			}
		}
	}()
	m.stop = func() {
		cancel()
		<-done
		ledger := m.sim.Ledger(d.ID)
		m.res.Ledger = &ledger
		m.drain(context.WithoutCancel(ctx), ledger)
		if !m.r.KeepDataPlane {
			m.sim.Remove(d.ID)
		}
	}
	m.progress("data plane started: services %s on ClickHouse %s", strings.Join(DataPlaneServices, ", "), ch)
	return m.until(ctx, "every service healthy on ClickHouse "+ch, func(ss []servicestate.Service) bool {
		return len(ss) == len(DataPlaneServices) && all(ss, func(s servicestate.Service) bool {
			return s.Health == health.Healthy && s.Versions.ClickHouse == ch
		})
	})
}

// drainWait bounds how long a stopped data plane's last reports are waited for.
const drainWait = 20 * time.Second

// drain waits until the reports the stopped data plane already sent are ingested, so none
// lands after the scenario, in whatever runs next (another run's count of ingested
// messages saw such a late pair as its own). A report that does not arrive in time (its
// receive answer lost, redelivered minutes later) is given up on silently: the scenario's
// outcome does not depend on it.
func (m *maint) drain(ctx context.Context, ledger datasim.Ledger) {
	ctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	for ctx.Err() == nil {
		ss, err := m.repo.Services(ctx, m.id)
		if err == nil && all(ss, func(s servicestate.Service) bool { return s.OrderKey >= ledger.LastSent[s.ServiceID] }) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func all[T any](xs []T, ok func(T) bool) bool {
	for _, x := range xs {
		if !ok(x) {
			return false
		}
	}
	return true
}

// until waits for the services' stored state to satisfy ok.
func (m *maint) until(ctx context.Context, what string, ok func([]servicestate.Service) bool) error {
	ctx, cancel := context.WithTimeout(ctx, m.o.PhaseTimeout)
	defer cancel()
	for {
		ss, err := m.repo.Services(ctx, m.id)
		if err == nil && ok(ss) {
			return nil
		}
		select {
		case <-ctx.Done():
			return m.fail("waited %s for %s", m.o.PhaseTimeout, what)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// publish publishes a release as the vendor does: the releases function's publish action.
func (m *maint) publish(ctx context.Context, rel map[string]any) error {
	body, _ := json.Marshal(map[string]any{"action": "publish", "release": rel, "actor": "byoc-local"})
	out, err := m.invoke(ctx, contract.FunctionReleases, body)
	if err != nil && strings.Contains(err.Error(), "Conflict") {
		// A publish whose answer was lost (its process died after storing): the vendor asks
		// again and finds it published.
		id := release.ID(fmt.Sprint(rel["component"]), fmt.Sprint(rel["version"]))
		if r, gerr := m.st.Release(ctx, id); gerr == nil {
			out, err = json.Marshal(map[string]any{"release": r.Release, "waves": release.Summary(r.Progress)})
		}
	}
	if err != nil {
		return err
	}
	var v struct {
		Release struct {
			ID string `json:"id"`
		} `json:"release"`
		Waves string `json:"waves"`
	}
	_ = json.Unmarshal(out, &v)
	m.res.Releases = append(m.res.Releases, v.Release.ID)
	m.progress("vendor published %s: %s", v.Release.ID, v.Waves)
	return nil
}

// maintain invokes the maintenance function's action for the deployment (as the customer
// asks through the operator).
func (m *maint) maintain(ctx context.Context, action map[string]any) (store.Deployment, error) {
	action["deploymentId"], action["actor"] = m.id, "customer"
	body, _ := json.Marshal(action)
	if _, err := m.invoke(ctx, contract.FunctionMaintenance, body); err != nil {
		return store.Deployment{}, err
	}
	return m.st.Get(ctx, m.id)
}

// invoke calls a function as the operator does, asking again when its process died or
// timed out (what a caller of Lambda sees as Runtime.ExitError or Sandbox.Timedout).
func (m *maint) invoke(ctx context.Context, fn string, body []byte) ([]byte, error) {
	var out []byte
	var err error
	for range inviteAttempts {
		if out, err = Invoke(ctx, m.r.Cloud, m.r.ControlPlane, fn, body); !sandboxFailure(out, err) {
			break
		}
	}
	return out, err
}

// setWindow gives the deployment a window of hours opening in (about) `in` of the cloud's
// time, in the region's zone.
func (m *maint) setWindow(ctx context.Context, in time.Duration, hours int) error {
	zone := window.Default(m.r.Cloud.Region).TimeZone
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return err
	}
	opens := m.r.Cloud.Clock.Now().Add(in).In(loc).Truncate(time.Minute).Add(time.Minute)
	w := window.Window{Day: strings.ToLower(opens.Weekday().String()), Start: opens.Format("15:04"), TimeZone: zone, Hours: hours}
	d, err := m.maintain(ctx, map[string]any{"action": "set", "window": w})
	if err != nil {
		return err
	}
	m.progress("customer set the window %s; armed: %s %s at %s", w.Describe(), d.Maintenance.Armed.Purpose, d.Maintenance.Armed.Key,
		d.Maintenance.Armed.At.Format(time.RFC3339))
	return nil
}

func (m *maint) setChannel(ctx context.Context, channel string, canary bool) error {
	_, err := m.maintain(ctx, map[string]any{"action": "set", "channel": channel, "canary": canary})
	return err
}

// jumpToArm jumps the cloud's clock to the deployment's armed firing, which must be of
// purpose.
func (m *maint) jumpToArm(ctx context.Context, purpose string) error {
	// The firing before re-arms after its notice went out: wait for it.
	var a *store.Arm
	wait, cancel := context.WithTimeout(ctx, m.o.PhaseTimeout)
	defer cancel()
	for a == nil || a.Purpose != purpose {
		d, err := m.st.Get(wait, m.id)
		if err != nil {
			return m.fail("the deployment's schedule is armed for %+v, want a %s (%v)", a, purpose, err)
		}
		if a = d.Maintenance.Armed; a != nil && a.Purpose == purpose {
			break
		}
		select {
		case <-wait.Done():
			return m.fail("the deployment's schedule is armed for %+v, want a %s", a, purpose)
		case <-time.After(50 * time.Millisecond):
		}
	}
	fired := m.r.expect(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindSchedule && strings.Contains(e.Subject, m.id)
	})
	if err := m.jump(ctx, a.At.Sub(m.r.Cloud.Clock.Now())+time.Second); err != nil {
		return err
	}
	_, err := await(ctx, fired, fmt.Sprintf("the maintenance schedule's %s firing", purpose))
	return err
}

// jump moves the cloud's clock forward with the schedules held until the data plane has
// reported at the new time: a sweep must not take the jump for the exporters' silence.
func (m *maint) jump(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	release := m.r.Cloud.Firer.Hold()
	defer release()
	if err := m.r.Cloud.Jump(d); err != nil {
		return err
	}
	target := m.r.Cloud.Clock.Now().Add(-time.Second)
	if _, err := m.sim.Step(ctx); err != nil {
		return err
	}
	return m.until(ctx, "every service's report after the jump", func(ss []servicestate.Service) bool {
		return len(ss) > 0 && all(ss, func(s servicestate.Service) bool { return !s.ObservedAt.Before(target) })
	})
}

// notice waits for a maintenance notice of the deployment.
func (m *maint) notice(ctx context.Context, detailType string) (localcloud.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, m.o.PhaseTimeout)
	defer cancel()
	for {
		select {
		case e := <-m.notes:
			m.res.Notices = append(m.res.Notices, e.DetailType)
			if e.DetailType == detailType {
				return e, nil
			}
		case <-ctx.Done():
			return localcloud.Event{}, m.fail("no %q event for deployment %s (seen: %v)", detailType, m.id, m.res.Notices)
		}
	}
}

// awaitUpgrade waits for the deployment's upgrade execution to end with status.
func (m *maint) awaitUpgrade(ctx context.Context, status string) error {
	return m.awaitUpgradeWithin(ctx, status, m.o.PhaseTimeout)
}

func (m *maint) awaitUpgradeWithin(ctx context.Context, status string, bound time.Duration) error {
	machine := m.r.ControlPlane.Outputs[OutputUpgradeMachine]
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		execs, err := m.r.Cloud.States.Engine.ListExecutions(machine, "")
		if err != nil {
			return err
		}
		for _, x := range execs {
			if !strings.HasPrefix(x.Name, "upgrade-"+m.id+"-") || x.Status == "RUNNING" {
				continue
			}
			m.res.Execution, m.res.Status = x.Name, x.Status
			if x.Status != status {
				return m.fail("upgrade %s ended %s, want %s", x.Name, x.Status, status)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return m.fail("waited %s for the upgrade of %s to end", bound, m.id)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// check compares the end state: the deployment ready, its stack on the versions, each
// service healthy on ClickHouse ch, the last run's outcome.
func (m *maint) check(ctx context.Context, versions map[string]string, ch, outcome string) error {
	d, err := m.st.Get(ctx, m.id)
	if err != nil {
		return err
	}
	if d.Status != lifecycle.Ready {
		return m.fail("deployment %s is %s after its maintenance, want ready", m.id, d.Status)
	}
	for k, v := range versions {
		if d.StackVersions[k] != v {
			return m.fail("the infrastructure stack's %s is %q, want %q", k, d.StackVersions[k], v)
		}
	}
	if d.Maintenance.Last == nil || d.Maintenance.Last.Outcome != outcome {
		return m.fail("the last maintenance run is %+v, want %s", d.Maintenance.Last, outcome)
	}
	m.res.Services = map[string]string{}
	return m.until(ctx, "every service healthy on ClickHouse "+ch, func(ss []servicestate.Service) bool {
		for _, s := range ss {
			m.res.Services[s.ServiceID] = s.Versions.ClickHouse
		}
		return all(ss, func(s servicestate.Service) bool { return s.Health == health.Healthy && s.Versions.ClickHouse == ch })
	})
}

// checkHalted: the release halted, its first wave halted and the next one never opened.
func (m *maint) checkHalted(ctx context.Context, id string) error {
	r, err := m.st.Release(ctx, id)
	if err != nil {
		return err
	}
	waves := r.Waves()
	if !r.Halted || waves[0].State != release.WaveHalted || waves[1].State != release.WaveWaiting {
		return m.fail("release %s: halted %v (%s), waves %s; want halted with fast/canary halted and fast/rest waiting", id, r.Halted, r.HaltReason, release.Summary(waves))
	}
	m.progress("release %s halted: %s", id, release.Summary(waves))
	return nil
}

// disarm deletes a deployment's maintenance schedule and takes it off maintenance, as
// teardown will: a retired run's deployment must not wake at its next window.
func (r *Runner) disarm(ctx context.Context, id string) error {
	_, err := scheduler.NewFromConfig(r.Cloud.WatchConfig()).DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{
		GroupName: aws.String(r.ControlPlane.Outputs[outMaintenanceSchedule]), Name: aws.String(id)})
	var missing *schtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("disarm deployment %s: %w", id, err)
	}
	st := store.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])
	for range 3 {
		d, err := st.Get(ctx, id)
		if err != nil || d.Maintenance == nil {
			return err
		}
		next := d
		next.Maintenance = nil
		if _, err = st.Update(ctx, d, next, store.Audit{Actor: "byoc-local", Action: "maintenance.retired"}); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}
