package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"log/slog"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// Handler is the scheduled sweep of service state. Each run:
//   - marks stale every service silent for longer than StaleAfter (found by a query of the
//     sweep index, not a scan), raising one alert per service and deployment transition;
//   - publishes alerts left in the outbox by an ingest that stopped before publishing;
//   - brings the state queue's policy in line with the registered exporters (when
//     StateQueueURL is set), so concurrent provisionings cannot leave an exporter out.
type Handler struct {
	Repo          *servicestate.Repo
	Publisher     servicestate.Publisher
	SQS           channel.SQS // nil when StateQueueURL is empty
	StateQueueURL string
	StaleAfter    time.Duration
	// Deployments is the deployment store on the same table, where the sweep finds
	// deployments whose onboarding stalled, and those whose workflow execution ended without
	// recording an outcome (nil: it does not look).
	Deployments *store.Store
	// Executions tells whether a deployment's workflow execution still runs.
	Executions cloud.ExecutionReader
	Log        *slog.Logger
}

// AbandonedAfter is how long a provisioning or updating deployment may go without a change
// before the sweep asks Step Functions whether its execution still runs (a long stack
// operation changes nothing for a while: its deployment is then asked about every minute,
// one read call, until the execution ends).
const AbandonedAfter = time.Hour

// rejectionGrace is how long after a rejection window closes its summary waits.
const rejectionGrace = time.Minute

// StalledAfter is how long a deployment may stay invited before the sweep reports it: the
// customer has not applied the bootstrap stack, or its completion event was lost.
const StalledAfter = 24 * time.Hour

// OutboxGrace leaves recent alerts to the ingest that recorded them, which publishes right
// after recording: the sweep only takes over alerts older than this.
const OutboxGrace = time.Minute

// Summary is what one run did.
type Summary struct {
	Stale         int  `json:"stale"`
	Alerts        int  `json:"alerts"`
	Republished   int  `json:"republished"`
	PolicyChanged bool `json:"policyChanged"`
	// RejectionSummaries counts the senders whose repeated rejections in a closed window
	// were announced (one event each, with the count).
	RejectionSummaries int `json:"rejectionSummaries"`
	// Stalled counts the deployments reported, this run, as invited for longer than
	// StalledAfter (each is reported once).
	Stalled int `json:"stalled"`
	// Abandoned counts the deployments marked failed, this run, because their workflow
	// execution had ended (timed out, stopped) without recording an outcome.
	Abandoned int `json:"abandoned"`
}

// Event is the schedule's input: exactly {"scheduledTime": "<aws.scheduler.scheduled-time>"}
// (the control-plane stack sets the target's Input so). Any other event, or none, runs on
// the clock.
type Event struct {
	ScheduledTime string `json:"scheduledTime,omitempty"`
}

// AsOf is the time a sweep judges staleness as of: the scheduled time when the event carries
// one, else the clock. Judging as of the schedule means a run the scheduler retried (or that
// waited for a cold start) decides what the run due at that minute would have decided, not
// something later; and in the local cloud, whose schedule firer runs on its own (possibly
// fast-forwarded) clock, that clock drives staleness. An unparseable scheduledTime is an
// error naming the field: the schedule is misconfigured, and guessing would hide it.
func (e Event) AsOf(clock func() time.Time) (time.Time, error) {
	if e.ScheduledTime == "" {
		return clock().UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, e.ScheduledTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("statesweep: event scheduledTime %q is not an RFC 3339 time (the schedule's input must be {\"scheduledTime\":\"<aws.scheduler.scheduled-time>\"})", e.ScheduledTime)
	}
	return t.UTC(), nil
}

// Handle runs one sweep as of the event's time (Event.AsOf). It goes through every step even
// when one fails, and reports the failures together, so a broken item does not stop the
// others from being swept.
func (h *Handler) Handle(ctx context.Context, ev Event) (Summary, error) {
	var sum Summary
	var errs []error
	now, err := ev.AsOf(h.Repo.Now)
	if err != nil {
		return sum, err
	}
	repo := h.Repo.AsOf(now) // transitions and outbox entries carry the time judged
	cutoff := health.StaleCutoff(now, h.StaleAfter)

	silent, err := repo.SilentServices(ctx, cutoff)
	if err != nil {
		errs = append(errs, err)
	}
	for _, k := range silent {
		alerts, err := repo.MarkStale(ctx, k, cutoff)
		if err != nil {
			errs = append(errs, err)
		}
		if len(alerts) == 0 {
			continue
		}
		sum.Stale++
		sum.Alerts += len(alerts)
		for _, a := range alerts {
			h.Log.Warn("health transition", "deploymentId", a.Alert.DeploymentID, "serviceId", a.Alert.ServiceID,
				"scope", a.Alert.Scope, "from", a.Alert.From, "to", a.Alert.To, "reason", a.Alert.Reason)
		}
		if err := repo.Deliver(ctx, h.Publisher, alerts); err != nil {
			errs = append(errs, err)
		}
	}

	left, err := repo.Unpublished(ctx, now.Add(-OutboxGrace))
	if err != nil {
		errs = append(errs, err)
	}
	if len(left) > 0 {
		if err := repo.Deliver(ctx, h.Publisher, left); err != nil {
			errs = append(errs, err)
		} else {
			sum.Republished = len(left)
		}
	}

	// Repeated rejections of the windows closed since the last runs (two windows back, so a
	// run that failed or came late leaves none behind), each a minute after it closed: an
	// ingest that read its clock just before the end may still be counting into it.
	for back := 1; back <= 2; back++ {
		n, err := h.reportRepeatedRejections(ctx, repo, servicestate.WindowOf(now.Add(-rejectionGrace)).Add(-time.Duration(back)*servicestate.RejectionWindow))
		sum.RejectionSummaries += n
		if err != nil {
			errs = append(errs, err)
		}
	}

	if h.Deployments != nil {
		n, err := h.reportStalled(ctx, now)
		sum.Stalled = n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if h.Deployments != nil && h.Executions != nil {
		n, err := h.failAbandoned(ctx, now)
		sum.Abandoned = n
		if err != nil {
			errs = append(errs, err)
		}
	}

	if h.StateQueueURL != "" {
		planes, err := repo.DataPlanes(ctx)
		if err == nil {
			sum.PolicyChanged, err = channel.AdmitExporters(ctx, h.SQS, h.StateQueueURL, planes)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("state queue admission: %w", err))
		}
	}
	h.Log.Info("state sweep", "asOf", now.Format(time.RFC3339), "staleAfter", h.StaleAfter.String(), "silent", len(silent), "stale", sum.Stale,
		"alerts", sum.Alerts, "republished", sum.Republished, "policyChanged", sum.PolicyChanged,
		"rejectionSummaries", sum.RejectionSummaries, "stalled", sum.Stalled, "abandoned", sum.Abandoned, "errors", len(errs))
	return sum, errors.Join(errs...)
}

// ParseStaleAfter reads STATE_STALE_AFTER (health.ParseStaleAfter's rule), naming the
// variable in its error.
func ParseStaleAfter(s string) (time.Duration, error) {
	d, err := health.ParseStaleAfter(s)
	if err != nil {
		return 0, fmt.Errorf("STATE_STALE_AFTER %w", err)
	}
	return d, nil
}

// reportRepeatedRejections announces each sender's further rejections in a closed window,
// once: published, then marked (a crash between them announces it again next run, which
// consumers tell apart by sender and window).
func (h *Handler) reportRepeatedRejections(ctx context.Context, repo *servicestate.Repo, window time.Time) (int, error) {
	repeated, err := repo.RepeatedRejections(ctx, window)
	if err != nil {
		return 0, err
	}
	reported := 0
	var errs []error
	for _, w := range repeated {
		if err := h.Publisher.PublishRepeatedRejections(ctx, w); err != nil {
			errs = append(errs, err)
			continue
		}
		if marked, err := repo.MarkRejectionsReported(ctx, w); err != nil || !marked {
			errs = append(errs, err) // not marked: another run reported it first
			continue
		}
		h.Log.Warn("repeated rejections announced", "sender", w.Sender, "windowStart", w.WindowStart.Format(time.RFC3339), "count", w.Count)
		reported++
	}
	return reported, errors.Join(errs...)
}

// reportStalled reports, once each, the deployments invited more than StalledAfter ago and
// still invited: an event on the bus, then the report recorded on the deployment
// (StalledReportedAt, which takes it off the sweep's list) with its audit entry, in one
// conditional write. Published first, so a crash between the two reports it again rather
// than never.
func (h *Handler) reportStalled(ctx context.Context, now time.Time) (int, error) {
	ids, err := h.Deployments.InvitedBefore(ctx, now.Add(-StalledAfter))
	if err != nil {
		return 0, err
	}
	reported := 0
	var errs []error
	for _, id := range ids {
		d, err := h.Deployments.Get(ctx, id)
		if err != nil || d.Status != lifecycle.Invited || d.StalledReportedAt != nil {
			errs = append(errs, err) // nil when it moved on since the index was read
			continue
		}
		reason := fmt.Sprintf("invited %s ago and the bootstrap stack's completion has not arrived: the customer has not applied it, or its event was lost",
			now.Sub(d.CreatedAt).Truncate(time.Minute))
		if err := h.Publisher.PublishStalled(ctx, servicestate.StalledDetail{
			DeploymentID: d.ID, AccountID: d.Settings.AccountID, Region: d.Settings.Region, InvitedAt: d.CreatedAt, Reason: reason,
		}); err != nil {
			errs = append(errs, err)
			continue
		}
		next := d
		next.StalledReportedAt = &now
		if _, err := h.Deployments.Update(ctx, d, next, store.Audit{Actor: "statesweep", Action: "onboarding.stalled", Detail: reason}); err != nil {
			if !errors.Is(err, store.ErrConflict) { // a conflict: it moved on, or another run reported it
				errs = append(errs, err)
			}
			continue
		}
		h.Log.Warn("onboarding stalled", "deploymentId", d.ID, "account", d.Settings.AccountID, "invitedAt", d.CreatedAt.Format(time.RFC3339))
		reported++
	}
	return reported, errors.Join(errs...)
}

// failAbandoned marks failed, with the reason, the deployments a workflow was working on
// whose execution has ended without recording an outcome: Step Functions stopped it at the
// state machine's timeout, or an operator stopped it. Without this they would stay
// provisioning (or updating) for ever. The write is conditional on the deployment being as
// read, so a workflow step racing it wins or loses cleanly.
func (h *Handler) failAbandoned(ctx context.Context, now time.Time) (int, error) {
	ids, err := h.Deployments.WorkingSince(ctx, now.Add(-AbandonedAfter))
	if err != nil {
		return 0, err
	}
	failed := 0
	var errs []error
	for _, id := range ids {
		d, err := h.Deployments.Get(ctx, id)
		if err != nil || (d.Status != lifecycle.Provisioning && d.Status != lifecycle.Updating) || d.Execution == "" {
			errs = append(errs, err)
			continue
		}
		out, err := h.Executions.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(d.Execution)})
		var gone *sfntypes.ExecutionDoesNotExist
		switch {
		case errors.As(err, &gone):
			// Past Step Functions' retention (90 days): whatever it did, it is not running.
			out, err = &sfn.DescribeExecutionOutput{Status: "DOES_NOT_EXIST"}, nil
		case err != nil:
			errs = append(errs, fmt.Errorf("execution of deployment %s: %w", d.ID, err))
			continue
		}
		// A redrive pending is the execution about to run again.
		if out.Status == sfntypes.ExecutionStatusRunning || out.Status == sfntypes.ExecutionStatusPendingRedrive {
			continue
		}
		reason := fmt.Sprintf("execution %s ended %s without recording an outcome", d.Execution, out.Status)
		if c := aws.ToString(out.Cause); c != "" {
			reason += ": " + c
		}
		next := d
		action := "provision.abandoned"
		if d.Status == lifecycle.Updating && d.Maintenance != nil && d.Maintenance.Last != nil && strings.HasSuffix(d.Execution, ":"+d.Maintenance.Last.Execution) {
			// An upgrade: every step completes or rolls back whole, so the deployment is as
			// consistent as the last step left it; it goes back to ready (and to its windows)
			// with the run recorded failed, not to failed.
			m := *d.Maintenance
			m.Last = &store.Run{Execution: m.Last.Execution, Key: m.Last.Key, Outcome: "failed", Reason: reason, At: now}
			next.Status, next.Maintenance, action = lifecycle.Ready, &m, "upgrade.abandoned"
		} else {
			next.Status = lifecycle.Failed
			next.Failure = &store.Failure{Status: "Execution" + string(out.Status), Reason: reason, At: now}
		}
		if _, err := h.Deployments.Update(ctx, d, next, store.Audit{Actor: "statesweep", Action: action, Detail: reason}); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		h.Log.Warn("workflow execution ended without an outcome: deployment failed", "deploymentId", d.ID, "execution", d.Execution, "status", string(out.Status))
		failed++
	}
	return failed, errors.Join(errs...)
}
