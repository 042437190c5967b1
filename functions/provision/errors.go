package main

import (
	"errors"
	"fmt"
	"time"

	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/steperr"
)

// The errors below are the ones the provision workflow tells apart. Lambda reports a Go
// error's type name as its errorType, which is the error name the ASL's Retry and Catch see,
// so the names are part of the workflow's contract (provision.asl.json).

// The step errors every workflow shares (shared/steperr): the same names in the ASL.
type (
	TransientError = steperr.TransientError
	AccessDenied   = steperr.AccessDenied
	StackFailed    = steperr.StackFailed
	StackBlocked   = steperr.StackBlocked
	InvalidInput   = steperr.InvalidInput
)

// NotOwner is a step of an execution that does not own the deployment: another execution
// prepared it (a retry started while this one ran, or a takeover). It acts on nothing. Its
// message says how to take the deployment over, which only provisioning offers.
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

// classify gives an AWS or store error the name the workflow acts on: provisioning's own
// names first, then the shared ones.
func classify(err error) error {
	switch {
	case errors.As(err, new(*InvalidState)), errors.As(err, new(*InvalidOutputs)), errors.As(err, new(*NotOwner)),
		errors.As(err, new(*DeadlineExceeded)):
		return err
	case errors.As(err, new(*TransientError)), errors.As(err, new(*AccessDenied)), errors.As(err, new(*StackFailed)),
		errors.As(err, new(*StackBlocked)), errors.As(err, new(*InvalidInput)):
		return err // already named: never named twice
	case queueDeletedRecently(err), errors.As(err, new(*cfntypes.AlreadyExistsException)):
		// AlreadyExists that cannot be found: a create racing a delete; look again.
		return &TransientError{Err: err}
	}
	return steperr.Classify(err)
}

// queueDeletedRecently: SQS refuses to create a queue under the name of one deleted less than
// 60 seconds ago (a deployment torn down and provisioned again at once). It passes; the
// workflow's backoff waits it out.
func queueDeletedRecently(err error) bool {
	var recent *sqstypes.QueueDeletedRecently
	return errors.As(err, &recent) || cloud.ErrorCode(err) == "AWS.SimpleQueueService.QueueDeletedRecently"
}
