package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// ConfigFromEnv checks the environment; a missing variable fails the cold start.
func ConfigFromEnv(getenv func(string) string) (table string, err error) {
	if table = getenv(contract.EnvTableName); table == "" {
		return "", fmt.Errorf("stackevents: environment variable %s must be set", contract.EnvTableName)
	}
	return table, nil
}

// Handler resumes the workflow task waiting on a stack when the stack's operation ends.
type Handler struct {
	Store *store.Store
	Tasks cloud.TaskCompleter
	Log   *slog.Logger
}

// Handle processes one Stack Status Change event.
//
// Order of effects: the task is resumed first, then the waiter is deleted (only if it still
// holds the same token) and the event marked as handled. If resuming fails for a transient
// reason the error goes back to EventBridge, which retries with the waiter still in place; a
// duplicate that arrives after success finds no waiter, or a dead token, and does nothing.
// Malformed events are returned as errors, as in onboard, so they reach the dead-letter
// destination instead of vanishing.
func (h *Handler) Handle(ctx context.Context, ev events.CloudWatchEvent) error {
	if !stackevent.IsStackStatusChange(ev) {
		h.Log.InfoContext(ctx, "stackevents: ignored, not a Stack Status Change", "eventId", ev.ID, "source", ev.Source, "detailType", ev.DetailType)
		return nil
	}
	e, err := stackevent.Parse(ev)
	var forged *stackevent.ForgedError
	if errors.As(err, &forged) {
		// Refused, not retried: it must not resume another customer's workflow.
		h.Log.ErrorContext(ctx, "stackevents: rejected, forged event", "eventId", ev.ID, "error", err.Error())
		if err := stackevent.AuditForged(ctx, h.Store, "stackevents", ev.ID, ev.Region, forged); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	if err != nil {
		h.Log.ErrorContext(ctx, "stackevents: malformed event", "eventId", ev.ID, "error", err.Error())
		return err
	}
	log := h.Log.With("eventId", e.ID, "stackId", e.Stack.ID, "status", e.Status, "clientRequestToken", e.RequestID)
	if !stackevent.Terminal(e.Status) {
		log.DebugContext(ctx, "stackevents: ignored, operation in progress")
		return nil
	}
	if seen, err := h.Store.EventSeen(ctx, e.ID); err != nil {
		return err
	} else if seen {
		log.InfoContext(ctx, "stackevents: ignored, duplicate event")
		return nil
	}
	w, err := h.Store.Waiter(ctx, e.Stack.AccountID, e.Stack.Region, e.Stack.Name)
	if errors.Is(err, store.ErrNotFound) {
		// A stack nobody waits for: not ours, or a duplicate after the wait ended.
		log.InfoContext(ctx, "stackevents: ignored, no task waits for this stack")
		return nil
	}
	if err != nil {
		return err
	}
	log = log.With("deploymentId", w.DeploymentID)
	if why := stale(w, e); why != "" {
		log.InfoContext(ctx, "stackevents: ignored, event of another operation: "+why)
		return nil
	}

	err = stackevent.Resume(ctx, h.Tasks, w.TaskToken, stackevent.ResultOf(e.Stack.ID, e.Status, e.Reason))
	switch {
	case errors.Is(err, stackevent.ErrTaskGone):
		log.InfoContext(ctx, "stackevents: task already completed or timed out", "detail", err.Error())
	case err != nil:
		return err
	default:
		log.InfoContext(ctx, "stackevents: resumed the waiting task")
	}
	if err := h.Store.DeleteWaiter(ctx, w); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	if err := h.Store.MarkEvent(ctx, e.ID, "stackevents "+e.Status); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	return nil
}

// stale says why an event does not end the awaited operation, or "" if it does. A waiter
// records the stack instance, the operation and its ClientRequestToken; CloudFormation puts
// that token on every event of the operation, so a late event of an earlier operation on the
// same stack (a duplicate ROLLBACK_COMPLETE while the stack is being deleted) is recognised.
func stale(w store.Waiter, e stackevent.Event) string {
	switch {
	case w.StackID != "" && w.StackID != e.Stack.ID:
		return "the waiter awaits stack " + w.StackID
	case !stackevent.Ends(stackevent.Operation(w.Operation), e.Status):
		return fmt.Sprintf("%s does not end a %s", e.Status, w.Operation)
	case w.RequestToken != "" && e.RequestID != "" && w.RequestToken != e.RequestID:
		return "the waiter awaits request " + w.RequestToken
	}
	return ""
}
