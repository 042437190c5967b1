package main

import (
	"context"
	"log/slog"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// connectDataPlane makes a recorded stack's data plane reachable before the deployment is
// marked ready (docs/state.md, "What provisioning and teardown must call"):
//
//  1. its roles are registered (servicestate.DataPlaneFromOutputs → Repo.RegisterDataPlane),
//     so stateingest recognises the exporter's messages;
//  2. its command channel is opened with a policy that lets only the agent role read it;
//  3. when the state queue is configured, the queue's policy is brought in line with the
//     registered exporters, so the new exporter can send at once rather than after the next
//     sweep. statesweep converges the policy every minute anyway, which covers two
//     provisionings racing on it (each writes the exporters it read).
//
// Every call is idempotent (a put of the same record, CreateQueue of an existing queue with
// the same attributes, a policy written only when it differs), so a record step retried by
// the workflow repeats it harmlessly. A missing or malformed output is an InvalidOutputs
// error and nothing is written; a transient AWS error comes back as it is and classify makes
// it the workflow's retryable TransientError.
func (h *Handler) connectDataPlane(ctx context.Context, log *slog.Logger, d store.Deployment, outputs map[string]string) error {
	dp, err := servicestate.DataPlaneFromOutputs(d.ID, d.Settings.AccountID, outputs)
	if err != nil {
		return &InvalidOutputs{Err: err}
	}
	if err := h.State.RegisterDataPlane(ctx, dp); err != nil {
		return err
	}
	url, err := channel.Open(ctx, h.SQS, d.ID, dp.AgentRoleARN)
	if err != nil {
		return err
	}
	admitted := false
	if h.Config.StateQueueURL != "" {
		planes, err := h.State.DataPlanes(ctx)
		if err != nil {
			return err
		}
		if admitted, err = channel.AdmitExporters(ctx, h.SQS, h.Config.StateQueueURL, planes); err != nil {
			return err
		}
	}
	log.InfoContext(ctx, "provision: data plane connected", "exporterRoleArn", dp.ExporterRoleARN,
		"agentRoleArn", dp.AgentRoleARN, "commandQueue", url, "statePolicyChanged", admitted)
	return nil
}
