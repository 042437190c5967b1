package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/stackwait"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment.
type Config struct {
	Table, BusName, StateQueueURL, ScheduleGroup string
}

// ConfigFromEnv reads the configuration, refusing what is missing at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName, contract.EnvEventBusName, contract.EnvScheduleGroup)
	if err != nil {
		return Config{}, err
	}
	return Config{Table: v[contract.EnvTableName], BusName: v[contract.EnvEventBusName], ScheduleGroup: v[contract.EnvScheduleGroup],
		StateQueueURL: getenv(contract.EnvStateQueueURL)}, nil
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	sched := scheduler.NewFromConfig(awsCfg)
	return &Handler{
		Config: c, Store: store.New(db, c.Table), Services: servicestate.New(db, c.Table),
		Accounts: Accounts{STS: sts.NewFromConfig(awsCfg), Base: awsCfg},
		Tasks:    sfn.NewFromConfig(awsCfg), Workflows: sfn.NewFromConfig(awsCfg), SQS: sqs.NewFromConfig(awsCfg), Bus: eventbridge.NewFromConfig(awsCfg),
		Schedules: maintenance.Schedules{Client: sched, Group: c.ScheduleGroup},
		Log:       log,
	}
}

// Accounts opens a deployment's account as its management role.
type Accounts struct {
	STS  cloud.STS
	Base aws.Config
}

// Open assumes the management role once for a step: its stacks and its S3.
func (a Accounts) Open(ctx context.Context, d store.Deployment) (*customerstack.Manager, *cloud.S3, error) {
	cfg, err := cloud.AssumeRole(ctx, a.STS, a.Base, d.CustomerRole())
	if err != nil {
		return nil, nil, err
	}
	return &customerstack.Manager{CFN: cloudformation.NewFromConfig(cfg)}, cloud.NewS3(cfg), nil
}

// Bus is what teardown does on the vendor bus: announce a deletion.
type Bus interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Handler serves the teardown workflow's steps.
type Handler struct {
	Config   Config
	Store    *store.Store
	Services *servicestate.Repo
	Accounts interface {
		Open(context.Context, store.Deployment) (*customerstack.Manager, *cloud.S3, error)
	}
	Tasks     cloud.TaskCompleter
	Workflows runs.Workflows // to tell a dead owner from a running one
	SQS       channel.SQS
	Bus       Bus
	Schedules maintenance.Schedules
	Log       *slog.Logger
}

// StepInput is every step's payload (infra/workflows/teardown.asl.json).
type StepInput struct {
	Step         string `json:"step"`
	DeploymentID string `json:"deploymentId"`
	Execution    string `json:"execution"` // $$.Execution.Id
	// begin: what the operator asked.
	Force      bool   `json:"force,omitempty"`
	DeleteData bool   `json:"deleteData,omitempty"`
	Abandon    bool   `json:"abandon,omitempty"`
	Actor      string `json:"actor,omitempty"`
	// await, poll: the stack being deleted.
	StackName    string          `json:"stackName,omitempty"`
	StackID      string          `json:"stackId,omitempty"`
	RequestToken string          `json:"requestToken,omitempty"`
	TaskToken    string          `json:"taskToken,omitempty"`
	Error        *steperr.Caught `json:"error,omitempty"`
}

// Steps.
const (
	StepBegin  = "begin"
	StepDelete = "delete"
	StepAwait  = "await"
	StepPoll   = "poll"
	StepData   = "data"
	StepClose  = "close"
	StepFinish = "finish"
	StepFail   = "fail"
)

// Handle runs one step and names its error for the workflow.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var in StepInput
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, &steperr.InvalidInput{Problem: err.Error()}
	}
	if !settings.ValidDeploymentID(in.DeploymentID) || in.Execution == "" {
		return nil, &steperr.InvalidInput{Problem: "deploymentId and execution are required"}
	}
	out, err := h.step(ctx, in)
	if err = steperr.Classify(err); err != nil {
		h.Log.ErrorContext(ctx, "teardown step failed", "step", in.Step, "deploymentId", in.DeploymentID, "error", err.Error(), "errorType", fmt.Sprintf("%T", err))
	}
	return out, err
}

func (h *Handler) step(ctx context.Context, in StepInput) (any, error) {
	switch in.Step {
	case StepBegin:
		return h.begin(ctx, in)
	case StepDelete:
		return h.deleteNext(ctx, in)
	case StepAwait:
		return h.await(ctx, in)
	case StepPoll:
		return h.poll(ctx, in)
	case StepData:
		return h.data(ctx, in)
	case StepClose:
		return h.close(ctx, in)
	case StepFinish:
		return h.finish(ctx, in)
	case StepFail:
		return h.fail(ctx, in)
	}
	return nil, &steperr.InvalidInput{Problem: fmt.Sprintf("step %q is not one of begin, delete, await, poll, data, close, finish, fail", in.Step)}
}

// BeginResult says whether there is anything left to do.
type BeginResult struct {
	Done bool `json:"done"` // already deleted
}

// begin takes the deployment for this execution: deleting, owned by it, with the operator's
// options; the maintenance schedule goes first, so no upgrade starts under the teardown. A
// deployment some other workflow is changing (provisioning, updating, a peering being built or
// deleted) is refused, as is one whose services are not all terminated, unless forced. A
// deployment already deleting is taken over only from an execution that no longer runs (a
// second teardown never races the first).
func (h *Handler) begin(ctx context.Context, in StepInput) (BeginResult, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return BeginResult{}, err
	}
	switch d.Status {
	case lifecycle.Deleted:
		return BeginResult{Done: true}, nil
	case lifecycle.Deleting:
		if d.Execution == in.Execution {
			return BeginResult{}, h.Schedules.Disarm(ctx, d.ID) // a retried begin
		}
		if running, err := h.ownerRuns(ctx, d.Execution); err != nil {
			return BeginResult{}, err
		} else if running {
			return BeginResult{}, &steperr.Refused{Reason: fmt.Sprintf("teardown %s of deployment %s is still running", runs.NameOf(d.Execution), d.ID)}
		}
	case lifecycle.Ready, lifecycle.Failed, lifecycle.Invited:
		if d.Network != nil {
			for _, p := range d.Network.Peerings {
				if p.State.Working() {
					return BeginResult{}, &steperr.Refused{Reason: fmt.Sprintf("peering %s is %s: a teardown waits until its workflow ends", p.PeerVpcID, p.State)}
				}
			}
		}
		if !in.Force && !in.Abandon { // an abandoned account's services are the customer's now
			if live, err := h.Services.NotTerminated(ctx, d.ID); err != nil {
				return BeginResult{}, err
			} else if len(live) > 0 {
				return BeginResult{}, &steperr.Refused{Reason: fmt.Sprintf("services not terminated: %s (terminate them first, or force)", strings.Join(live, ", "))}
			}
		}
	default:
		return BeginResult{}, &steperr.Refused{Reason: fmt.Sprintf("deployment %s is %s: a teardown waits until its workflow ends", d.ID, d.Status)}
	}
	// The customer was told it is deleted (a finish that stopped after the notice).
	announced := d.Teardown != nil && d.Teardown.Announced
	if in.Abandon && !announced {
		if err := h.lockedOut(ctx, d); err != nil {
			return BeginResult{}, err
		}
	}
	next := d
	options := fmt.Sprintf("force %t, deleteData %t, abandon %t", in.Force, in.DeleteData, in.Abandon)
	action, detail := "teardown.start", fmt.Sprintf("execution %s (%s)", in.Execution, options)
	if d.Status == lifecycle.Deleting {
		action, detail = "teardown.takeover", fmt.Sprintf("execution %s resumes the teardown of %s (%s)", in.Execution, d.Execution, options)
	}
	if announced {
		detail += "; already announced to the customer: finished as announced, this request's options ignored"
	}
	next.Status = lifecycle.Deleting
	if announced {
		// The resumed teardown only finishes the record, as it was announced (what was kept
		// or left to them), and never opens their account again, whatever this request asks.
		told := *d.Teardown
		next.Teardown = &told
	} else {
		// The latest request's options: a resumed teardown is asked again, and may be asked
		// more (deleteData) than the one it resumes.
		next.Teardown = &store.Teardown{Force: in.Force, DeleteData: in.DeleteData, Abandon: in.Abandon, Actor: in.Actor, Requested: clock.Now().UTC()}
		if in.Abandon && built(d) {
			next.Teardown.DeleteData = false // the bucket cannot be reached: it stays, and is reported
			next.Teardown.Abandoned = stacks(d)
		}
	}
	next.Execution = in.Execution
	next.Failure = nil
	if _, err := h.Store.Update(ctx, d, next, store.Audit{Actor: "teardown:" + runs.NameOf(in.Execution), Action: action, Detail: detail}); err != nil {
		return BeginResult{}, err
	}
	return BeginResult{}, h.Schedules.Disarm(ctx, d.ID)
}

// lockedOut refuses to abandon a deployment whose account still lets byoc in: there, byoc
// deletes what it built (a teardown without abandon), and never leaves it behind. Only the
// management role refusing us (AccessDenied: the bootstrap stack deleted, its trust or
// ExternalId changed) allows it. An invited deployment never built anything to leave.
func (h *Handler) lockedOut(ctx context.Context, d store.Deployment) error {
	if !built(d) {
		return nil
	}
	_, _, err := h.Accounts.Open(ctx, d)
	switch {
	case err == nil:
		return &steperr.Refused{Reason: fmt.Sprintf("deployment %s: the management role in account %s still lets byoc in, so byoc deletes what it built there: delete without abandon", d.ID, d.Settings.AccountID)}
	case cloud.IsAccessDenied(err):
		h.Log.InfoContext(ctx, "teardown: abandoning the customer's account", "deploymentId", d.ID, "accountId", d.Settings.AccountID, "reason", err.Error())
		return nil
	}
	return err
}

// ownerRuns reports whether the execution that owns a deployment's teardown still runs; an
// owner that is not an execution's ARN runs nothing this function can describe.
func (h *Handler) ownerRuns(ctx context.Context, owner string) (bool, error) {
	machine := runs.MachineOf(owner)
	if machine == "" || runs.NameOf(owner) == "" {
		return false, nil
	}
	return runs.Running(ctx, h.Workflows, machine, runs.NameOf(owner))
}

// owned returns the deployment if this execution owns its teardown.
func (h *Handler) owned(ctx context.Context, in StepInput) (store.Deployment, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return d, err
	}
	if d.Status != lifecycle.Deleting || d.Execution != in.Execution {
		return d, &steperr.NotOwner{DeploymentID: d.ID, Owner: d.Execution, Step: in.Step}
	}
	return d, nil
}

// stacks are the deployment's customer stacks in the order they go: the network's (which
// reference the infrastructure stack's VPC and security groups), then the infrastructure.
func stacks(d store.Deployment) []string {
	var out []string
	if d.Network != nil {
		out = d.Network.Stacks(d.Settings.ResourcePrefix, d.ID)
	}
	return append(out, d.StackName)
}

// gone is the network as the teardown left it: every peering and the PrivateLink service
// deleted with their stacks.
func gone(n *connectivity.Network, now time.Time) *connectivity.Network {
	if n == nil {
		return nil
	}
	cp := *n
	cp.Peerings = append([]connectivity.Peering(nil), n.Peerings...)
	for i := range cp.Peerings {
		if cp.Peerings[i].State != connectivity.Deleted {
			cp.Peerings[i].State, cp.Peerings[i].UpdatedAt = connectivity.Deleted, now
		}
	}
	if n.PrivateLink != nil {
		pl := *n.PrivateLink
		pl.State, pl.UpdatedAt = connectivity.Deleted, now
		cp.PrivateLink = &pl
	}
	return &cp
}

// built reports whether byoc ever created anything in the deployment's account: an invited
// deployment whose customer never applied the bootstrap has nothing to delete there (and no
// role to delete it with), so its teardown never opens the account.
func built(d store.Deployment) bool {
	return d.StackID != "" || (d.Network != nil && len(d.Network.Peerings) > 0)
}

// reachesAccount reports whether the teardown still opens the customer's account: only if
// byoc built something there, and neither was the customer told the deployment is deleted
// (they may have deleted the bootstrap stack since) nor was the account abandoned.
func reachesAccount(d store.Deployment) bool {
	return built(d) && d.Teardown != nil && !d.Teardown.Announced && !d.Teardown.Abandon
}

// DeleteResult is the next stack's deletion, or done when none is left.
type DeleteResult struct {
	Done bool `json:"done"`
	customerstack.Result
	StackName string `json:"stackName"`
}

// deleteNext deletes the first of the deployment's stacks that still exists. A stack already
// deleting is waited on; one whose deletion failed is deleted again (the retry after an
// operator fixed what blocked it). Each call looks afresh, so a resumed teardown picks up
// where the last one stopped.
func (h *Handler) deleteNext(ctx context.Context, in StepInput) (DeleteResult, error) {
	d, err := h.owned(ctx, in)
	if err != nil {
		return DeleteResult{}, err
	}
	if !reachesAccount(d) {
		return DeleteResult{Done: true}, nil
	}
	cfn, _, err := h.Accounts.Open(ctx, d)
	if err != nil {
		return DeleteResult{}, err
	}
	for _, name := range stacks(d) {
		stack, err := cfn.Describe(ctx, name)
		if err != nil {
			return DeleteResult{}, err
		}
		if stack == nil || stack.StackStatus == cfntypes.StackStatusDeleteComplete {
			continue
		}
		if stack.StackStatus == cfntypes.StackStatusDeleteInProgress {
			return DeleteResult{StackName: name, Result: customerstack.Result{Action: customerstack.ActionWait, Operation: string(stackevent.Delete),
				StackID: aws.ToString(stack.StackId), Status: string(stack.StackStatus)}}, nil
		}
		r, err := cfn.Delete(ctx, stack, requestToken(in.Execution, name))
		if err != nil {
			return DeleteResult{}, err
		}
		h.Log.InfoContext(ctx, "teardown: deleting stack", "deploymentId", d.ID, "stack", name, "stackId", r.StackID)
		return DeleteResult{StackName: name, Result: r}, nil
	}
	return DeleteResult{Done: true}, nil
}

// requestToken is the ClientRequestToken of a stack deletion: one per execution and stack,
// so a retried step is recognised by CloudFormation as the same request.
func requestToken(execution, stack string) string {
	sum := sha256.Sum256([]byte(execution + "/" + stack))
	return "byoc-teardown-" + hex.EncodeToString(sum[:])[:32]
}

func (h *Handler) await(ctx context.Context, in StepInput) (stackwait.Result, error) {
	if in.TaskToken == "" || in.StackName == "" {
		return stackwait.Result{}, &steperr.InvalidInput{Problem: "await needs taskToken and stackName"}
	}
	d, err := h.owned(ctx, in)
	if err != nil {
		return stackwait.Result{}, err
	}
	cfn, _, err := h.Accounts.Open(ctx, d)
	if err != nil {
		return stackwait.Result{}, err
	}
	return stackwait.Await(ctx, h.Store, h.Tasks, cfn, store.Waiter{
		AccountID: d.Settings.AccountID, Region: d.Settings.Region, StackName: in.StackName, DeploymentID: d.ID,
		TaskToken: in.TaskToken, StackID: in.StackID, Operation: string(stackevent.Delete), RequestToken: in.RequestToken,
	})
}

// poll looks at the stack when no event came in time. A failed deletion is StackFailed.
func (h *Handler) poll(ctx context.Context, in StepInput) (stackevent.Result, error) {
	d, err := h.owned(ctx, in)
	if err != nil {
		return stackevent.Result{}, err
	}
	cfn, _, err := h.Accounts.Open(ctx, d)
	if err != nil {
		return stackevent.Result{}, err
	}
	ref := in.StackID
	if ref == "" {
		ref = in.StackName
	}
	r, err := cfn.Look(ctx, ref)
	if err != nil {
		return stackevent.Result{}, err
	}
	if r.Outcome == stackevent.OutcomeFailed {
		return stackevent.Result{}, &steperr.StackFailed{Result: r}
	}
	return r, nil
}

// DataResult says what became of the customer's bucket.
type DataResult struct {
	Bucket  string `json:"bucket"`
	Deleted bool   `json:"deleted"` // gone (deleteData)
	More    bool   `json:"more"`    // objects left: the workflow calls again
}

// bucketBatch bounds the objects one data step deletes, so each call ends well inside the
// function's timeout and a large bucket is emptied over several calls.
const bucketBatch = 500

// data deletes the customer's bucket with its objects when the operator asked for it
// (deleteData); otherwise the bucket stays, retained by the infrastructure stack, and is
// recorded as retained so the customer is told.
func (h *Handler) data(ctx context.Context, in StepInput) (DataResult, error) {
	d, err := h.owned(ctx, in)
	if err != nil {
		return DataResult{}, err
	}
	if !built(d) {
		return DataResult{}, nil // no stack, no bucket
	}
	bucket := BucketName(d)
	if !reachesAccount(d) || !d.Teardown.DeleteData {
		return DataResult{Bucket: bucket}, nil // kept
	}
	_, s3, err := h.Accounts.Open(ctx, d)
	if err != nil {
		return DataResult{}, err
	}
	gone, err := s3.DeleteBucket(ctx, bucket, bucketBatch)
	if err != nil {
		return DataResult{}, err
	}
	return DataResult{Bucket: bucket, Deleted: gone, More: !gone}, nil
}

// BucketName is the customer's bucket: the infrastructure stack's output, else its name rule.
func BucketName(d store.Deployment) string {
	if b := d.Outputs[contract.InfraOutputBucketName]; b != "" {
		return b
	}
	return fmt.Sprintf("%s-%s-%s", d.Settings.ResourcePrefix, d.ID, d.Settings.AccountID)
}

// close retires what the control plane holds for the deployment's data plane, each part
// idempotent: the data plane is forgotten and the state queue's policy rewritten without its
// exporter, then its command queue is deleted (channel.Disconnect); the maintenance schedule
// is deleted again (one re-armed meanwhile). The account's admission to the vendor bus is
// taken back next, by the invite function, which owns the bus's customer statements.
func (h *Handler) close(ctx context.Context, in StepInput) (any, error) {
	d, err := h.owned(ctx, in)
	if err != nil {
		return nil, err
	}
	if d.Teardown != nil && d.Teardown.Abandon && !d.Teardown.Announced {
		// Once more before anything of the vendor side goes: access restored meanwhile means
		// byoc deletes what it built after all. The teardown fails, refused, with the data
		// plane still connected, so its services can be terminated and the deployment
		// deleted again without abandon.
		if err := h.lockedOut(ctx, d); err != nil {
			return nil, err
		}
	}
	if err := channel.Disconnect(ctx, h.SQS, h.Services, h.Config.StateQueueURL, d.ID); err != nil {
		return nil, err
	}
	return nil, h.Schedules.Disarm(ctx, d.ID)
}

// Deleted is the detail of BYOC Deployment Deleted: what the customer is told.
type Deleted struct {
	NoticeID       string `json:"noticeId"` // the same on every delivery: consumers deduplicate on it
	DeploymentID   string `json:"deploymentId"`
	CustomerID     string `json:"customerId"`
	AccountID      string `json:"accountId"`
	Region         string `json:"region"`
	RetainedBucket string `json:"retainedBucket,omitempty"`
	// AbandonedStacks are byoc's stacks left in the account, which no longer let byoc in:
	// the customer deletes them.
	AbandonedStacks []string `json:"abandonedStacks,omitempty"`
	BootstrapStack  string   `json:"bootstrapStack"`
	Message         string   `json:"message"`
}

// finish tells the customer they may delete the bootstrap stack, then marks the deployment
// deleted, which releases its account+region claim and wave membership in the same write.
func (h *Handler) finish(ctx context.Context, in StepInput) (Deleted, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return Deleted{}, err
	}
	if d.Status == lifecycle.Deleted {
		return h.deletedNotice(d), nil // a retried finish: announced before the record said deleted
	}
	if d, err = h.owned(ctx, in); err != nil {
		return Deleted{}, err
	}
	audit := func(action, detail string) store.Audit {
		return store.Audit{Actor: "teardown:" + runs.NameOf(in.Execution), Action: action, Detail: detail}
	}
	// First the record says the notice is going out, and what it says (the bucket kept): a
	// teardown resumed after this point never opens the customer's account again (they may
	// have deleted the bootstrap stack once told), and tells them the same.
	if d.Teardown == nil || !d.Teardown.Announced {
		t := store.Teardown{}
		if d.Teardown != nil {
			t = *d.Teardown
		}
		if !t.DeleteData && built(d) {
			t.RetainedBucket = BucketName(d)
		}
		t.Announced = true
		marked := d
		marked.Teardown = &t
		if d, err = h.Store.Update(ctx, d, marked, audit("teardown.announcing", "the customer is told the deployment is deleted")); err != nil {
			return Deleted{}, err
		}
	}
	// Then the notice, before the record says deleted: a finish run again (the write lost,
	// the process killed) tells them again under the same notice id, which consumers
	// deduplicate on; once the record says deleted, the notice went out.
	notice := h.deletedNotice(d)
	body, _ := json.Marshal(notice)
	out, err := h.Bus.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(h.Config.BusName), Source: aws.String(contract.SourceLifecycle),
		DetailType: aws.String(contract.DetailTypeDeploymentDeleted), Detail: aws.String(string(body)),
	}}})
	if err == nil && out.FailedEntryCount > 0 {
		err = fmt.Errorf("the vendor bus refused the notice: %s", aws.ToString(out.Entries[0].ErrorMessage))
	}
	if err != nil {
		return Deleted{}, &steperr.TransientError{Err: fmt.Errorf("announce the deletion of %s: %w", d.ID, err)}
	}
	detail := "nothing was built in the customer's account"
	switch {
	case len(d.Teardown.Abandoned) > 0:
		detail = "the account no longer lets byoc in: stacks " + strings.Join(d.Teardown.Abandoned, ", ") + " and bucket " + d.Teardown.RetainedBucket + " left to the customer"
	case d.Teardown.RetainedBucket != "":
		detail = "bucket " + d.Teardown.RetainedBucket + " retained with the customer's data"
	case d.Teardown.DeleteData:
		detail = "bucket " + BucketName(d) + " deleted with its data"
	}
	next := d
	next.Status = lifecycle.Deleted
	next.Network = gone(d.Network, clock.Now().UTC())
	if _, err := h.Store.Update(ctx, d, next, audit("teardown.complete", detail+"; the customer may delete the "+contract.BootstrapStackName+" stack")); err != nil {
		return Deleted{}, err
	}
	return notice, nil
}

func (h *Handler) deletedNotice(d store.Deployment) Deleted {
	n := Deleted{NoticeID: "deleted-" + d.ID, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, AccountID: d.Settings.AccountID, Region: d.Settings.Region,
		BootstrapStack: contract.BootstrapStackName,
		Message:        "byoc removed everything it built in this account and region; you may now delete the " + contract.BootstrapStackName + " stack"}
	if d.Teardown != nil {
		n.RetainedBucket, n.AbandonedStacks = d.Teardown.RetainedBucket, d.Teardown.Abandoned
	}
	if len(n.AbandonedStacks) > 0 {
		n.Message = "byoc can no longer act in this account and region (its management role refuses it), so it left what it built: delete the stacks " +
			strings.Join(n.AbandonedStacks, ", ") + ", then the " + contract.BootstrapStackName + " stack if it is still there"
	}
	if n.RetainedBucket != "" {
		n.Message += "; bucket " + n.RetainedBucket + " was kept with your data: delete it yourself when you no longer need it"
	}
	return n
}

// fail records a teardown that stopped: the deployment is failed with the stack and the
// first resource that failed to delete and CloudFormation's reason (or the step's error).
// The operator fixes it and deletes again; the next execution picks up there.
func (h *Handler) fail(ctx context.Context, in StepInput) (any, error) {
	d, err := h.Store.Get(ctx, in.DeploymentID)
	if err != nil {
		return nil, err
	}
	cause := steperr.Caught{Error: "Unknown", Cause: "no error given"}
	if in.Error != nil {
		cause = *in.Error
	}
	if d.Status != lifecycle.Deleting || d.Execution != in.Execution {
		// Refused before it began (services running, another workflow at work), or another
		// execution owns it now: the audit says so, nothing else changes.
		return nil, h.Store.Record(ctx, d.ID, store.Audit{Actor: "teardown:" + runs.NameOf(in.Execution), Action: "teardown.refused",
			Detail: cause.Error + ": " + cause.Cause})
	}
	failure := &store.Failure{Status: contract.FailureTeardown, Reason: cause.Error + ": " + cause.Cause, At: clock.Now().UTC()}
	if cause.Error == "StackFailed" {
		var r stackevent.Result
		if json.Unmarshal([]byte(cause.Cause), &r) == nil && r.StackID != "" {
			failure.Reason = fmt.Sprintf("stack %s is %s: %s", r.StackID, r.Status, r.Reason)
			if cfn, _, err := h.Accounts.Open(ctx, d); err == nil {
				if ev, err := cfn.FirstFailedResource(ctx, r.StackID); err == nil && ev != nil {
					failure.Resource = aws.ToString(ev.LogicalResourceId)
					failure.Reason = aws.ToString(ev.ResourceStatusReason)
				}
			}
		}
	}
	next := d
	next.Status, next.Failure = lifecycle.Failed, failure
	_, err = h.Store.Update(ctx, d, next, store.Audit{Actor: "teardown:" + runs.NameOf(in.Execution), Action: "teardown.failed",
		Detail: strings.TrimSpace(failure.Resource + " " + failure.Reason)})
	return nil, err
}
