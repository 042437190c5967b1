package main

import (
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

// Serve is the function's entry: a release from the teardown workflow, or an invitation.
func (h *Handler) Serve(ctx context.Context, payload json.RawMessage) (any, error) {
	var probe struct {
		Release *Release `json:"release"`
	}
	if json.Unmarshal(payload, &probe) == nil && probe.Release != nil {
		return h.Release(ctx, *probe.Release)
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
	if d.Status != lifecycle.Deleting && d.Status != lifecycle.Deleted {
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

