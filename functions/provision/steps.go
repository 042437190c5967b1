package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/network"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/stackwait"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

const actor = "provision"

// DeploymentTagKey tags the infrastructure stack (and, through CloudFormation's tag
// propagation, its resources) with the deployment it belongs to.
const DeploymentTagKey = "byoc:deployment-id"

// working reports whether a deployment is in a status the provision workflow acts on.
func working(s lifecycle.Status) bool {
	return s == lifecycle.Provisioning || s == lifecycle.Updating
}

// ---- prepare ----------------------------------------------------------------------------

// PrepareResult is the plan of an attempt. The workflow keeps it for the execution history;
// later steps read the deployment from the store.
type PrepareResult struct {
	StackName  string            `json:"stackName"`
	Attempt    int               `json:"attempt"`
	Parameters map[string]string `json:"parameters"`
}

// prepare validates the settings, plans the network and starts an attempt: the deployment
// moves to provisioning (updating, for a ready one), this execution becomes its owner and the
// attempt is counted. Settings that no longer validate (the supported regions changed since
// the invitation) still start the attempt, so the failure that follows is recorded on a
// provisioning deployment.
//
// A deployment another execution is working on is refused (NotOwner), unless the input asks
// for a takeover: then this execution becomes the owner, with an audit entry naming both,
// and every later step of the previous owner finds it is no longer the owner.
func (h *Handler) prepare(ctx context.Context, log *slog.Logger, in Input) (PrepareResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return PrepareResult{}, err
	}
	if working(d.Status) && d.Execution == in.Execution {
		// This execution prepared it already: a retried invocation gets the same plan.
		params, err := h.parameters(d)
		return PrepareResult{StackName: d.StackName, Attempt: d.RunAttempts, Parameters: params}, err
	}
	action := "provision.start"
	var target lifecycle.Status
	switch {
	case d.Status == lifecycle.Failed && d.Failure != nil && d.Failure.Status == contract.FailureTeardown:
		// Half torn down: only a teardown resumes it (provisioning would rebuild what the
		// operator is retiring).
		return PrepareResult{}, &InvalidState{DeploymentID: d.ID, Status: string(d.Status) + " (teardown)", Step: StepPrepare}
	case d.Status == lifecycle.Invited, d.Status == lifecycle.Failed:
		target = lifecycle.Provisioning
	case d.Status == lifecycle.Ready:
		target = lifecycle.Updating
	case working(d.Status) && in.Takeover:
		target, action = d.Status, "provision.takeover"
	case working(d.Status):
		return PrepareResult{}, &NotOwner{DeploymentID: d.ID, Owner: d.Execution, Step: StepPrepare}
	default:
		return PrepareResult{}, &InvalidState{DeploymentID: d.ID, Status: string(d.Status), Step: StepPrepare}
	}
	next := d
	if len(next.StackVersions) == 0 {
		// A deployment's first attempt fixes the versions it is created on: the catalogue's
		// current ones. Later attempts and re-runs keep them (upgrades change them).
		rs, err := h.Store.Releases(ctx)
		if err != nil {
			return PrepareResult{}, err
		}
		next.StackVersions = maintenance.InitialVersions(store.Catalogue(rs))
	}
	normalized, invalid := h.Config.Rules.Normalize(d.Settings)
	if invalid == nil {
		next.Settings = normalized
		_, invalid = h.parameters(next)
	}
	next.Status = target
	next.ProvisionAttempts++
	if d.Execution != in.Execution {
		next.Execution, next.RunAttempts = in.Execution, 0
	}
	next.RunAttempts++
	detail := fmt.Sprintf("attempt %d (run attempt %d of %d) by %s", next.ProvisionAttempts, next.RunAttempts, h.Config.MaxAttempts, in.Execution)
	if action == "provision.takeover" {
		detail += fmt.Sprintf("; taken over from %s, which no longer acts on the deployment", d.Execution)
	}
	if invalid != nil {
		detail += "; settings no longer valid: " + invalid.Error()
	}
	stored, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: action, Detail: detail})
	if err != nil {
		return PrepareResult{}, err
	}
	if invalid != nil {
		return PrepareResult{}, invalid
	}
	params, err := h.parameters(stored)
	if err != nil {
		return PrepareResult{}, err
	}
	log.InfoContext(ctx, "provision: attempt started", "attempt", stored.ProvisionAttempts, "runAttempt", stored.RunAttempts, "status", string(stored.Status), "action", action)
	return PrepareResult{StackName: stored.StackName, Attempt: stored.RunAttempts, Parameters: params}, nil
}

// owned reads the deployment for a step of the execution that owns it: working on it, and
// prepared by this execution. Any other execution gets NotOwner (and acts on nothing).
func (h *Handler) owned(ctx context.Context, in Input, step string) (store.Deployment, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return store.Deployment{}, err
	}
	return d, ownedBy(d, in, step)
}

// ownedBy says why a step of in's execution may not act on d, or nil when it may.
func ownedBy(d store.Deployment, in Input, step string) error {
	if !working(d.Status) {
		return &InvalidState{DeploymentID: d.ID, Status: string(d.Status), Step: step}
	}
	if d.Execution != in.Execution {
		return &NotOwner{DeploymentID: d.ID, Owner: d.Execution, Step: step}
	}
	return nil
}

// parameters are the infrastructure stack's parameters, computed from the settings (the
// same settings always give the same network) and the versions the deployment runs.
func (h *Handler) parameters(d store.Deployment) (map[string]string, error) {
	s := d.Settings
	plan, err := network.NewPlan(s.VPCCIDR, s.ZoneIDs)
	if err != nil {
		return nil, &settings.ValidationError{Errors: []settings.FieldError{{Field: "vpcCidr/zoneIds", Value: s.VPCCIDR + " " + strings.Join(s.ZoneIDs, ","), Rule: err.Error()}}}
	}
	p := map[string]string{
		contract.InfraParamDeploymentID:          d.ID,
		contract.InfraParamResourcePrefix:        s.ResourcePrefix,
		contract.InfraParamVpcCidr:               plan.VPCCIDR,
		contract.InfraParamStateQueueArn:         h.Config.StateQueueArn,
		contract.InfraParamControlPlaneAccountID: h.Config.ControlPlaneAccountID,
		contract.InfraParamControlPlaneRoleArn:   h.Config.ControlPlaneRoleArn,
		contract.InfraParamExternalID:            d.ExternalID,
	}
	for i, sn := range plan.Private() {
		p[contract.InfraParamZoneIDs[i]] = sn.ZoneID
		p[contract.InfraParamPrivateSubnetCidrs[i]] = sn.CIDR
	}
	for i, sn := range plan.Public() {
		p[contract.InfraParamPublicSubnetCidrs[i]] = sn.CIDR
	}
	maps.Copy(p, d.StackVersions)
	return p, nil
}

// stackSpec is the infrastructure stack as the deployment wants it: protected from a stray
// delete, tagged with the deployment (CloudFormation propagates the tags to its resources).
func (h *Handler) stackSpec(d store.Deployment, params map[string]string) customerstack.Spec {
	return customerstack.Spec{
		Name: d.StackName, Template: h.Config.TemplateBody, Parameters: params, Protect: true,
		Tags: map[string]string{contract.ManagedByTagKey: contract.ManagedByTagValue, DeploymentTagKey: d.ID},
	}
}

// ---- apply ------------------------------------------------------------------------------

// Actions apply reports (customerstack's).
const (
	ActionCreate = customerstack.ActionCreate
	ActionUpdate = customerstack.ActionUpdate
	ActionDelete = customerstack.ActionDelete
	ActionWait   = customerstack.ActionWait
	ActionNone   = customerstack.ActionNone
)

// ApplyResult says what apply did to the stack and what to wait for.
type ApplyResult = customerstack.Result

// RequestToken is the ClientRequestToken of a stack operation. The attempt number keeps it
// unique per operation.
func RequestToken(d store.Deployment, op stackevent.Operation) string {
	return fmt.Sprintf("byoc-%s-%d-%s", d.ID, d.ProvisionAttempts, op)
}

// apply creates, updates or deletes the infrastructure stack, or finds it busy.
func (h *Handler) apply(ctx context.Context, log *slog.Logger, in Input) (ApplyResult, error) {
	d, err := h.owned(ctx, in, StepApply)
	if err != nil {
		return ApplyResult{}, err
	}
	// No new stack operation past the deadline (a retry after a rollback, the recreate after
	// a delete): it would only be cut off by the next poll.
	if !in.StartedAt.IsZero() && h.Store.Now().Sub(in.StartedAt) > Deadline {
		return ApplyResult{}, &DeadlineExceeded{StartedAt: in.StartedAt, Status: "not started"}
	}
	params, err := h.parameters(d)
	if err != nil {
		return ApplyResult{}, err
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return ApplyResult{}, err
	}
	r, err := stacks.Apply(ctx, h.stackSpec(d, params), func(op stackevent.Operation) string { return RequestToken(d, op) })
	if err != nil {
		return ApplyResult{}, err
	}
	switch r.Action {
	case ActionCreate:
		if d.StackID != r.StackID {
			next := d
			next.StackID = r.StackID
			if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "stack.create", Detail: r.StackID + " (" + r.RequestToken + ")"}); err != nil {
				return ApplyResult{}, err
			}
		}
		log.InfoContext(ctx, "provision: stack creation started", "stackId", r.StackID, "clientRequestToken", r.RequestToken)
	case ActionDelete:
		if err := h.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "stack.delete",
			Detail: fmt.Sprintf("deleting stack %s, which never came up, to create it again (%s)", r.StackID, r.RequestToken)}); err != nil {
			return ApplyResult{}, err
		}
		log.InfoContext(ctx, "provision: deleting failed stack", "stackId", r.StackID)
	case ActionWait:
		log.InfoContext(ctx, "provision: stack busy, waiting", "stackId", r.StackID, "status", r.Status)
	}
	return r, nil
}

// ---- await and poll ---------------------------------------------------------------------

// AwaitResult is ignored by the workflow (a waitForTaskToken task's output is the token's);
// it is there for logs and tests.
type AwaitResult struct {
	Registered bool   `json:"registered"`
	Completed  bool   `json:"completed"` // the stack had already finished: await completed the token itself
	Status     string `json:"status"`
}

// await registers the task token for the stack, then looks at the stack once: if the
// operation already ended (its event may have arrived before the waiter was stored), await
// completes the token itself. Whichever of await and stackevents comes second finds the token
// dead, which is harmless.
func (h *Handler) await(ctx context.Context, log *slog.Logger, in Input) (AwaitResult, error) {
	if in.TaskToken == "" {
		return AwaitResult{}, &InvalidInput{Problem: "await needs taskToken"}
	}
	// A superseded execution must not replace the owner's waiter (one per stack).
	d, err := h.owned(ctx, in, StepAwait)
	if err != nil {
		return AwaitResult{}, err
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return AwaitResult{}, err
	}
	r, err := stackwait.Await(ctx, h.Store, h.Tasks, stacks, store.Waiter{
		AccountID: d.Settings.AccountID, Region: d.Settings.Region, StackName: d.StackName, DeploymentID: d.ID,
		TaskToken: in.TaskToken, StackID: in.StackID, Operation: in.Operation, RequestToken: in.RequestToken,
	})
	if err != nil || !r.Completed {
		return AwaitResult{Registered: r.Registered, Status: r.Status}, err
	}
	log.InfoContext(ctx, "provision: stack had already finished", "stackId", in.StackID, "status", r.Status)
	return AwaitResult{Registered: true, Completed: true, Status: r.Status}, nil
}

// poll is the fallback for a lost event: it reports the stack's state, failing with
// StackFailed when the operation failed, and with DeadlineExceeded once the execution has
// run for Deadline: the workflow then records the failure, so a deployment is never left
// provisioning by an execution that Step Functions stopped.
func (h *Handler) poll(ctx context.Context, in Input) (stackevent.Result, error) {
	d, err := h.owned(ctx, in, StepPoll)
	if err != nil {
		return stackevent.Result{}, err
	}
	r, err := h.look(ctx, d, in)
	if err != nil {
		return stackevent.Result{}, err
	}
	if r.Outcome == stackevent.OutcomeFailed {
		return stackevent.Result{}, &StackFailed{Result: r}
	}
	if r.Outcome == stackevent.OutcomeWaiting && !in.StartedAt.IsZero() && h.Store.Now().Sub(in.StartedAt) > Deadline {
		return stackevent.Result{}, &DeadlineExceeded{StartedAt: in.StartedAt, Status: r.Status}
	}
	return r, nil
}

// look describes the awaited stack.
func (h *Handler) look(ctx context.Context, d store.Deployment, in Input) (stackevent.Result, error) {
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return stackevent.Result{}, err
	}
	ref := in.StackID
	if ref == "" {
		ref = d.StackName
	}
	return stacks.Look(ctx, ref)
}

// ---- record -----------------------------------------------------------------------------

// RecordResult is the deployment's status after record.
type RecordResult struct {
	Status string `json:"status"`
}

// record connects the data plane (connectDataPlane), stores the stack's outputs and marks
// the deployment ready.
func (h *Handler) record(ctx context.Context, log *slog.Logger, in Input) (RecordResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return RecordResult{}, err
	}
	if d.Status == lifecycle.Ready && d.Execution == in.Execution {
		// Recorded by a previous invocation, which may have died before arming.
		return RecordResult{Status: string(d.Status)}, h.armMaintenance(ctx, log, d.ID)
	}
	if err := ownedBy(d, in, StepRecord); err != nil {
		return RecordResult{}, err
	}
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		return RecordResult{}, err
	}
	ref := in.StackID
	if ref == "" {
		ref = d.StackName
	}
	stack, err := stacks.Describe(ctx, ref)
	if err != nil {
		return RecordResult{}, err
	}
	if stack == nil || !slices.Contains(customerstack.Settled, stack.StackStatus) {
		status := "absent"
		if stack != nil {
			status = string(stack.StackStatus)
		}
		return RecordResult{}, fmt.Errorf("record: stack %s is %s, not complete", ref, status)
	}
	outputs := customerstack.Outputs(stack)
	// The data plane must be able to report and receive commands before anyone is told the
	// deployment is ready.
	if err := h.connectDataPlane(ctx, log, d, outputs); err != nil {
		return RecordResult{}, err
	}
	next := d
	next.Status = lifecycle.Ready
	next.StackID = aws.ToString(stack.StackId)
	next.Failure = nil
	next.Outputs = outputs
	next.StackVersions = maintenance.VersionParams(customerstack.Parameters(stack))
	if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "provision.ready",
		Detail: fmt.Sprintf("stack %s %s with %d outputs", next.StackID, stack.StackStatus, len(next.Outputs))}); err != nil {
		return RecordResult{}, err
	}
	log.InfoContext(ctx, "provision: deployment ready", "stackId", next.StackID)
	return RecordResult{Status: string(lifecycle.Ready)}, h.armMaintenance(ctx, log, d.ID)
}

// armMaintenance arms a ready deployment's maintenance schedule once: from now on its
// windows open.
func (h *Handler) armMaintenance(ctx context.Context, log *slog.Logger, id string) error {
	for attempt := 0; ; attempt++ {
		d, err := h.Store.Get(ctx, id)
		if err != nil {
			return err
		}
		// Armed and still to fire (or retried by Scheduler): nothing to do. An arm long past
		// was lost while the deployment could not be maintained (a failed one provisioned
		// again): arm afresh.
		if d.Maintenance == nil || d.Status != lifecycle.Ready || d.Maintenance.Armed != nil && d.Maintenance.Armed.At.After(clock.Now().Add(-time.Hour)) {
			return nil
		}
		d, err = h.Maintenance.Rearm(ctx, d, *d.Maintenance, clock.Now(), store.Audit{Actor: actor, Action: "maintenance.armed"})
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue
		}
		if err == nil {
			log.InfoContext(ctx, "provision: maintenance schedule armed", "purpose", d.Maintenance.Armed.Purpose, "at", d.Maintenance.Armed.At)
		}
		return err
	}
}

// ---- fail -------------------------------------------------------------------------------

// FailResult says whether the workflow may make another attempt, and why it failed.
type FailResult struct {
	Retry  bool   `json:"retry"`
	Reason string `json:"reason"`
}

// fail records why provisioning failed (for a failed stack: the first resource that failed
// and CloudFormation's reason), marks the deployment failed, and allows another attempt for
// a failed stack while the execution's attempts last.
func (h *Handler) fail(ctx context.Context, log *slog.Logger, in Input) (FailResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return FailResult{}, err
	}
	name, message, result := parseCaught(in.Error)
	failure := store.Failure{Status: name, Reason: message, At: h.Store.Now().UTC()}
	if d.Execution != "" && d.Execution != in.Execution {
		// Another execution owns the deployment (this one was refused, or taken over): its
		// status is not this execution's to change, nor its stack this one's to read. Only the
		// audit trail hears of it.
		err := h.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "provision.superseded",
			Detail: fmt.Sprintf("%s stopped without acting on the deployment, owned by %s: %s", in.Execution, d.Execution, summary(failure))})
		return FailResult{Reason: summary(failure)}, err
	}
	if name == stackevent.ErrorStackFailed {
		h.explainStack(ctx, log, d, result, &failure)
	}
	if d.Status == lifecycle.Failed && d.Failure != nil && d.Failure.Status == failure.Status && d.Failure.Reason == failure.Reason {
		// Recorded already: this step was retried after its write.
		return FailResult{Retry: h.retryAllowed(name, d), Reason: summary(*d.Failure)}, nil
	}
	if !working(d.Status) {
		// Nothing to transition (the deployment is failed already, or the error came before
		// prepare moved it): keep the reason in the audit trail, and make no new attempt.
		err := h.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "provision.failed", Detail: summary(failure)})
		return FailResult{Reason: summary(failure)}, err
	}
	next := d
	next.Status = lifecycle.Failed
	next.Failure = &failure
	if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "provision.failed", Detail: summary(failure)}); err != nil {
		return FailResult{}, err
	}
	retry := h.retryAllowed(name, next)
	log.WarnContext(ctx, "provision: attempt failed", "error", name, "resource", failure.Resource, "reason", failure.Reason, "retry", retry)
	return FailResult{Retry: retry, Reason: summary(failure)}, nil
}

// retryAllowed: only a failed stack is worth another attempt (deleting and recreating it);
// refusals and invalid settings fail the same way every time.
func (h *Handler) retryAllowed(errorName string, d store.Deployment) bool {
	return errorName == stackevent.ErrorStackFailed && d.RunAttempts < h.Config.MaxAttempts
}

func summary(f store.Failure) string {
	if f.Resource != "" {
		return fmt.Sprintf("%s: %s: %s", f.Status, f.Resource, f.Reason)
	}
	return fmt.Sprintf("%s: %s", f.Status, f.Reason)
}

// parseCaught reads a Catch's error: a SendTaskFailure cause is a stackevent.Result; a Lambda
// function error's cause is {"errorMessage", "errorType", ...}; anything else is kept as is.
func parseCaught(c *steperr.Caught) (name, message string, r stackevent.Result) {
	if c == nil {
		return "Unknown", "the workflow passed no error", r
	}
	name, message = c.Error, c.Cause
	var lambdaErr struct {
		ErrorMessage string `json:"errorMessage"`
	}
	switch {
	case json.Unmarshal([]byte(c.Cause), &r) == nil && r.Status != "":
		message = r.Status
		if r.Reason != "" {
			message = r.Reason
		}
	case json.Unmarshal([]byte(c.Cause), &lambdaErr) == nil && lambdaErr.ErrorMessage != "":
		message = lambdaErr.ErrorMessage
	}
	if name == "" {
		name = "Unknown"
	}
	if message == "" {
		message = name
	}
	return name, message, r
}

// explainStack fills a stack failure with the stack's status and its first failed resource.
// It is best effort: the failure is recorded even when the customer account cannot be read.
func (h *Handler) explainStack(ctx context.Context, log *slog.Logger, d store.Deployment, r stackevent.Result, f *store.Failure) {
	stacks, err := h.Customers.Stacks(ctx, d.CustomerRole())
	if err != nil {
		log.WarnContext(ctx, "provision: cannot read the failed stack", "error", err.Error())
		return
	}
	ref := r.StackID
	if ref == "" {
		ref = d.StackID
	}
	if ref == "" {
		ref = d.StackName
	}
	if stack, err := stacks.Describe(ctx, ref); err == nil && stack != nil {
		f.Status = string(stack.StackStatus)
		ref = aws.ToString(stack.StackId)
	} else if r.Status != "" {
		f.Status = r.Status
	}
	ev, err := stacks.FirstFailedResource(ctx, ref)
	if err != nil {
		log.WarnContext(ctx, "provision: cannot read the stack's events", "error", err.Error())
		return
	}
	if ev != nil {
		f.Resource = fmt.Sprintf("%s (%s)", aws.ToString(ev.LogicalResourceId), aws.ToString(ev.ResourceType))
		f.Reason = aws.ToString(ev.ResourceStatusReason)
	}
}
