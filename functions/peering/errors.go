package main

import (
	"errors"
	"fmt"

	"github.com/byocloud/byoc/shared/steperr"
)

// The errors callers and the peering workflow tell apart by name (Lambda reports a Go
// error's type name as its errorType).
type (
	// InvalidRequest: a field breaks a rule, which the message names. Nothing changed.
	InvalidRequest struct{ Reason string }
	// NotFound: the deployment, peering or service named does not exist. Nothing changed.
	NotFound struct{ Reason string }
	// NotOwner is a step of an execution that no longer owns the target's change.
	NotOwner struct{ DeploymentID, Target, Owner, Step string }
	// NotAccepted is a connection the customer rejected, or let expire.
	NotAccepted struct{ Reason string }
	// BadReport is the agent reporting a load balancer that fails the checks.
	BadReport struct{ Reason string }
	// NoAgent is a deployment whose agent has not reported yet.
	NoAgent struct{ Reason string }
)

// The step errors every workflow shares (shared/steperr), the same names in the ASL.
// Refused: the deployment's state does not allow it (not ready, the last private path, an
// unverified removal...); nothing changed.
type (
	Refused        = steperr.Refused
	TransientError = steperr.TransientError
	StackFailed    = steperr.StackFailed
	StackBlocked   = steperr.StackBlocked
	InvalidInput   = steperr.InvalidInput
	AccessDenied   = steperr.AccessDenied
)

func (e *InvalidRequest) Error() string { return e.Reason }
func (e *NotFound) Error() string       { return e.Reason }
func (e *NotOwner) Error() string {
	return fmt.Sprintf("%s of deployment %s is worked on by %q: step %s of another execution does nothing", e.Target, e.DeploymentID, e.Owner, e.Step)
}
func (e *NotAccepted) Error() string { return e.Reason }
func (e *BadReport) Error() string   { return e.Reason }
func (e *NoAgent) Error() string     { return e.Reason }

// classify names an error for the caller and the workflow: peering's own pass through, the
// rest as every workflow's steps name them.
func classify(err error) error {
	switch {
	case errors.As(err, new(*InvalidRequest)), errors.As(err, new(*NotFound)), errors.As(err, new(*NotOwner)),
		errors.As(err, new(*NotAccepted)), errors.As(err, new(*BadReport)), errors.As(err, new(*NoAgent)):
		return err
	}
	return steperr.Classify(err)
}
