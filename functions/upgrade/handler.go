package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment.
type Config struct{ Table, BusName string }

// ConfigFromEnv reads the configuration, refusing a missing variable at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName, contract.EnvEventBusName)
	if err != nil {
		return Config{}, err
	}
	return Config{Table: v[contract.EnvTableName], BusName: v[contract.EnvEventBusName]}, nil
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	return &Handler{
		Maintenance: &maintenance.Service{Store: store.New(db, c.Table), Services: servicestate.New(db, c.Table),
			Notices: maintenance.Publisher{Bus: eventbridge.NewFromConfig(awsCfg), BusName: c.BusName}, Log: log},
		Customers: customerstack.Customers{STS: sts.NewFromConfig(awsCfg), Base: awsCfg},
		Tasks:     sfn.NewFromConfig(awsCfg),
		Log:       log,
	}
}

// Handler runs the steps of the upgrade workflow (infra/workflows/upgrade.asl.json):
//
//	plan    read what the deployment runs (its infrastructure stack, its services' reports),
//	        plan what is due, take the deployment (ready -> updating) and record the plan
//	next    the next step, or "wait" when it does not fit what is left of the window, or
//	        "finish" when every step is done
//	apply   a stack step: update the infrastructure stack's version parameters only
//	await   register the task token for the stack's event (stackwait)
//	poll    the fallback look at the stack when no event came
//	done    record a step as completed (and the stack's versions)
//	finish  the deployment back to ready; each release it now runs settles for its rollout
//	fail    record the failed step and why; the releases of that step fail (their rollout
//	        halts); BYOC Maintenance Failed goes on the vendor bus
//
// Every step reads the deployment and acts only for the execution that owns it, so a
// retried or duplicated step finds its work done.
type Handler struct {
	Maintenance *maintenance.Service
	Customers   customerstack.Opener
	Tasks       cloud.TaskCompleter
	Log         *slog.Logger
}

// Steps of the workflow.
const (
	StepPlan   = "plan"
	StepNext   = "next"
	StepApply  = "apply"
	StepAwait  = "await"
	StepPoll   = "poll"
	StepDone   = "done"
	StepFinish = "finish"
	StepFail   = "fail"
)

// Input is every step's payload.
type Input struct {
	Step         string `json:"step"`
	DeploymentID string `json:"deploymentId"`
	Execution    string `json:"execution"` // $$.Execution.Id
	// plan: the firing's purpose, occurrence key and the window's close (empty off-cycle).
	Purpose string `json:"purpose,omitempty"`
	Key     string `json:"key,omitempty"`
	Closes  string `json:"closes,omitempty"`
	// apply, done: the step's index in the plan.
	Index int `json:"index"`
	// await, poll: the stack operation.
	TaskToken    string `json:"taskToken,omitempty"`
	StackID      string `json:"stackId,omitempty"`
	Operation    string `json:"operation,omitempty"`
	RequestToken string `json:"requestToken,omitempty"`
	// finish: done or wait.
	Outcome string `json:"outcome,omitempty"`
	// fail: what a Catch put at $.error.
	Error *steperr.Caught `json:"error,omitempty"`
}

// Handle dispatches to the step.
func (h *Handler) Handle(ctx context.Context, in Input) (any, error) {
	if in.DeploymentID == "" || in.Execution == "" {
		return nil, &InvalidInput{Problem: "deploymentId and execution are required"}
	}
	log := h.Log.With("step", in.Step, "deploymentId", in.DeploymentID, "execution", in.Execution)
	var out any
	var err error
	switch in.Step {
	case StepPlan:
		out, err = h.plan(ctx, log, in)
	case StepNext:
		out, err = h.next(ctx, in)
	case StepApply:
		out, err = h.apply(ctx, in)
	case StepAwait:
		out, err = h.await(ctx, in)
	case StepPoll:
		out, err = h.poll(ctx, in)
	case StepDone:
		out, err = h.done(ctx, log, in)
	case StepFinish:
		out, err = h.finish(ctx, log, in)
	case StepFail:
		out, err = h.fail(ctx, log, in)
	default:
		return nil, &InvalidInput{Problem: fmt.Sprintf("step %q is not one of plan, next, apply, await, poll, done, finish, fail", in.Step)}
	}
	if err != nil {
		err = classify(err)
		log.ErrorContext(ctx, "upgrade step failed", "error", err.Error(), "errorType", fmt.Sprintf("%T", err))
		return nil, err
	}
	return out, nil
}
