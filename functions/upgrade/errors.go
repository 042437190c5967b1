package main

import (
	"errors"
	"fmt"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// The errors the upgrade workflow tells apart by name (Lambda reports a Go error's type name
// as its errorType; upgrade.asl.json retries and catches by it).

// TransientError is worth retrying: throttling, a 5xx, a concurrent write.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return "transient: " + e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// StackFailed is a stack update that rolled back (reported by the fallback poll; the event
// path fails the task token with the same name).
type StackFailed struct{ Result stackevent.Result }

func (e *StackFailed) Error() string {
	return fmt.Sprintf("stack %s is %s: %s", e.Result.StackID, e.Result.Status, e.Result.Reason)
}

// StackBlocked is a stack only an operator may repair (UPDATE_ROLLBACK_FAILED).
type StackBlocked struct{ Err *customerstack.BlockedError }

func (e *StackBlocked) Error() string { return e.Err.Error() }
func (e *StackBlocked) Unwrap() error { return e.Err }

// NotOwner is a step of an execution that no longer owns the deployment's upgrade.
type NotOwner struct{ DeploymentID, Owner, Step string }

func (e *NotOwner) Error() string {
	return fmt.Sprintf("deployment %s is worked on by %q: step %s of another execution does nothing", e.DeploymentID, e.Owner, e.Step)
}

// TemplateOutdated is an infrastructure stack whose template predates the parameter a step
// changes: that deployment's problem, which does not halt the release for the fleet.
type TemplateOutdated struct{ Err *customerstack.OutdatedError }

func (e *TemplateOutdated) Error() string { return e.Err.Error() }
func (e *TemplateOutdated) Unwrap() error { return e.Err }

// InvalidInput is a step called with input it cannot use (a defect of the workflow).
type InvalidInput struct{ Problem string }

func (e *InvalidInput) Error() string { return "invalid step input: " + e.Problem }

// AccessDenied is the customer's management role refusing us.
type AccessDenied struct{ Err error }

func (e *AccessDenied) Error() string { return e.Err.Error() }
func (e *AccessDenied) Unwrap() error { return e.Err }

func classify(err error) error {
	var blocked *customerstack.BlockedError
	var outdated *customerstack.OutdatedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*TransientError)), errors.As(err, new(*StackFailed)), errors.As(err, new(*StackBlocked)),
		errors.As(err, new(*NotOwner)), errors.As(err, new(*InvalidInput)), errors.As(err, new(*AccessDenied)), errors.As(err, new(*TemplateOutdated)):
		return err
	case errors.As(err, &blocked):
		return &StackBlocked{Err: blocked}
	case errors.As(err, &outdated):
		return &TemplateOutdated{Err: outdated}
	case cloud.IsAccessDenied(err):
		return &AccessDenied{Err: err}
	case cloud.IsTransient(err), errors.Is(err, store.ErrConflict):
		return &TransientError{Err: err}
	}
	return err
}
