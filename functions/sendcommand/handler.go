package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/servicestate"
)

// Request is the payload of a workflow task that sends a command to a deployment's agent: the
// command as the channel carries it (channel.Command), without schemaVersion and issuedAt.
//
//	"ApplyRelease": {
//	  "Type": "Task",
//	  "Resource": "arn:aws:states:::lambda:invoke",
//	  "Parameters": {"FunctionName": "<sendcommand>", "Payload": {
//	      "id.$": "States.Hash(States.Format('{}/{}', $$.Execution.Id, $$.State.Name), 'SHA-1')",
//	      "deploymentId.$": "$.deploymentId", "serviceId.$": "$.serviceId",
//	      "kind": "apply-release", "params": {"clickhouseVersion.$": "$.version"}}},
//	  "ResultSelector": {"id.$": "$.Payload.id", "status.$": "$.Payload.status"}, "ResultPath": "$.command",
//	  "Retry": [{"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.Unknown"], "MaxAttempts": 3}]
//	}
//
// The id is the caller's, derived from what it is doing (the execution and the step), so a
// retried step sends nothing twice. A step that sends the same command again in a loop must
// add what tells the rounds apart (a Map item's index, a counter) to the id.
type Request struct {
	ID           string            `json:"id"`
	DeploymentID string            `json:"deploymentId"`
	ServiceID    string            `json:"serviceId,omitempty"`
	Kind         channel.Kind      `json:"kind"`
	Params       map[string]string `json:"params,omitempty"`
}

// Response is the command as recorded: the request, its status (sent, or a later one when
// the same command was sent before: accepted, succeeded, failed) and the agent's detail.
type Response struct {
	Request
	Status    servicestate.CommandStatus `json:"status"`
	Detail    string                     `json:"detail,omitempty"`
	CreatedAt time.Time                  `json:"createdAt"`
	UpdatedAt time.Time                  `json:"updatedAt"`
}

func responseOf(rec servicestate.CommandRecord) Response {
	return Response{
		Request: Request{ID: rec.ID, DeploymentID: rec.DeploymentID, ServiceID: rec.ServiceID, Kind: channel.Kind(rec.Kind), Params: rec.Params},
		Status:  rec.Status, Detail: rec.Detail, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt,
	}
}

// The errors a workflow can Catch by name: each type name is the Lambda errorType. Retrying
// them is pointless; any other error is transient (AWS throttling, a timeout).
type (
	// InvalidRequestError: a field breaks a rule, which the message names. Nothing was
	// recorded or sent.
	InvalidRequestError struct{ Reason string }
	// CommandConflictError: the id was used before for a different command of the same
	// deployment. Nothing was recorded or sent.
	CommandConflictError struct{ Reason string }
	// NoChannelError: the deployment has no command channel (it was never provisioned, or
	// was torn down). Nothing was recorded or sent.
	NoChannelError struct{ Reason string }
)

func (e *InvalidRequestError) Error() string  { return e.Reason }
func (e *CommandConflictError) Error() string { return e.Reason }
func (e *NoChannelError) Error() string       { return e.Reason }

// Handler sends commands with channel.Sender: it records the command (pending), puts it on
// the deployment's FIFO command queue with the id as deduplication id, and marks it sent.
// The agent acknowledges it in its state messages; statewait waits for that with
// condition.commandId.
type Handler struct {
	Sender *channel.Sender
	Log    *slog.Logger
}

// HandleJSON decodes a request as Lambda delivers it, then serves it (Handle). A request that
// is not the shape of Request (params not an object of strings, an id that is not a string)
// is an InvalidRequestError naming the field, like any other bad field: the workflow does not
// retry it, and nothing is recorded or sent.
func (h *Handler) HandleJSON(ctx context.Context, raw json.RawMessage) (Response, error) {
	req, err := decodeRequest(raw)
	if err != nil {
		return Response{}, err
	}
	return h.Handle(ctx, req)
}

// decodeRequest reads a request, or says which field is not of its shape.
func decodeRequest(raw json.RawMessage) (Request, error) {
	var req Request
	if err := json.Unmarshal(raw, &req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return Request{}, &InvalidRequestError{Reason: fmt.Sprintf("invalid command: %s: must be %s, got %s", typeErr.Field, expectedShape(typeErr.Field), typeErr.Value)}
		}
		return Request{}, &InvalidRequestError{Reason: "invalid command: the request must be a JSON object: " + err.Error()}
	}
	return req, nil
}

// expectedShape says what a Request field must be, for decoding errors.
func expectedShape(field string) string {
	if field == "params" || strings.HasPrefix(field, "params.") {
		return "an object of string values"
	}
	return "a string"
}

// Handle serves one request and returns the command as recorded.
func (h *Handler) Handle(ctx context.Context, req Request) (Response, error) {
	rec, err := h.Sender.Send(ctx, channel.Command{
		SchemaVersion: channel.CommandVersion, ID: req.ID, DeploymentID: req.DeploymentID,
		ServiceID: req.ServiceID, Kind: req.Kind, Params: req.Params,
	})
	switch {
	case errors.Is(err, channel.ErrInvalidCommand):
		return Response{}, &InvalidRequestError{Reason: err.Error()}
	case errors.Is(err, servicestate.ErrConflict):
		return Response{}, &CommandConflictError{Reason: err.Error()}
	case errors.Is(err, channel.ErrNoChannel):
		return Response{}, &NoChannelError{Reason: "deployment " + req.DeploymentID + " has no command channel: it is not provisioned, or was torn down"}
	case err != nil:
		return Response{}, err
	}
	h.Log.Info("command sent", "deploymentId", rec.DeploymentID, "serviceId", rec.ServiceID, "commandId", rec.ID, "kind", rec.Kind, "status", rec.Status)
	return responseOf(rec), nil
}
