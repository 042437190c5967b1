package main

import (
	"errors"

	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/steperr"
)

// The errors the upgrade workflow tells apart by name (Lambda reports a Go error's type name
// as its errorType; upgrade.asl.json retries and catches by it).

// The step errors every workflow shares (shared/steperr): the same names in the ASL.
type (
	TransientError = steperr.TransientError
	StackFailed    = steperr.StackFailed
	StackBlocked   = steperr.StackBlocked
	NotOwner       = steperr.NotOwner
	InvalidInput   = steperr.InvalidInput
	AccessDenied   = steperr.AccessDenied
)

// TemplateOutdated is an infrastructure stack whose template predates the parameter a step
// changes: that deployment's problem, which does not halt the release for the fleet.
type TemplateOutdated struct{ Err *customerstack.OutdatedError }

func (e *TemplateOutdated) Error() string { return e.Err.Error() }
func (e *TemplateOutdated) Unwrap() error { return e.Err }

func classify(err error) error {
	var outdated *customerstack.OutdatedError
	if err != nil && !errors.As(err, new(*TemplateOutdated)) && errors.As(err, &outdated) {
		return &TemplateOutdated{Err: outdated}
	}
	return steperr.Classify(err)
}
