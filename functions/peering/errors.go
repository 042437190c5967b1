package main

import (
	"errors"
	"fmt"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// The errors callers and the peering workflow tell apart by name (Lambda reports a Go
// error's type name as its errorType).
type (
	// InvalidRequest: a field breaks a rule, which the message names. Nothing changed.
	InvalidRequest struct{ Reason string }
	// NotFound: the deployment, peering or service named does not exist. Nothing changed.
	NotFound struct{ Reason string }
	// Refused: the deployment's state does not allow it (not ready, the last private path,
	// an unverified removal...). Nothing changed.
	Refused struct{ Reason string }
	// TransientError is worth retrying: throttling, a 5xx, a concurrent write.
	TransientError struct{ Err error }
	// StackFailed is a stack operation that rolled back (the fallback poll's report; the
	// event path fails the task token with the same name).
	StackFailed struct{ Result stackevent.Result }
	// StackBlocked is a stack only an operator may repair.
	StackBlocked struct{ Err *customerstack.BlockedError }
	// NotOwner is a step of an execution that no longer owns the target's change.
	NotOwner struct{ DeploymentID, Target, Owner, Step string }
	// NotAccepted is a connection the customer rejected, or let expire.
	NotAccepted struct{ Reason string }
	// BadReport is the agent reporting a load balancer that fails the checks.
	BadReport struct{ Reason string }
	// NoAgent is a deployment whose agent has not reported yet.
	NoAgent struct{ Reason string }
	// InvalidInput is a step called with input it cannot use (a defect of the workflow).
	InvalidInput struct{ Problem string }
	// AccessDenied is the customer's management role refusing us (or withdrawn).
	AccessDenied struct{ Err error }
)

func (e *InvalidRequest) Error() string { return e.Reason }
func (e *NotFound) Error() string       { return e.Reason }
func (e *Refused) Error() string        { return e.Reason }
func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }
func (e *StackFailed) Error() string {
	return fmt.Sprintf("stack %s is %s: %s", e.Result.StackID, e.Result.Status, e.Result.Reason)
}
func (e *StackBlocked) Error() string { return e.Err.Error() }
func (e *NotOwner) Error() string {
	return fmt.Sprintf("%s of deployment %s is worked on by %q: step %s of another execution does nothing", e.Target, e.DeploymentID, e.Owner, e.Step)
}
func (e *NotAccepted) Error() string  { return e.Reason }
func (e *BadReport) Error() string    { return e.Reason }
func (e *NoAgent) Error() string      { return e.Reason }
func (e *InvalidInput) Error() string { return "invalid step input: " + e.Problem }
func (e *AccessDenied) Error() string { return e.Err.Error() }
func (e *AccessDenied) Unwrap() error { return e.Err }

func classify(err error) error {
	var blocked *customerstack.BlockedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*InvalidRequest)), errors.As(err, new(*NotFound)), errors.As(err, new(*Refused)),
		errors.As(err, new(*TransientError)), errors.As(err, new(*StackFailed)), errors.As(err, new(*StackBlocked)),
		errors.As(err, new(*NotOwner)), errors.As(err, new(*NotAccepted)), errors.As(err, new(*BadReport)), errors.As(err, new(*NoAgent)),
		errors.As(err, new(*InvalidInput)), errors.As(err, new(*AccessDenied)):
		return err
	case errors.As(err, &blocked):
		return &StackBlocked{Err: blocked}
	case cloud.IsAccessDenied(err):
		return &AccessDenied{Err: err}
	case cloud.IsTransient(err), errors.Is(err, store.ErrConflict):
		return &TransientError{Err: err}
	}
	return err
}
