package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

// Release is the teardown workflow's request to take a deployment's account off the vendor
// bus (its statement in the bus policy). invite owns the customers' statements, adding
// them and taking them back: no other role may change the bus policy, so a defect elsewhere
// cannot lift the policy's own statement (only CloudFormation's events from customers).
type Release struct {
	DeploymentID string `json:"deploymentId"`
}

// ReleaseResult says whether the account's statement was removed.
type ReleaseResult struct {
	Released bool   `json:"released"`
	Reason   string `json:"reason"` // why it was kept ("" when released)
}

// Serve is the function's entry: a release from the teardown workflow (a payload of exactly
// {"release": {...}}), or an invitation (anything else, which Handle decodes strictly: a
// "release" beside settings is refused there as no setting).
func (h *Handler) Serve(ctx context.Context, payload json.RawMessage) (any, error) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(payload, &fields) == nil && len(fields) == 1 && fields["release"] != nil {
		var r Release
		dec := json.NewDecoder(bytes.NewReader(fields["release"]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, &settings.ValidationError{Errors: []settings.FieldError{{Field: "release", Rule: "must be {\"deploymentId\": ...}: " + err.Error()}}}
		}
		return h.Release(ctx, r)
	}
	return h.Handle(ctx, payload)
}

// Release removes the account's statement, only for a deployment being torn down, and only
// when no other live deployment of the account (in another region) still needs it to report
// its stacks. Removing a statement already gone is done.
func (h *Handler) Release(ctx context.Context, r Release) (ReleaseResult, error) {
	if !settings.ValidDeploymentID(r.DeploymentID) {
		return ReleaseResult{}, &settings.ValidationError{Errors: []settings.FieldError{{Field: "release.deploymentId", Value: r.DeploymentID, Rule: "must be " + settings.DeploymentIDRule}}}
	}
	d, err := h.Store.Get(ctx, r.DeploymentID)
	if err != nil {
		return ReleaseResult{}, err
	}
	// Only while it is being torn down: once deleted, its account+region claim is released
	// and the account may have been invited again, whose admission this statement now is.
	if d.Status != lifecycle.Deleting {
		return ReleaseResult{}, &settings.ValidationError{Errors: []settings.FieldError{{Field: "release.deploymentId", Value: r.DeploymentID,
			Rule: fmt.Sprintf("must name a deployment being torn down (it is %s)", d.Status)}}}
	}
	for _, region := range h.Config.Rules.Regions() {
		if region == d.Settings.Region {
			continue
		}
		other, err := h.Store.ByAccount(ctx, d.Settings.AccountID, region)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return ReleaseResult{}, err
		}
		if other.Status != lifecycle.Deleted {
			return ReleaseResult{Reason: "deployment " + other.ID + " of the account in " + region + " still needs it"}, nil
		}
	}
	_, err = h.Bus.RemovePermission(ctx, &eventbridge.RemovePermissionInput{
		EventBusName: aws.String(h.Config.EventBusName), StatementId: aws.String(StatementID(d.Settings.AccountID)),
	})
	var missing *ebtypes.ResourceNotFoundException
	if err != nil && !errors.As(err, &missing) {
		return ReleaseResult{}, fmt.Errorf("remove account %s from the vendor bus: %w", d.Settings.AccountID, err)
	}
	h.Log.InfoContext(ctx, "released", "deploymentId", d.ID, "account", d.Settings.AccountID)
	return ReleaseResult{Released: true}, nil
}
