// Package customerstack manages the CloudFormation stacks byoc owns in customer accounts:
// create, update, delete, describe, find the first failed resource, and decide what a
// workflow must do with a stack it finds in any status. It is the manager half of the
// builder/manager split (the templates are built in infra/stacks); provision uses it, and the
// upgrade, peering and teardown workflows reuse it. Waiting is by stack event: Look reports a
// stack's state as the stackevent.Result the event path would have delivered.
//
// A Manager holds one CloudFormation client acting as the customer's management role: open
// it once per operation (one workflow step) and pass it around, so the role is assumed once.
package customerstack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/stackevent"
)

// Manager acts on the stacks of one customer account and region.
type Manager struct {
	CFN cloud.CloudFormation
}

// Open assumes the customer's management role and returns a Manager acting as it.
// newCFN builds the client from the assumed-role configuration (cloudformation.NewFromConfig
// when nil; tests give their own).
func Open(ctx context.Context, stsClient cloud.STS, base aws.Config, role cloud.CustomerRole, newCFN func(aws.Config) cloud.CloudFormation) (*Manager, error) {
	cfg, err := cloud.AssumeRole(ctx, stsClient, base, role)
	if err != nil {
		return nil, err
	}
	if newCFN == nil {
		return &Manager{CFN: cloudformation.NewFromConfig(cfg)}, nil
	}
	return &Manager{CFN: newCFN(cfg)}, nil
}

// Spec is a stack as byoc wants it.
type Spec struct {
	Name       string
	Template   string // the template body, compacted
	Parameters map[string]string
	Tags       map[string]string
	// Protect turns termination protection on: only byoc's own delete (which lifts it)
	// removes the stack, never a stray console click.
	Protect bool
}

// Actions Apply reports.
const (
	ActionCreate = "create" // CreateStack started
	ActionUpdate = "update" // UpdateStack started
	ActionDelete = "delete" // a stack that never came up is being deleted, to be created again
	ActionWait   = "wait"   // an operation was already running: wait for it
	ActionNone   = "none"   // the stack is up to date: nothing to wait for
)

// Result says what an operation did to the stack and what to wait for.
type Result struct {
	Action       string `json:"action"`
	Operation    string `json:"operation"` // the operation to wait for (stackevent.Operation)
	StackID      string `json:"stackId"`
	RequestToken string `json:"requestToken"` // its ClientRequestToken, "" when not ours
	Status       string `json:"status"`
}

// BlockedError is a stack in a state byoc must not repair by itself
// (UPDATE_ROLLBACK_FAILED needs an operator's ContinueUpdateRollback).
type BlockedError struct {
	StackID, Status string
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("stack %s is %s: an operator must repair it (for UPDATE_ROLLBACK_FAILED: continue-update-rollback) before byoc can go on", e.StackID, e.Status)
}

// OutdatedError is a stack whose template predates a parameter an update must change: a
// problem of that one stack (provision it again with the current template), not of the
// release being applied.
type OutdatedError struct {
	StackID, Parameter string
}

func (e *OutdatedError) Error() string {
	return fmt.Sprintf("stack %s has no parameter %s: its template predates it (provision the deployment again to update its template)", e.StackID, e.Parameter)
}

// Tokens gives the ClientRequestToken of each operation. CloudFormation stamps it on every
// event of the operation (so a waiter tells its events from late ones of an earlier
// operation), and a retried call with the same token is the same request.
type Tokens func(stackevent.Operation) string

// Settled are the statuses of a stack whose resources match a template: a finished create or
// update, or an update rolled back to the previous template.
var Settled = []cfntypes.StackStatus{
	cfntypes.StackStatusCreateComplete, cfntypes.StackStatusUpdateComplete, cfntypes.StackStatusUpdateRollbackComplete,
	cfntypes.StackStatusImportComplete, cfntypes.StackStatusImportRollbackComplete,
}

// neverCameUp are the statuses of a stack that cannot be updated: delete it, create it again.
var neverCameUp = []cfntypes.StackStatus{
	cfntypes.StackStatusRollbackComplete, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusCreateFailed,
	cfntypes.StackStatusDeleteFailed, cfntypes.StackStatusReviewInProgress,
}

// blocked are the statuses only an operator may repair.
var blocked = []cfntypes.StackStatus{
	cfntypes.StackStatusUpdateRollbackFailed, cfntypes.StackStatusImportRollbackFailed, cfntypes.StackStatusUpdateFailed,
}

// Apply brings the stack towards spec from whatever state it is in: creates it when absent,
// updates it when settled, deletes it when it never came up (the caller applies again once
// it is gone), waits when an operation runs, and refuses (BlockedError) when only an
// operator can repair it. Every call is safe to repeat: tokens make a retried call the same
// request, and a lost answer is found on the next look.
func (m *Manager) Apply(ctx context.Context, spec Spec, tokens Tokens) (Result, error) {
	stack, err := m.Describe(ctx, spec.Name)
	if err != nil {
		return Result{}, err
	}
	if stack == nil || stack.StackStatus == cfntypes.StackStatusDeleteComplete {
		return m.Create(ctx, spec, tokens(stackevent.Create))
	}
	id, status := aws.ToString(stack.StackId), string(stack.StackStatus)
	// A stack this very create made (the step ran again after the create: its process died,
	// or its answer was lost) is that create, whatever it has become meanwhile: recreating a
	// rolled-back one would make a second stack for one attempt, and updating a complete one
	// would skip recording the create. A defect `make chaos` found.
	if token := tokens(stackevent.Create); slices.Contains(lastOpCreate, stack.StackStatus) && token != "" {
		ours, err := m.createdBy(ctx, id, aws.ToString(stack.StackName), token)
		if err != nil {
			return Result{}, err
		}
		if ours {
			return Result{Action: ActionCreate, Operation: string(stackevent.Create), StackID: id, RequestToken: token, Status: status}, nil
		}
	}
	switch {
	case slices.Contains(Settled, stack.StackStatus):
		return m.Update(ctx, stack, spec, tokens(stackevent.Update))
	case slices.Contains(neverCameUp, stack.StackStatus):
		return m.Delete(ctx, stack, tokens(stackevent.Delete))
	case slices.Contains(blocked, stack.StackStatus):
		return Result{}, &BlockedError{StackID: id, Status: status}
	}
	op, _, _ := stackevent.Classify(status)
	return Result{Action: ActionWait, Operation: string(op), StackID: id, Status: status}, nil
}

// lastOpCreate are the statuses of a stack whose only operation was its create: its event
// history is that create's alone (a few pages for the infrastructure stack), so the create's
// token is found without reading through later operations.
var lastOpCreate = []cfntypes.StackStatus{
	cfntypes.StackStatusCreateInProgress, cfntypes.StackStatusCreateFailed, cfntypes.StackStatusCreateComplete,
	cfntypes.StackStatusRollbackInProgress, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusRollbackComplete,
}

// createdBy reports whether the stack was created by the CreateStack request with token:
// CloudFormation stamps every event of an operation with its ClientRequestToken, and the
// stack's own CREATE_IN_PROGRESS is its first event (the last one listed).
func (m *Manager) createdBy(ctx context.Context, id, name, token string) (bool, error) {
	pages := cloudformation.NewDescribeStackEventsPaginator(m.CFN, &cloudformation.DescribeStackEventsInput{StackName: aws.String(id)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return false, fmt.Errorf("read the events of stack %s: %w", id, err)
		}
		for _, ev := range page.StackEvents {
			if aws.ToString(ev.LogicalResourceId) == name && aws.ToString(ev.ResourceType) == "AWS::CloudFormation::Stack" &&
				ev.ResourceStatus == cfntypes.ResourceStatusCreateInProgress {
				return aws.ToString(ev.ClientRequestToken) == token, nil
			}
		}
	}
	return false, nil
}

// The templates create named IAM roles.
var capabilities = []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam}

// Create starts creating the stack, rolling back on failure. A stack created meanwhile (by a
// call whose answer was lost) is waited for instead.
func (m *Manager) Create(ctx context.Context, spec Spec, token string) (Result, error) {
	in := &cloudformation.CreateStackInput{
		StackName:                   aws.String(spec.Name),
		TemplateBody:                aws.String(spec.Template),
		Parameters:                  parameters(spec.Parameters),
		Tags:                        tags(spec.Tags),
		Capabilities:                capabilities,
		EnableTerminationProtection: aws.Bool(spec.Protect),
		OnFailure:                   cfntypes.OnFailureRollback,
		ClientRequestToken:          aws.String(token),
	}
	if omitCreateToken {
		in.ClientRequestToken = nil
	}
	out, err := m.CFN.CreateStack(ctx, in)
	var exists *cfntypes.AlreadyExistsException
	if errors.As(err, &exists) {
		stack, derr := m.Describe(ctx, spec.Name)
		if derr != nil {
			return Result{}, derr
		}
		if stack == nil {
			return Result{}, fmt.Errorf("create stack %s: %w (and it cannot be found)", spec.Name, err)
		}
		return Result{Action: ActionWait, Operation: string(stackevent.Create), StackID: aws.ToString(stack.StackId), Status: string(stack.StackStatus)}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("create stack %s: %w", spec.Name, err)
	}
	return Result{Action: ActionCreate, Operation: string(stackevent.Create), StackID: aws.ToString(out.StackId), RequestToken: token,
		Status: string(cfntypes.StackStatusCreateInProgress)}, nil
}

// Update starts updating a settled stack to spec, protecting it first if spec says so. An
// unchanged template and parameters is ActionNone.
func (m *Manager) Update(ctx context.Context, stack *cfntypes.Stack, spec Spec, token string) (Result, error) {
	id := aws.ToString(stack.StackId)
	if spec.Protect && !aws.ToBool(stack.EnableTerminationProtection) {
		if _, err := m.CFN.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{
			StackName: aws.String(id), EnableTerminationProtection: aws.Bool(true),
		}); err != nil {
			return Result{}, fmt.Errorf("protect stack %s: %w", id, err)
		}
	}
	_, err := m.CFN.UpdateStack(ctx, &cloudformation.UpdateStackInput{
		StackName:          aws.String(id),
		TemplateBody:       aws.String(spec.Template),
		Parameters:         parameters(spec.Parameters),
		Tags:               tags(spec.Tags),
		Capabilities:       capabilities,
		ClientRequestToken: aws.String(token),
	})
	if noUpdates(err) {
		return Result{Action: ActionNone, Operation: string(stackevent.Update), StackID: id, Status: string(stack.StackStatus)}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("update stack %s: %w", id, err)
	}
	return Result{Action: ActionUpdate, Operation: string(stackevent.Update), StackID: id, RequestToken: token,
		Status: string(cfntypes.StackStatusUpdateInProgress)}, nil
}

// UpdateParameters starts an update of a settled stack that changes only the parameters
// given: the template and every other parameter keep their previous values (UsePreviousValue,
// which also carries NoEcho values Describe cannot show). An upgrade step changes versions
// this way, and nothing else rides along. Nothing to change is ActionNone; a stack that is
// not settled is refused (the caller waits for it or reports it).
func (m *Manager) UpdateParameters(ctx context.Context, stack *cfntypes.Stack, changes map[string]string, token string) (Result, error) {
	id := aws.ToString(stack.StackId)
	if !slices.Contains(Settled, stack.StackStatus) {
		if slices.Contains(blocked, stack.StackStatus) {
			return Result{}, &BlockedError{StackID: id, Status: string(stack.StackStatus)}
		}
		return Result{}, fmt.Errorf("stack %s is %s: it can be updated only once settled", id, stack.StackStatus)
	}
	var params []cfntypes.Parameter
	known := map[string]bool{}
	for _, p := range stack.Parameters {
		k := aws.ToString(p.ParameterKey)
		known[k] = true
		if v, ok := changes[k]; ok {
			params = append(params, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(v)})
		} else {
			params = append(params, cfntypes.Parameter{ParameterKey: aws.String(k), UsePreviousValue: aws.Bool(true)})
		}
	}
	for _, k := range sortedKeys(changes) {
		if !known[k] {
			return Result{}, &OutdatedError{StackID: id, Parameter: k}
		}
	}
	slices.SortFunc(params, func(a, b cfntypes.Parameter) int {
		return strings.Compare(aws.ToString(a.ParameterKey), aws.ToString(b.ParameterKey))
	})
	_, err := m.CFN.UpdateStack(ctx, &cloudformation.UpdateStackInput{
		StackName:           aws.String(id),
		UsePreviousTemplate: aws.Bool(true),
		Parameters:          params,
		Capabilities:        capabilities,
		ClientRequestToken:  aws.String(token),
	})
	if noUpdates(err) {
		return Result{Action: ActionNone, Operation: string(stackevent.Update), StackID: id, Status: string(stack.StackStatus)}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("update the parameters of stack %s: %w", id, err)
	}
	return Result{Action: ActionUpdate, Operation: string(stackevent.Update), StackID: id, RequestToken: token,
		Status: string(cfntypes.StackStatusUpdateInProgress)}, nil
}

// Parameters returns a stack's parameter values by key (NoEcho ones read "****").
func Parameters(stack *cfntypes.Stack) map[string]string {
	out := map[string]string{}
	for _, p := range stack.Parameters {
		out[aws.ToString(p.ParameterKey)] = aws.ToString(p.ParameterValue)
	}
	return out
}

// Delete lifts termination protection and starts deleting the stack.
func (m *Manager) Delete(ctx context.Context, stack *cfntypes.Stack, token string) (Result, error) {
	id := aws.ToString(stack.StackId)
	if aws.ToBool(stack.EnableTerminationProtection) {
		if _, err := m.CFN.UpdateTerminationProtection(ctx, &cloudformation.UpdateTerminationProtectionInput{
			StackName: aws.String(id), EnableTerminationProtection: aws.Bool(false),
		}); err != nil {
			return Result{}, fmt.Errorf("unprotect stack %s: %w", id, err)
		}
	}
	if _, err := m.CFN.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(id), ClientRequestToken: aws.String(token)}); err != nil {
		return Result{}, fmt.Errorf("delete stack %s: %w", id, err)
	}
	return Result{Action: ActionDelete, Operation: string(stackevent.Delete), StackID: id, RequestToken: token,
		Status: string(cfntypes.StackStatusDeleteInProgress)}, nil
}

// Describe returns the stack named (or with the ARN) nameOrID, or nil if there is none.
// By name CloudFormation finds only a live stack; by ARN also a deleted one.
func (m *Manager) Describe(ctx context.Context, nameOrID string) (*cfntypes.Stack, error) {
	out, err := m.CFN.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(nameOrID)})
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

// Look reports a stack's state as the event path would: a stack that no longer exists has
// been deleted.
func (m *Manager) Look(ctx context.Context, nameOrID string) (stackevent.Result, error) {
	stack, err := m.Describe(ctx, nameOrID)
	if err != nil {
		return stackevent.Result{}, err
	}
	if stack == nil {
		return stackevent.ResultOf(nameOrID, string(cfntypes.StackStatusDeleteComplete), "the stack does not exist"), nil
	}
	return stackevent.ResultOf(aws.ToString(stack.StackId), string(stack.StackStatus), aws.ToString(stack.StackStatusReason)), nil
}

// Outputs are a stack's outputs by key.
func Outputs(stack *cfntypes.Stack) map[string]string {
	out := map[string]string{}
	for _, o := range stack.Outputs {
		out[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return out
}

// maxEventPages bounds how far back FirstFailedResource reads (100 events a page).
const maxEventPages = 5

// FirstFailedResource finds, in the stack's latest operation, the earliest resource event
// with a *_FAILED status that is not the collateral "cancelled" failure of resources stopped
// because another one failed: the real cause. Events come newest first; the operation starts
// at the stack's own *_IN_PROGRESS event with reason "User Initiated".
func (m *Manager) FirstFailedResource(ctx context.Context, stackID string) (*cfntypes.StackEvent, error) {
	var first *cfntypes.StackEvent
	var next *string
	for range maxEventPages {
		out, err := m.CFN.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(stackID), NextToken: next})
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

// noUpdates is UpdateStack's answer when the template and parameters are unchanged.
func noUpdates(err error) bool {
	return cloud.ErrorCode(err) == "ValidationError" && strings.Contains(cloud.ErrorMessage(err), "No updates are to be performed")
}

// parameters and tags are sorted by key: the same spec always makes the same request.
func parameters(p map[string]string) []cfntypes.Parameter {
	out := make([]cfntypes.Parameter, 0, len(p))
	for _, k := range sortedKeys(p) {
		out = append(out, cfntypes.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(p[k])})
	}
	return out
}

func tags(t map[string]string) []cfntypes.Tag {
	out := make([]cfntypes.Tag, 0, len(t))
	for _, k := range sortedKeys(t) {
		out = append(out, cfntypes.Tag{Key: aws.String(k), Value: aws.String(t[k])})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
