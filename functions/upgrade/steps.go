package main

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/stackwait"
	"github.com/byocloud/byoc/shared/store"
)

const actor = "upgrade"

// ---- plan -------------------------------------------------------------------------------

// PlanResult is how many steps the plan has (0: nothing to do, Skipped says why).
type PlanResult struct {
	Steps   int      `json:"steps"`
	Plan    []string `json:"plan"`
	Skipped string   `json:"skipped"`
}

func (h *Handler) plan(ctx context.Context, log *slog.Logger, in Input) (PlanResult, error) {
	s := h.Maintenance
	d, err := s.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return PlanResult{}, err
	}
	if d.Status == lifecycle.Updating && d.Execution == in.Execution {
		u, err := s.Store.Upgrade(ctx, d.ID, runs.NameOf(in.Execution))
		if err != nil {
			return PlanResult{}, err
		}
		return PlanResult{Steps: len(u.Steps), Plan: release.Describe(u.Steps)}, nil // planned by a previous invocation
	}
	if d.Status != lifecycle.Ready || d.Maintenance == nil {
		return h.skip(ctx, log, d, in, fmt.Sprintf("deployment is %s", d.Status))
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return PlanResult{}, err
	}
	stack, err := stacks.Describe(ctx, d.StackName)
	if err != nil {
		return PlanResult{}, err
	}
	if stack == nil || !slices.Contains(customerstack.Settled, stack.StackStatus) {
		status := "absent"
		if stack != nil {
			status = string(stack.StackStatus)
		}
		return h.skip(ctx, log, d, in, "infrastructure stack is "+status)
	}
	params := maintenance.VersionParams(customerstack.Parameters(stack))
	services, err := s.Services.Services(ctx, d.ID)
	if err != nil {
		return PlanResult{}, err
	}
	cur := maintenance.Versions(params, services)
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return PlanResult{}, err
	}
	due := maintenance.Due(rs, *d.Maintenance, cur, in.Purpose == maintenance.PurposeSecurity)
	steps := release.Plan(cur, due)
	if len(steps) == 0 {
		return h.skip(ctx, log, d, in, "nothing due")
	}
	u := store.Upgrade{Execution: runs.NameOf(in.Execution), Purpose: in.Purpose, Key: in.Key, Steps: steps, StartedAt: clock.Now().UTC()}
	if in.Closes != "" {
		closes, err := time.Parse(time.RFC3339, in.Closes)
		if err != nil {
			return PlanResult{}, &InvalidInput{Problem: fmt.Sprintf("closes %q is not RFC 3339", in.Closes)}
		}
		u.Closes = &closes
	}
	for _, r := range due {
		u.Releases = append(u.Releases, r.ID)
	}
	if u, err = s.Store.PutUpgrade(ctx, d.ID, u); err != nil {
		return PlanResult{}, err
	}
	next := d
	m := *d.Maintenance
	m.Last = &store.Run{Execution: u.Execution, Key: in.Key, Outcome: "running", At: u.StartedAt}
	next.Maintenance, next.Status, next.Execution, next.StackVersions = &m, lifecycle.Updating, in.Execution, params
	// Notices go out before the write that ends the step: a retry may send one twice
	// (consumers deduplicate on noticeId), never lose it.
	n := maintenance.Notice{NoticeID: "started/" + u.Execution, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, Execution: u.Execution,
		Releases: maintenance.Releases(due), Steps: release.Describe(u.Steps)}
	if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceStarted, n); err != nil {
		return PlanResult{}, err
	}
	if _, err := s.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "upgrade.start",
		Detail: fmt.Sprintf("%s %s: %s", in.Purpose, in.Key, strings.Join(release.Describe(u.Steps), "; "))}); err != nil {
		return PlanResult{}, err
	}
	log.InfoContext(ctx, "upgrade planned", "steps", len(u.Steps))
	return PlanResult{Steps: len(u.Steps), Plan: release.Describe(u.Steps)}, nil
}

// skip records why an upgrade did nothing (once per execution) and ends it quietly.
func (h *Handler) skip(ctx context.Context, log *slog.Logger, d store.Deployment, in Input, why string) (PlanResult, error) {
	err := h.Maintenance.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "upgrade.skipped", Detail: fmt.Sprintf("%s %s: %s", in.Purpose, in.Key, why),
		EventID: "upgrade-skipped/" + runs.NameOf(in.Execution)})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return PlanResult{}, err
	}
	log.InfoContext(ctx, "upgrade skipped", "why", why)
	return PlanResult{Skipped: why, Plan: []string{}}, nil
}

// executionName is the last part of an execution ARN (the name the firing chose).

// owned returns the deployment and its upgrade when this execution owns it.
func (h *Handler) owned(ctx context.Context, in Input, step string) (store.Deployment, store.Upgrade, error) {
	d, err := h.Maintenance.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return d, store.Upgrade{}, err
	}
	if d.Status != lifecycle.Updating || d.Execution != in.Execution {
		return d, store.Upgrade{}, &NotOwner{DeploymentID: d.ID, Owner: d.Execution, Step: step}
	}
	u, err := h.Maintenance.Store.Upgrade(ctx, d.ID, runs.NameOf(in.Execution))
	return d, u, err
}

// ---- next -------------------------------------------------------------------------------

// NextResult is what the workflow does next. Every field is always present (the workflow's
// paths must resolve), empty when the action does not use it.
type NextResult struct {
	Action   string `json:"action"` // stack, command, wait, finish
	Index    int    `json:"index"`
	Describe string `json:"describe"`
	Reason   string `json:"reason"`
	// command: what sendcommand sends, what statewait waits for, and for a ClickHouse
	// service the command that puts it back on its version when the wait fails.
	CommandID      string                 `json:"commandId"`
	ServiceID      string                 `json:"serviceId"`
	Params         map[string]string      `json:"params"`
	Condition      servicestate.Condition `json:"condition"`
	TimeoutSeconds int                    `json:"timeoutSeconds"`
	Rollback       Rollback               `json:"rollback"`
}

// Rollback is the command that restores a service's previous version.
type Rollback struct {
	Needed    bool              `json:"needed"`
	CommandID string            `json:"commandId"`
	Params    map[string]string `json:"params"`
}

// How long a command step waits for the service to report the new version healthy.
const (
	operatorTimeout   = 20 * time.Minute
	clickhouseTimeout = 30 * time.Minute
)

func (h *Handler) next(ctx context.Context, in Input) (NextResult, error) {
	_, u, err := h.owned(ctx, in, StepNext)
	if err != nil {
		return NextResult{}, err
	}
	out := NextResult{Index: u.Done, Params: map[string]string{}, Rollback: Rollback{Params: map[string]string{}}}
	if u.Done >= len(u.Steps) {
		out.Action = "finish"
		return out, nil
	}
	st := u.Steps[u.Done]
	out.Describe = st.Describe()
	if u.Closes != nil {
		if left := u.Closes.Sub(clock.Now()); left < st.Estimate {
			out.Action = "wait"
			out.Reason = fmt.Sprintf("%s needs about %s and %s of the window is left: it waits for the next window", st.Describe(), st.Estimate, max(left, 0).Round(time.Minute))
			return out, nil
		}
	}
	switch st.Kind {
	case release.StepControlPlane, release.StepNodes, release.StepAddons:
		out.Action = "stack"
		return out, nil
	}
	out.Action = "command"
	out.CommandID = commandID(in.Execution, u.Done, "apply")
	switch st.Kind {
	case release.StepOperator:
		// The operator is deployment-wide (no service): it is confirmed by the first
		// service reporting the new operator version after the agent's acknowledgement.
		services, err := h.Maintenance.Services.Services(ctx, in.DeploymentID)
		if err != nil {
			return NextResult{}, err
		}
		if len(services) == 0 {
			return NextResult{}, fmt.Errorf("%s: the deployment reports no service to confirm it by", st.Describe())
		}
		out.Params["operatorVersion"] = st.Operator
		out.Condition = servicestate.Condition{ServiceID: services[0].ServiceID, OperatorVersion: st.Operator, CommandID: out.CommandID}
		out.TimeoutSeconds = int(operatorTimeout.Seconds())
	case release.StepClickHouse:
		out.ServiceID = st.ServiceID
		out.Params["clickhouseVersion"] = st.ClickHouse
		out.Condition = servicestate.Condition{ServiceID: st.ServiceID, Health: health.Healthy, ClickHouseVersion: st.ClickHouse, CommandID: out.CommandID}
		out.TimeoutSeconds = int(clickhouseTimeout.Seconds())
		if st.From != "" {
			out.Rollback = Rollback{Needed: true, CommandID: commandID(in.Execution, u.Done, "rollback"), Params: map[string]string{"clickhouseVersion": st.From}}
		}
	}
	return out, nil
}

// commandID derives a command's id from the execution and the step, so a retried step sends
// nothing twice.
func commandID(execution string, index int, what string) string {
	sum := sha1.Sum([]byte(fmt.Sprintf("%s/%d/%s", execution, index, what)))
	return hex.EncodeToString(sum[:])
}

// ---- stack steps ------------------------------------------------------------------------

// stackChanges are the infrastructure parameters a stack step changes.
func stackChanges(st release.Step) map[string]string {
	switch st.Kind {
	case release.StepControlPlane:
		return map[string]string{contract.InfraParamKubernetesVersion: st.Kubernetes}
	case release.StepNodes:
		return map[string]string{contract.InfraParamNodeKubernetesVersion: st.Kubernetes, contract.InfraParamNodeReleaseVersion: st.Nodes}
	case release.StepAddons:
		out := map[string]string{}
		for name, v := range st.Addons {
			out[contract.InfraParamAddonVersion(name)] = v
		}
		return out
	}
	return nil
}

// requestToken is the ClientRequestToken of a stack step's update.
func requestToken(execution string, index int) string {
	return "byoc-upgrade-" + commandID(execution, index, "stack")[:32]
}

func (h *Handler) apply(ctx context.Context, in Input) (customerstack.Result, error) {
	d, u, err := h.owned(ctx, in, StepApply)
	if err != nil {
		return customerstack.Result{}, err
	}
	if in.Index < 0 || in.Index >= len(u.Steps) {
		return customerstack.Result{}, &InvalidInput{Problem: fmt.Sprintf("index %d is not a step of the plan (%d steps)", in.Index, len(u.Steps))}
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return customerstack.Result{}, err
	}
	ref := d.StackID
	if ref == "" {
		ref = d.StackName
	}
	stack, err := stacks.Describe(ctx, ref)
	if err != nil {
		return customerstack.Result{}, err
	}
	if stack == nil {
		return customerstack.Result{}, fmt.Errorf("infrastructure stack %s is gone", ref)
	}
	return stacks.UpdateParameters(ctx, stack, stackChanges(u.Steps[in.Index]), requestToken(in.Execution, in.Index))
}

func (h *Handler) await(ctx context.Context, in Input) (stackwait.Result, error) {
	if in.TaskToken == "" {
		return stackwait.Result{}, &InvalidInput{Problem: "await needs taskToken"}
	}
	d, _, err := h.owned(ctx, in, StepAwait)
	if err != nil {
		return stackwait.Result{}, err
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return stackwait.Result{}, err
	}
	return stackwait.Await(ctx, h.Maintenance.Store, h.Tasks, stacks, store.Waiter{
		AccountID: d.Settings.AccountID, Region: d.Settings.Region, StackName: d.StackName, DeploymentID: d.ID,
		TaskToken: in.TaskToken, StackID: in.StackID, Operation: in.Operation, RequestToken: in.RequestToken,
	})
}

func (h *Handler) poll(ctx context.Context, in Input) (stackevent.Result, error) {
	d, _, err := h.owned(ctx, in, StepPoll)
	if err != nil {
		return stackevent.Result{}, err
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return stackevent.Result{}, err
	}
	r, err := stacks.Look(ctx, in.StackID)
	if err != nil {
		return stackevent.Result{}, err
	}
	if r.Outcome == stackevent.OutcomeFailed {
		return stackevent.Result{}, &StackFailed{Result: r}
	}
	return r, nil
}

// ---- done, finish, fail -----------------------------------------------------------------

// DoneResult says whether this call recorded the step (false: a retry found it recorded).
type DoneResult struct {
	Recorded bool `json:"recorded"`
}

func (h *Handler) done(ctx context.Context, log *slog.Logger, in Input) (DoneResult, error) {
	s := h.Maintenance
	d, u, err := h.owned(ctx, in, StepDone)
	if err != nil {
		return DoneResult{}, err
	}
	if in.Index < u.Done {
		return DoneResult{}, nil
	}
	if in.Index != u.Done {
		return DoneResult{}, &InvalidInput{Problem: fmt.Sprintf("step %d is done before step %d", in.Index, u.Done)}
	}
	st := u.Steps[in.Index]
	next := d
	if changes := stackChanges(st); changes != nil {
		stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
		if err != nil {
			return DoneResult{}, err
		}
		stack, err := stacks.Describe(ctx, d.StackName)
		if err != nil {
			return DoneResult{}, err
		}
		params := customerstack.Parameters(stack)
		for k, v := range changes {
			if params[k] != v {
				return DoneResult{}, fmt.Errorf("%s: the stack's %s is %q, not %q", st.Describe(), k, params[k], v)
			}
		}
		next.StackVersions = maintenance.VersionParams(params)
	}
	_, err = s.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "upgrade.step", Detail: fmt.Sprintf("step %d/%d done: %s", in.Index+1, len(u.Steps), st.Describe()),
		EventID: fmt.Sprintf("upgrade-step/%s/%d", u.Execution, in.Index)})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return DoneResult{}, err
	}
	recorded, err := s.Store.StepDone(ctx, d.ID, u.Execution, in.Index)
	if err != nil {
		return DoneResult{}, err
	}
	log.InfoContext(ctx, "upgrade step done", "index", in.Index, "step", st.Describe())
	return DoneResult{Recorded: recorded}, nil
}

// FinishResult is the deployment's status after the upgrade.
type FinishResult struct {
	Status  string   `json:"status"`
	Settled []string `json:"settled"` // releases the deployment now runs
}

func (h *Handler) finish(ctx context.Context, log *slog.Logger, in Input) (FinishResult, error) {
	s := h.Maintenance
	d, err := s.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return FinishResult{}, err
	}
	name := runs.NameOf(in.Execution)
	if d.Status != lifecycle.Updating && d.Maintenance != nil && d.Maintenance.Last != nil && d.Maintenance.Last.Execution == name {
		return FinishResult{Status: string(d.Status)}, nil // finished by a previous invocation
	}
	d, u, err := h.owned(ctx, in, StepFinish)
	if err != nil {
		return FinishResult{}, err
	}
	settled, err := h.settle(ctx, d, u)
	if err != nil {
		return FinishResult{}, err
	}
	outcome, detail := "done", fmt.Sprintf("%d steps done", u.Done)
	if in.Outcome == "wait" {
		outcome = "waiting"
		detail = fmt.Sprintf("%d of %d steps done; the window closes before %s: the rest waits for the next window", u.Done, len(u.Steps), u.Steps[u.Done].Describe())
	}
	next := d
	m := *d.Maintenance
	m.Last = &store.Run{Execution: name, Key: u.Key, Outcome: outcome, Reason: detail, At: clock.Now().UTC()}
	next.Maintenance, next.Status = &m, lifecycle.Ready
	n := maintenance.Notice{NoticeID: "completed/" + name, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, Execution: name,
		Steps: release.Describe(u.Steps[:u.Done]), Reason: detail}
	if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceCompleted, n); err != nil {
		return FinishResult{}, err
	}
	if _, err := s.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "upgrade." + outcome, Detail: detail}); err != nil {
		return FinishResult{}, err
	}
	log.InfoContext(ctx, "upgrade finished", "outcome", outcome, "settled", settled)
	return FinishResult{Status: string(lifecycle.Ready), Settled: settled}, nil
}

// settle records, for each release the upgrade was planned for, that the deployment now
// runs it (when it does: a window that closed mid-plan leaves some for the next).
func (h *Handler) settle(ctx context.Context, d store.Deployment, u store.Upgrade) ([]string, error) {
	s := h.Maintenance
	cur, _, err := s.Versions(ctx, d)
	if err != nil {
		return nil, err
	}
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return nil, err
	}
	wave := release.WaveOf(d.Maintenance.Channel, d.Maintenance.Canary)
	settled := []string{}
	for _, r := range rs {
		if !slices.Contains(u.Releases, r.Release.ID) || release.Needed(r.Release, cur) {
			continue
		}
		if _, err := s.Store.RecordOutcome(ctx, r.Release.ID, wave, store.Outcome{DeploymentID: d.ID, Status: store.OutcomeUpgraded, Execution: u.Execution, At: clock.Now().UTC()}); err != nil {
			return settled, err
		}
		settled = append(settled, r.Release.ID)
	}
	return settled, nil
}

// FailResult is the deployment's status after a failed upgrade.
type FailResult struct {
	Status string   `json:"status"`
	Halted []string `json:"halted"`
}

func (h *Handler) fail(ctx context.Context, log *slog.Logger, in Input) (FailResult, error) {
	s := h.Maintenance
	name := runs.NameOf(in.Execution)
	reason := "unknown error"
	if in.Error != nil {
		reason = strings.TrimSpace(in.Error.Error + ": " + in.Error.Cause)
		if len(reason) > 1000 {
			reason = reason[:1000] + "…"
		}
	}
	d, err := s.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return FailResult{}, err
	}
	if d.Status != lifecycle.Updating || d.Execution != in.Execution {
		// Failed before it took the deployment (planning), or after another execution took
		// it: nothing of the deployment changes; the failure is on its trail and the bus.
		if seen, err := s.Store.EventSeen(ctx, "upgrade-failed/"+name); err != nil || seen {
			return FailResult{Status: string(d.Status), Halted: []string{}}, err
		}
		if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceFailed, maintenance.Notice{NoticeID: "failed/" + name, DeploymentID: d.ID,
			CustomerID: d.Settings.CustomerID, Execution: name, Reason: reason}); err != nil {
			return FailResult{}, err
		}
		err := s.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "upgrade.failed", Detail: reason, EventID: "upgrade-failed/" + name})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return FailResult{}, err
		}
		return FailResult{Status: string(d.Status), Halted: []string{}}, nil
	}
	u, err := s.Store.Upgrade(ctx, d.ID, name)
	if err != nil {
		return FailResult{}, err
	}
	step := "finishing"
	var failed release.Step
	if u.Done < len(u.Steps) {
		failed = u.Steps[u.Done]
		step = failed.Describe()
	}
	// Releases the steps before the failure completed (a Kubernetes minor before a
	// ClickHouse step failed) settle as upgraded; the failed step's releases fail.
	if _, err := h.settle(ctx, d, u); err != nil {
		return FailResult{}, err
	}
	halted := []string{}
	wave := release.WaveOf(d.Maintenance.Channel, d.Maintenance.Canary)
	if in.Error != nil && (in.Error.Error == "TemplateOutdated" || in.Error.Error == "AccessDenied") {
		// This deployment's own problem (an old template, a withdrawn role): it fails here and
		// is reported; the release is not to blame and goes on for the fleet.
		failed.Releases = nil
	}
	for _, id := range failed.Releases {
		first, err := s.Store.RecordOutcome(ctx, id, wave, store.Outcome{DeploymentID: d.ID, Status: store.OutcomeFailed, Execution: name, Reason: step + ": " + reason, At: clock.Now().UTC()})
		if err != nil {
			return FailResult{}, err
		}
		if first {
			halted = append(halted, id)
		}
	}
	// A stack update that rolled back left the stack as it was: the deployment is whole
	// and stays ready. Only a stack an operator must repair fails the deployment.
	next := d
	next.Status = lifecycle.Ready
	if in.Error != nil && in.Error.Error == "StackBlocked" {
		next.Status = lifecycle.Failed
		next.Failure = &store.Failure{Status: "UPDATE_ROLLBACK_FAILED", Reason: reason, At: clock.Now().UTC()}
	}
	m := *d.Maintenance
	m.Last = &store.Run{Execution: name, Key: u.Key, Outcome: "failed", Step: step, Reason: reason, At: clock.Now().UTC()}
	next.Maintenance = &m
	n := maintenance.Notice{NoticeID: "failed/" + name, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, Execution: name, Step: step, Reason: reason}
	if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceFailed, n); err != nil {
		return FailResult{}, err
	}
	for _, id := range failed.Releases {
		if err := s.Notices.Publish(ctx, contract.DetailTypeReleaseHalted, maintenance.Notice{NoticeID: "halted/" + id + "/" + d.ID, DeploymentID: d.ID,
			Execution: name, Step: step, Reason: fmt.Sprintf("release %s halted: deployment %s failed %s", id, d.ID, step)}); err != nil {
			return FailResult{}, err
		}
	}
	if _, err := s.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "upgrade.failed", Detail: step + ": " + reason,
		EventID: "upgrade-failed/" + name}); err != nil {
		return FailResult{}, err
	}
	log.WarnContext(ctx, "upgrade failed", "step", step, "reason", reason, "halted", halted)
	return FailResult{Status: string(next.Status), Halted: halted}, nil
}
