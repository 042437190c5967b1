package main

import (
	"errors"
	"fmt"
	"time"

	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// The errors below are the ones the provision workflow tells apart. Lambda reports a Go
// error's type name as its errorType, which is the error name the ASL's Retry and Catch see,
// so the names are part of the workflow's contract (provision.asl.json).

// TransientError is worth retrying: throttling, a 5xx, a dropped connection, or a concurrent
// write to the deployment (the retried step reads it again). The workflow retries it with
// jittered exponential backoff.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// AccessDenied is the customer's management role refusing us, most often a wrong ExternalId.
// Retrying cannot help: the deployment fails with this reason.
type AccessDenied struct{ Err error }

func (e *AccessDenied) Error() string { return e.Err.Error() }
func (e *AccessDenied) Unwrap() error { return e.Err }

// StackFailed is a stack operation that ended in failure (reported by the fallback poll; the
// event path fails the task token with the same name).
type StackFailed struct{ Result stackevent.Result }

func (e *StackFailed) Error() string {
	return fmt.Sprintf("stack %s is %s: %s", e.Result.StackID, e.Result.Status, e.Result.Reason)
}

// StackBlocked is a stack in a state byoc must not repair by itself (the stack manager's
// BlockedError under the workflow's name).
type StackBlocked struct{ Err *customerstack.BlockedError }

func (e *StackBlocked) Error() string { return e.Err.Error() }
func (e *StackBlocked) Unwrap() error { return e.Err }

// NotOwner is a step of an execution that does not own the deployment: another execution
// prepared it (a retry started while this one ran, or a takeover). It acts on nothing.
type NotOwner struct {
	DeploymentID, Owner, Step string
}

func (e *NotOwner) Error() string {
	return fmt.Sprintf("deployment %s is being provisioned by %s: step %s of another execution does nothing (start with \"takeover\": true to take it over)", e.DeploymentID, e.Owner, e.Step)
}

// DeadlineExceeded is an attempt still waiting on its stack after Deadline.
type DeadlineExceeded struct {
	StartedAt time.Time
	Status    string // the stack's status at the last look
}

func (e *DeadlineExceeded) Error() string {
	return fmt.Sprintf("provisioning did not finish within %s of the execution's start (%s): stack operation %s", Deadline, e.StartedAt.UTC().Format(time.RFC3339), e.Status)
}

// InvalidState is a step asked to act on a deployment in a status it cannot act on.
type InvalidState struct {
	DeploymentID, Status, Step string
}

func (e *InvalidState) Error() string {
	return fmt.Sprintf("deployment %s is %s: step %s cannot run", e.DeploymentID, e.Status, e.Step)
}

// InvalidOutputs is a complete stack whose outputs cannot describe the data plane (an output
// missing or malformed: a template that does not match this code). Retrying cannot help: the
// deployment fails with the output named, and is not marked ready.
type InvalidOutputs struct{ Err error }

func (e *InvalidOutputs) Error() string { return e.Err.Error() }
func (e *InvalidOutputs) Unwrap() error { return e.Err }

// InvalidInput is a step input the workflow should never send.
type InvalidInput struct{ Problem string }

func (e *InvalidInput) Error() string { return "invalid step input: " + e.Problem }

// classify gives an AWS or store error the name the workflow acts on.
func classify(err error) error {
	var denied *cloud.AccessDeniedError
	var blocked *customerstack.BlockedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*TransientError)), errors.As(err, new(*AccessDenied)), errors.As(err, new(*StackFailed)),
		errors.As(err, new(*StackBlocked)), errors.As(err, new(*InvalidState)), errors.As(err, new(*InvalidInput)),
		errors.As(err, new(*InvalidOutputs)), errors.As(err, new(*NotOwner)), errors.As(err, new(*DeadlineExceeded)):
		return err
	case errors.As(err, &blocked):
		return &StackBlocked{Err: blocked}
	case errors.As(err, &denied), cloud.IsAccessDenied(err):
		return &AccessDenied{Err: err}
	case cloud.IsTransient(err), errors.Is(err, store.ErrConflict), queueDeletedRecently(err), errors.As(err, new(*cfntypes.AlreadyExistsException)):
		// AlreadyExists that cannot be found: a create racing a delete; look again.
		return &TransientError{Err: err}
	default:
		return err
	}
}

// queueDeletedRecently: SQS refuses to create a queue under the name of one deleted less than
// 60 seconds ago (a deployment torn down and provisioned again at once). It passes; the
// workflow's backoff waits it out.
func queueDeletedRecently(err error) bool {
	var recent *sqstypes.QueueDeletedRecently
	return errors.As(err, &recent) || cloud.ErrorCode(err) == "AWS.SimpleQueueService.QueueDeletedRecently"
}
