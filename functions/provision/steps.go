package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/network"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
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
// moves to provisioning (updating, for a ready one) and the attempt is counted. Settings
// that no longer validate (the supported regions changed since the invitation) still start
// the attempt, so the failure that follows is recorded on a provisioning deployment.
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
	var target lifecycle.Status
	switch d.Status {
	case lifecycle.Invited, lifecycle.Failed:
		target = lifecycle.Provisioning
	case lifecycle.Ready:
		target = lifecycle.Updating
	default:
		return PrepareResult{}, &InvalidState{DeploymentID: d.ID, Status: string(d.Status), Step: StepPrepare}
	}
	next := d
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
	if invalid != nil {
		detail += "; settings no longer valid: " + invalid.Error()
	}
	stored, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "provision.start", Detail: detail})
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
	log.InfoContext(ctx, "provision: attempt started", "attempt", stored.ProvisionAttempts, "runAttempt", stored.RunAttempts, "status", string(stored.Status))
	return PrepareResult{StackName: stored.StackName, Attempt: stored.RunAttempts, Parameters: params}, nil
}

// parameters are the infrastructure stack's parameters, computed from the settings alone:
// the same settings always give the same network.
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
	}
	for i, sn := range plan.Private() {
		p[contract.InfraParamZoneIDs[i]] = sn.ZoneID
		p[contract.InfraParamPrivateSubnetCidrs[i]] = sn.CIDR
	}
	for i, sn := range plan.Public() {
		p[contract.InfraParamPublicSubnetCidrs[i]] = sn.CIDR
	}
	return p, nil
}

func stackParameters(p map[string]string) []cfntypes.Parameter {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]cfntypes.Parameter, len(keys))
	for i, k := range keys {
		out[i] = cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(p[k])}
	}
	return out
}

func stackTags(d store.Deployment) []cfntypes.Tag {
	return []cfntypes.Tag{
		{Key: aws.String(contract.ManagedByTagKey), Value: aws.String(contract.ManagedByTagValue)},
		{Key: aws.String(DeploymentTagKey), Value: aws.String(d.ID)},
	}
}

// The template creates named IAM roles.
var capabilities = []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam}

// ---- apply ------------------------------------------------------------------------------

// Actions apply reports.
const (
	ActionCreate = "create" // CreateStack started
	ActionUpdate = "update" // UpdateStack started
	ActionDelete = "delete" // a failed stack is being deleted, to be created again
	ActionWait   = "wait"   // an operation was already running: wait for it
	ActionNone   = "none"   // the stack is up to date: nothing to wait for
)

// ApplyResult says what apply did to the stack and what to wait for.
type ApplyResult struct {
	Action       string `json:"action"`
	Operation    string `json:"operation"` // the operation to wait for (stackevent.Operation)
	StackID      string `json:"stackId"`
	RequestToken string `json:"requestToken"` // its ClientRequestToken, "" when not ours
	Status       string `json:"status"`
}

// RequestToken is the ClientRequestToken of a stack operation. CloudFormation stamps it on
// every event of the operation, which lets stackevents tell events of this operation from
// late ones of an earlier operation; and a retried call with the same token is recognised
// as the same request. The attempt number keeps it unique per operation.
func RequestToken(d store.Deployment, op stackevent.Operation) string {
	return fmt.Sprintf("byoc-%s-%d-%s", d.ID, d.ProvisionAttempts, op)
}

// apply creates, updates or deletes the infrastructure stack, or finds it busy.
func (h *Handler) apply(ctx context.Context, log *slog.Logger, in Input) (ApplyResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return ApplyResult{}, err
	}
	if !working(d.Status) {
		return ApplyResult{}, &InvalidState{DeploymentID: d.ID, Status: string(d.Status), Step: StepApply}
	}
	params, err := h.parameters(d)
	if err != nil {
		return ApplyResult{}, err
	}
	cfn, err := h.Customers.CloudFormation(ctx, d)
	if err != nil {
		return ApplyResult{}, err
	}
	stack, err := describe(ctx, cfn, d.StackName)
	if err != nil {
		return ApplyResult{}, err
	}
	if stack == nil || stack.StackStatus == cfntypes.StackStatusDeleteComplete {
		return h.create(ctx, log, cfn, d, params)
	}
	status := string(stack.StackStatus)
	id := aws.ToString(stack.StackId)
	switch stack.StackStatus {
	case cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete, cfntypes.StackStatusUpdateRollbackComplete,
		cfntypes.StackStatusImportComplete, cfntypes.StackStatusImportRollbackComplete:
		return h.update(ctx, cfn, d, stack, params)
	case cfntypes.StackStatusRollbackComplete, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusCreateFailed,
		cfntypes.StackStatusDeleteFailed, cfntypes.StackStatusReviewInProgress:
		// A stack that never came up cannot be updated: delete it, then create it again.
		return h.delete(ctx, log, cfn, d, stack)
	case cfntypes.StackStatusUpdateRollbackFailed, cfntypes.StackStatusImportRollbackFailed, cfntypes.StackStatusUpdateFailed:
		return ApplyResult{}, &StackBlocked{StackID: id, Status: status}
	}
	op, _, _ := stackevent.Classify(status)
	log.InfoContext(ctx, "provision: stack busy, waiting", "stackId", id, "status", status)
	return ApplyResult{Action: ActionWait, Operation: string(op), StackID: id, Status: status}, nil
}

func (h *Handler) create(ctx context.Context, log *slog.Logger, cfn cloud.CloudFormation, d store.Deployment, params map[string]string) (ApplyResult, error) {
	token := RequestToken(d, stackevent.Create)
	out, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName:                   aws.String(d.StackName),
		TemplateBody:                aws.String(h.Config.TemplateBody),
		Parameters:                  stackParameters(params),
		Tags:                        stackTags(d),
		Capabilities:                capabilities,
		EnableTerminationProtection: aws.Bool(true),
		OnFailure:                   cfntypes.OnFailureRollback,
		ClientRequestToken:          aws.String(token),
	})
	var exists *cfntypes.AlreadyExistsException
	if errors.As(err, &exists) {
		// Created meanwhile (by a previous invocation whose answer was lost): wait for it.
		stack, derr := describe(ctx, cfn, d.StackName)
		if derr != nil || stack == nil {
			return ApplyResult{}, &TransientError{Err: err}
		}
		return ApplyResult{Action: ActionWait, Operation: string(stackevent.Create), StackID: aws.ToString(stack.StackId), Status: string(stack.StackStatus)}, nil
	}
	if err != nil {
		return ApplyResult{}, fmt.Errorf("create stack %s: %w", d.StackName, err)
	}
	id := aws.ToString(out.StackId)
	if d.StackID != id {
		next := d
		next.StackID = id
		if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "stack.create", Detail: id + " (" + token + ")"}); err != nil {
			return ApplyResult{}, err
		}
	}
	log.InfoContext(ctx, "provision: stack creation started", "stackId", id, "clientRequestToken", token)
	return ApplyResult{Action: ActionCreate, Operation: string(stackevent.Create), StackID: id, RequestToken: token, Status: string(cfntypes.StackStatusCreateInProgress)}, nil
}

func (h *Handler) update(ctx context.Context, cfn cloud.CloudFormation, d store.Deployment, stack *cfntypes.Stack, params map[string]string) (ApplyResult, error) {
	id := aws.ToString(stack.StackId)
	if !aws.ToBool(stack.EnableTerminationProtection) {
		if _, err := cfn.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{
			StackName: aws.String(id), EnableTerminationProtection: aws.Bool(true),
		}); err != nil {
			return ApplyResult{}, fmt.Errorf("protect stack %s: %w", id, err)
		}
	}
	token := RequestToken(d, stackevent.Update)
	_, err := cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{
		StackName:          aws.String(id),
		TemplateBody:       aws.String(h.Config.TemplateBody),
		Parameters:         stackParameters(params),
		Tags:               stackTags(d),
		Capabilities:       capabilities,
		ClientRequestToken: aws.String(token),
	})
	if noUpdates(err) {
		return ApplyResult{Action: ActionNone, Operation: string(stackevent.Update), StackID: id, Status: string(stack.StackStatus)}, nil
	}
	if err != nil {
		return ApplyResult{}, fmt.Errorf("update stack %s: %w", id, err)
	}
	return ApplyResult{Action: ActionUpdate, Operation: string(stackevent.Update), StackID: id, RequestToken: token, Status: string(cfntypes.StackStatusUpdateInProgress)}, nil
}

func (h *Handler) delete(ctx context.Context, log *slog.Logger, cfn cloud.CloudFormation, d store.Deployment, stack *cfntypes.Stack) (ApplyResult, error) {
	id, status := aws.ToString(stack.StackId), string(stack.StackStatus)
	if aws.ToBool(stack.EnableTerminationProtection) {
		if _, err := cfn.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{
			StackName: aws.String(id), EnableTerminationProtection: aws.Bool(false),
		}); err != nil {
			return ApplyResult{}, fmt.Errorf("unprotect stack %s: %w", id, err)
		}
	}
	token := RequestToken(d, stackevent.Delete)
	if _, err := cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(id), ClientRequestToken: aws.String(token)}); err != nil {
		return ApplyResult{}, fmt.Errorf("delete stack %s: %w", id, err)
	}
	if err := h.Store.Record(ctx, d.ID, store.Audit{Actor: actor, Action: "stack.delete", Detail: fmt.Sprintf("deleting %s stack %s to create it again (%s)", status, id, token)}); err != nil {
		return ApplyResult{}, err
	}
	log.InfoContext(ctx, "provision: deleting failed stack", "stackId", id, "status", status)
	return ApplyResult{Action: ActionDelete, Operation: string(stackevent.Delete), StackID: id, RequestToken: token, Status: string(cfntypes.StackStatusDeleteInProgress)}, nil
}

// describe returns the stack named (or with the ARN) nameOrID, or nil if there is none.
// By name CloudFormation finds only a live stack; by ARN also a deleted one.
func describe(ctx context.Context, cfn cloud.CloudFormation, nameOrID string) (*cfntypes.Stack, error) {
	out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(nameOrID)})
	if cloud.ErrorCode(err) == "ValidationError" && strings.Contains(cloud.ErrorMessage(err), "does not exist") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe stack %s: %w", nameOrID, err)
	}
	if len(out.Stacks) == 0 {
		return nil, nil
	}
	return &out.Stacks[0], nil
}

// noUpdates is UpdateStack's answer when the template and parameters are unchanged.
func noUpdates(err error) bool {
	return cloud.ErrorCode(err) == "ValidationError" && strings.Contains(cloud.ErrorMessage(err), "No updates are to be performed")
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
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return AwaitResult{}, err
	}
	w := store.Waiter{
		AccountID: d.Settings.AccountID, Region: d.Settings.Region, StackName: d.StackName, DeploymentID: d.ID,
		TaskToken: in.TaskToken, StackID: in.StackID, Operation: in.Operation, RequestToken: in.RequestToken,
		ExpiresAt: h.Store.Now().Add(waiterLifetime),
	}
	if err := h.Store.PutWaiter(ctx, w); err != nil {
		return AwaitResult{}, err
	}
	r, err := h.look(ctx, d, in)
	if err != nil {
		return AwaitResult{}, err
	}
	if !stackevent.Ends(stackevent.Operation(in.Operation), r.Status) {
		return AwaitResult{Registered: true, Status: r.Status}, nil
	}
	err = stackevent.Resume(ctx, h.Tasks, in.TaskToken, r)
	if err != nil && !errors.Is(err, stackevent.ErrTaskGone) {
		return AwaitResult{}, err
	}
	if err := h.Store.DeleteWaiter(ctx, w); err != nil && !errors.Is(err, store.ErrConflict) {
		return AwaitResult{}, err
	}
	log.InfoContext(ctx, "provision: stack had already finished", "stackId", r.StackID, "status", r.Status)
	return AwaitResult{Registered: true, Completed: true, Status: r.Status}, nil
}

// poll is the fallback for a lost event: it reports the stack's state, failing with
// StackFailed when the operation failed.
func (h *Handler) poll(ctx context.Context, in Input) (stackevent.Result, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
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
	return r, nil
}

// look describes the awaited stack. A stack that no longer exists has been deleted.
func (h *Handler) look(ctx context.Context, d store.Deployment, in Input) (stackevent.Result, error) {
	cfn, err := h.Customers.CloudFormation(ctx, d)
	if err != nil {
		return stackevent.Result{}, err
	}
	ref := in.StackID
	if ref == "" {
		ref = d.StackName
	}
	stack, err := describe(ctx, cfn, ref)
	if err != nil {
		return stackevent.Result{}, err
	}
	if stack == nil {
		return stackevent.ResultOf(ref, string(cfntypes.StackStatusDeleteComplete), "the stack does not exist"), nil
	}
	return stackevent.ResultOf(aws.ToString(stack.StackId), string(stack.StackStatus), aws.ToString(stack.StackStatusReason)), nil
}

// ---- record -----------------------------------------------------------------------------

// RecordResult is the deployment's status after record.
type RecordResult struct {
	Status string `json:"status"`
}

// recordable are the statuses of a stack whose resources match a template: a finished create
// or update, or (reached through apply's "nothing to do") an update rolled back to a template
// equal to the wanted one.
var recordable = []cfntypes.StackStatus{
	cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete, cfntypes.StackStatusUpdateRollbackComplete,
	cfntypes.StackStatusImportComplete, cfntypes.StackStatusImportRollbackComplete,
}

// record connects the data plane (connectDataPlane), stores the stack's outputs and marks
// the deployment ready.
func (h *Handler) record(ctx context.Context, log *slog.Logger, in Input) (RecordResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return RecordResult{}, err
	}
	if d.Status == lifecycle.Ready && d.Execution == in.Execution {
		return RecordResult{Status: string(d.Status)}, nil // recorded by a previous invocation
	}
	if !working(d.Status) {
		return RecordResult{}, &InvalidState{DeploymentID: d.ID, Status: string(d.Status), Step: StepRecord}
	}
	cfn, err := h.Customers.CloudFormation(ctx, d)
	if err != nil {
		return RecordResult{}, err
	}
	ref := in.StackID
	if ref == "" {
		ref = d.StackName
	}
	stack, err := describe(ctx, cfn, ref)
	if err != nil {
		return RecordResult{}, err
	}
	if stack == nil || !slices.Contains(recordable, stack.StackStatus) {
		status := "absent"
		if stack != nil {
			status = string(stack.StackStatus)
		}
		return RecordResult{}, fmt.Errorf("record: stack %s is %s, not complete", ref, status)
	}
	outputs := map[string]string{}
	for _, o := range stack.Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
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
	if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: actor, Action: "provision.ready",
		Detail: fmt.Sprintf("stack %s %s with %d outputs", next.StackID, stack.StackStatus, len(next.Outputs))}); err != nil {
		return RecordResult{}, err
	}
	log.InfoContext(ctx, "provision: deployment ready", "stackId", next.StackID)
	return RecordResult{Status: string(lifecycle.Ready)}, nil
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
func parseCaught(c *CaughtError) (name, message string, r stackevent.Result) {
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
	cfn, err := h.Customers.CloudFormation(ctx, d)
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
	if stack, err := describe(ctx, cfn, ref); err == nil && stack != nil {
		f.Status = string(stack.StackStatus)
		ref = aws.ToString(stack.StackId)
	} else if r.Status != "" {
		f.Status = r.Status
	}
	ev, err := firstFailedResource(ctx, cfn, ref)
	if err != nil {
		log.WarnContext(ctx, "provision: cannot read the stack's events", "error", err.Error())
		return
	}
	if ev != nil {
		f.Resource = fmt.Sprintf("%s (%s)", aws.ToString(ev.LogicalResourceId), aws.ToString(ev.ResourceType))
		f.Reason = aws.ToString(ev.ResourceStatusReason)
	}
}

// maxEventPages bounds how far back firstFailedResource reads (100 events a page).
const maxEventPages = 5

// firstFailedResource finds, in the stack's latest operation, the earliest resource event
// with a *_FAILED status that is not the collateral "cancelled" failure of resources
// stopped because another one failed. Events come newest first; the operation starts at the
// stack's own *_IN_PROGRESS event with reason "User Initiated".
func firstFailedResource(ctx context.Context, cfn cloud.CloudFormation, stackID string) (*cfntypes.StackEvent, error) {
	var first *cfntypes.StackEvent
	var next *string
	for range maxEventPages {
		out, err := cfn.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(stackID), NextToken: next})
		if err != nil {
			return nil, err
		}
		for i := range out.StackEvents {
			ev := &out.StackEvents[i]
			status := string(ev.ResourceStatus)
			isStack := aws.ToString(ev.PhysicalResourceId) == aws.ToString(ev.StackId) || aws.ToString(ev.ResourceType) == "AWS::CloudFormation::Stack"
			if isStack && strings.HasSuffix(status, "_IN_PROGRESS") && aws.ToString(ev.ResourceStatusReason) == "User Initiated" {
				return first, nil
			}
			reason := aws.ToString(ev.ResourceStatusReason)
			if !isStack && strings.HasSuffix(status, "_FAILED") && !strings.Contains(reason, "cancelled") {
				first = ev
			}
		}
		if next = out.NextToken; next == nil {
			break
		}
	}
	return first, nil
}
