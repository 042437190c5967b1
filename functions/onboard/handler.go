package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/runs"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells onboard through its environment.
type Config struct {
	ProvisionMachineArn string
}

// ConfigFromEnv reads the configuration; a missing variable fails the cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{ProvisionMachineArn: getenv(contract.EnvProvisionMachineArn)}
	switch {
	case getenv(contract.EnvTableName) == "":
		return Config{}, fmt.Errorf("onboard: environment variable %s must be set", contract.EnvTableName)
	case c.ProvisionMachineArn == "":
		return Config{}, fmt.Errorf("onboard: environment variable %s must be set", contract.EnvProvisionMachineArn)
	}
	return c, nil
}

// Handler reacts to the customer's bootstrap stack: once it exists, the management role the
// control plane needs is there, and provisioning can start.
type Handler struct {
	Store     *store.Store
	Workflows cloud.Executions
	Config    Config
	Log       *slog.Logger
}

// ProvisionInput is the input of the provision workflow.
type ProvisionInput struct {
	DeploymentID string `json:"deploymentId"`
}

// ExecutionName names the provision execution of a deployment's attempt. Step Functions
// refuses a second execution of the same name (for 90 days), which is what makes a
// duplicate event start nothing; an operator's retry uses the next attempt number.
func ExecutionName(deploymentID string, attempt int) string {
	return runs.Name(provisionWorkflow, deploymentID, attempt)
}

const provisionWorkflow = "provision"

// Handle processes one Stack Status Change event.
//
// A malformed event is returned as an error (errorType "MalformedError"), not dropped:
// EventBridge's asynchronous invocation then retries it twice and sends it to the function's
// dead-letter destination, where an operator sees it, and the Errors metric shows it. A
// malformed event means the forwarding rule or an emulator is broken; silently dropping
// it would hide that. Events that are well formed but not for us (another stack, an unknown
// account, a status that needs no action, a duplicate) are logged and ignored, and write
// nothing.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) error {
	if !stackevent.IsStackStatusChange(ev) {
		h.Log.InfoContext(ctx, "onboard: ignored, not a Stack Status Change", "eventId", ev.ID, "source", ev.Source, "detailType", ev.DetailType)
		return nil
	}
	e, err := stackevent.Parse(ev)
	var forged *stackevent.ForgedError
	if errors.As(err, &forged) {
		// Refused, not retried: a redelivery is the same forgery.
		h.Log.ErrorContext(ctx, "onboard: rejected, forged event", "eventId", ev.ID, "error", err.Error())
		return ignoreNoTrail(stackevent.AuditForged(ctx, h.Store, "onboard", ev.ID, ev.Region, forged))
	}
	if err != nil {
		h.Log.ErrorContext(ctx, "onboard: malformed event", "eventId", ev.ID, "error", err.Error())
		return err
	}
	log := h.Log.With("eventId", e.ID, "stackId", e.Stack.ID, "account", e.Stack.AccountID, "region", e.Stack.Region, "status", e.Status)
	if e.Stack.Name != contract.BootstrapStackName {
		log.InfoContext(ctx, "onboard: ignored, not the bootstrap stack", "stackName", e.Stack.Name)
		return nil
	}
	op, outcome, _ := stackevent.Classify(e.Status)
	if outcome == stackevent.InProgress {
		log.DebugContext(ctx, "onboard: ignored, operation in progress")
		return nil
	}
	if seen, err := h.Store.EventSeen(ctx, e.ID); err != nil {
		return err
	} else if seen {
		log.InfoContext(ctx, "onboard: ignored, duplicate event")
		return nil
	}
	d, err := h.Store.ByAccount(ctx, e.Stack.AccountID, e.Stack.Region)
	if errors.Is(err, store.ErrNotFound) {
		log.WarnContext(ctx, "onboard: ignored, no deployment for this account and region")
		return nil
	}
	if err != nil {
		return err
	}
	log = log.With("deploymentId", d.ID)

	switch {
	case outcome == stackevent.Succeeded && (op == stackevent.Create || op == stackevent.Update):
		return h.start(ctx, log, d, e)
	case outcome == stackevent.Failed:
		// The customer fixes and re-applies the bootstrap stack; the deployment stays invited.
		return h.record(ctx, log, d, e, "bootstrap.failed")
	case op == stackevent.Delete:
		return h.record(ctx, log, d, e, "bootstrap.deleted")
	default:
		log.InfoContext(ctx, "onboard: ignored, status needs no action")
		return nil
	}
}

// start starts the provision workflow once per deployment: provision-<id>-1 for an invited
// one. A failed deployment is started again when the customer updates the bootstrap stack
// (the usual fix: a wrong ExternalId, a deleted role), as the next execution after the one
// that failed. StartExecution comes before the audit record: if it fails, nothing is recorded
// and EventBridge's retry tries again; if the record fails after a start, the retry finds
// the execution already there.
func (h *Handler) start(ctx context.Context, log *slog.Logger, d store.Deployment, e stackevent.Event) error {
	input, _ := json.Marshal(ProvisionInput{DeploymentID: d.ID})
	var name, action string
	var already bool
	switch d.Status {
	case lifecycle.Invited:
		name, action = ExecutionName(d.ID, 1), "bootstrap.complete"
		_, err := h.Workflows.StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String(h.Config.ProvisionMachineArn), Name: aws.String(name), Input: aws.String(string(input)),
		})
		var exists *sfntypes.ExecutionAlreadyExists
		if already = errors.As(err, &exists); err != nil && !already {
			return fmt.Errorf("start provision execution %s: %w", name, err)
		}
	case lifecycle.Failed:
		if d.Failure != nil && d.Failure.Status == contract.FailureTeardown {
			// Half torn down: the customer's bootstrap update does not bring it back; only
			// deleting it again (the operator) resumes its teardown.
			log.InfoContext(ctx, "onboard: ignored, the deployment's teardown stopped", "deploymentStatus", string(d.Status))
			return nil
		}
		// The next execution after the one that failed; names of executions that already ran
		// and closed (one refused while another owned the deployment) are stepped over. If
		// none is free, nothing was started: say so (EventBridge retries, then the DLQ),
		// and record no restart.
		s, err := runs.StartNext(ctx, h.Workflows, h.Config.ProvisionMachineArn, provisionWorkflow, d.ID, d.Execution, string(input))
		if err != nil {
			return fmt.Errorf("restart of deployment %s: %w", d.ID, err)
		}
		name, action, already = s.Name, "bootstrap.restart", s.Running
	default:
		log.InfoContext(ctx, "onboard: ignored, deployment already past invited", "deploymentStatus", string(d.Status))
		return nil
	}
	detail := fmt.Sprintf("%s by stack %s; started provision execution %s", e.Status, e.Stack.ID, runs.ExecutionArn(h.Config.ProvisionMachineArn, name))
	if already {
		log.InfoContext(ctx, "onboard: provision already started", "execution", name)
		detail = fmt.Sprintf("%s by stack %s; provision execution %s already started", e.Status, e.Stack.ID, name)
	} else {
		log.InfoContext(ctx, "onboard: provision started", "execution", name)
	}
	return h.audit(ctx, log, d, e, action, detail)
}

func (h *Handler) record(ctx context.Context, log *slog.Logger, d store.Deployment, e stackevent.Event, action string) error {
	log.WarnContext(ctx, "onboard: bootstrap stack "+e.Status, "reason", e.Reason)
	return h.audit(ctx, log, d, e, action, fmt.Sprintf("%s: %s (stack %s)", e.Status, e.Reason, e.Stack.ID))
}

func (h *Handler) audit(ctx context.Context, log *slog.Logger, d store.Deployment, e stackevent.Event, action, detail string) error {
	err := h.Store.Record(ctx, d.ID, store.Audit{Actor: "onboard", Action: action, Detail: detail, EventID: e.ID})
	if errors.Is(err, store.ErrExists) {
		log.InfoContext(ctx, "onboard: duplicate event, already recorded")
		return nil
	}
	return err
}

// ignoreNoTrail: a forged event naming accounts without a deployment has no audit trail to
// be written to; its log line is the record.
func ignoreNoTrail(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
