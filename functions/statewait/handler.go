package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
)

// Request is the payload of a workflow task that waits for a state condition:
//
//	"Type": "Task",
//	"Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
//	"Parameters": {"FunctionName": "<statewait>", "Payload": {
//	    "taskToken.$": "$$.Task.Token", "deploymentId.$": "$.deploymentId",
//	    "condition": {"serviceId.$": "$.serviceId", "health": "healthy", "clickhouseVersion.$": "$.version"},
//	    "timeoutSeconds": 1800}},
//	"TimeoutSeconds": 1800
//
// The state's TimeoutSeconds must equal timeoutSeconds: Step Functions ends the wait with
// States.Timeout, and the waiter expires at the same moment.
type Request struct {
	TaskToken    string                 `json:"taskToken"`
	DeploymentID string                 `json:"deploymentId"`
	Condition    servicestate.Condition `json:"condition"`
	// TimeoutSeconds is whole seconds; a fraction is refused rather than rounded, so the
	// waiter expires exactly when the Task's TimeoutSeconds ends the wait.
	TimeoutSeconds float64 `json:"timeoutSeconds"`
}

// Response tells the invoking step what happened; the workflow itself continues with the
// output of SendTaskSuccess (servicestate.WaitOutput) when the condition holds.
type Response struct {
	WaiterID string `json:"waiterId"`
	// Resumed is true when the condition already held (or could no longer hold) and the
	// task was resumed at once.
	Resumed bool `json:"resumed"`
}

// InvalidRequestError is returned for a request that can never be served; its type name is
// the Lambda errorType, so the workflow fails the step instead of retrying it.
type InvalidRequestError struct{ Reason string }

func (e *InvalidRequestError) Error() string { return "invalid wait request: " + e.Reason }

// Handler registers a workflow task as waiting for a state condition. It registers first
// and then checks the current state, so a report arriving in between is not missed: either
// ingest sees the waiter, or this check sees the report.
type Handler struct {
	Repo  *servicestate.Repo
	Tasks cloud.TaskCompleter
	Log   *slog.Logger
}

// Validate checks a request before anything is read or written; the error names the field.
func (req Request) Validate() error {
	if !settings.ValidDeploymentID(req.DeploymentID) {
		return &InvalidRequestError{Reason: "deploymentId: must be " + settings.DeploymentIDRule}
	}
	if req.TaskToken == "" {
		return &InvalidRequestError{Reason: "taskToken: required (pass $$.Task.Token with .waitForTaskToken)"}
	}
	// Compared as seconds before any conversion: a huge value would overflow a Duration.
	if req.TimeoutSeconds != math.Trunc(req.TimeoutSeconds) || req.TimeoutSeconds < 1 || req.TimeoutSeconds > servicestate.MaxWait.Seconds() {
		return &InvalidRequestError{Reason: fmt.Sprintf("timeoutSeconds: must be whole seconds from 1 to %d", int(servicestate.MaxWait.Seconds()))}
	}
	if err := req.Condition.Validate(); err != nil {
		return &InvalidRequestError{Reason: err.Error()}
	}
	return nil
}

// Handle serves one request.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	if err := req.Validate(); err != nil {
		return Response{}, err
	}
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	// Only a deployment byoc provisioned has state to wait for: a waiter for any other id
	// would sit until it expires.
	if _, err := h.Repo.DataPlane(ctx, req.DeploymentID); servicestate.IsNotFound(err) {
		return Response{}, &InvalidRequestError{Reason: "deploymentId: no deployment " + req.DeploymentID + " is provisioned (no data plane is registered for it)"}
	} else if err != nil {
		return Response{}, err
	}
	w, err := h.Repo.RegisterWaiter(ctx, req.DeploymentID, req.Condition, req.TaskToken, timeout)
	if err != nil {
		return Response{}, err
	}
	log := h.Log.With("deploymentId", req.DeploymentID, "serviceId", req.Condition.ServiceID, "waiterId", w.ID)
	s, err := h.Repo.Service(ctx, req.DeploymentID, req.Condition.ServiceID)
	if err != nil && !servicestate.IsNotFound(err) {
		return Response{}, err
	}
	resumed, err := h.Repo.ResumeWaiter(ctx, h.Tasks, w, s)
	if err != nil {
		return Response{}, err
	}
	log.Info("waiting for a state condition", "condition", req.Condition, "timeoutSeconds", req.TimeoutSeconds, "resumedAtOnce", resumed)
	return Response{WaiterID: w.ID, Resumed: resumed}, nil
}
