// Package steperr holds the errors a workflow step returns, named for the workflow's Retry
// and Catch: Lambda reports a Go error's type name as its errorType, so each type here is one
// error name in the ASL. Classify turns what AWS and the store return into them.
//
// The teardown steps use it directly; provision, upgrade and peering through aliases beside
// their own errors.
package steperr

import (
	"errors"
	"fmt"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

type (
	// TransientError is worth retrying: throttling, a 5xx, a concurrent write.
	TransientError struct{ Err error }
	// StackFailed is a stack operation that failed (the fallback poll's report; the event
	// path fails the task token with the same name).
	StackFailed struct{ Result stackevent.Result }
	// StackBlocked is a stack only an operator may repair.
	StackBlocked struct{ Err *customerstack.BlockedError }
	// NotOwner is a step of an execution that no longer owns the deployment's work.
	NotOwner struct{ DeploymentID, Owner, Step string }
	// Refused: the deployment's state does not allow the work; the message says why.
	Refused struct{ Reason string }
	// InvalidInput is a step called with input it cannot use (a defect of the workflow).
	InvalidInput struct{ Problem string }
	// AccessDenied is the customer's management role refusing us (or withdrawn).
	AccessDenied struct{ Err error }
)

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }
func (e *StackFailed) Error() string {
	return fmt.Sprintf("stack %s is %s: %s", e.Result.StackID, e.Result.Status, e.Result.Reason)
}
func (e *StackBlocked) Error() string { return e.Err.Error() }
func (e *StackBlocked) Unwrap() error { return e.Err }
func (e *NotOwner) Error() string {
	return fmt.Sprintf("deployment %s is worked on by %q: step %s of another execution does nothing", e.DeploymentID, e.Owner, e.Step)
}
func (e *Refused) Error() string      { return e.Reason }
func (e *InvalidInput) Error() string { return "invalid step input: " + e.Problem }
func (e *AccessDenied) Error() string { return e.Err.Error() }
func (e *AccessDenied) Unwrap() error { return e.Err }

// Classify names an error for the workflow: errors already named pass through; a blocked
// stack, an access denial, a transient AWS error or a lost conditional write get their name.
func Classify(err error) error {
	var blocked *customerstack.BlockedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*TransientError)), errors.As(err, new(*StackFailed)), errors.As(err, new(*StackBlocked)),
		errors.As(err, new(*NotOwner)), errors.As(err, new(*Refused)), errors.As(err, new(*InvalidInput)), errors.As(err, new(*AccessDenied)):
		return err
	case errors.As(err, &blocked):
		return &StackBlocked{Err: blocked}
	case cloud.IsAccessDenied(err): // cloud.AccessDeniedError too: it wraps STS's AccessDenied
		return &AccessDenied{Err: err}
	case cloud.IsTransient(err), errors.Is(err, store.ErrConflict):
		return &TransientError{Err: err}
	}
	return err
}

// Caught is what an ASL Catch puts at its ResultPath ($.error): the error's name and its
// cause. A workflow's failure step reads it to record why.
type Caught struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}
