package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// Handler serves two callers with one JSON contract:
//   - a deployment's maintenance schedule: {"deploymentId", "purpose", "key", "scheduledTime"}
//     (maintenance.Fire);
//   - the operator (for the customer): {"action": "show" | "set" | "defer", "deploymentId",
//     ...}. show returns the window, the next four occurrences in UTC and local time with what
//     is due in each, and what is still rolling out; set changes the window, channel or canary
//     flag ({"window": {...}, "channel": "fast", "canary": true}); defer skips the next
//     window (at most twice in a row, never past a security fix's deadline).
type Handler struct {
	Maintenance *maintenance.Service
	Log         *slog.Logger
}

// Request is the payload: a schedule's firing or an action.
type Request struct {
	DeploymentID string `json:"deploymentId"`
	Purpose      string `json:"purpose,omitempty"`
	// Key is the firing's occurrence; for defer, the occurrence to defer as show lists it (the
	// same deferral asked again then changes nothing; without it the next window is deferred).
	Key           string `json:"key,omitempty"`
	ScheduledTime string `json:"scheduledTime,omitempty"`

	Action  string         `json:"action,omitempty"`
	Window  *window.Window `json:"window,omitempty"`
	Channel *string        `json:"channel,omitempty"`
	Canary  *bool          `json:"canary,omitempty"`
	Actor   string         `json:"actor,omitempty"`
}

// View is what show (and set and defer) answer.
type View struct {
	DeploymentID string                      `json:"deploymentId"`
	Status       lifecycle.Status            `json:"status"`
	Maintenance  store.Maintenance           `json:"maintenance"`
	Versions     release.Versions            `json:"versions"`
	Upcoming     []maintenance.Planned       `json:"upcoming"`
	RollingOut   []maintenance.NoticeRelease `json:"rollingOut"` // needed, not yet rolled out to its wave (or halted)
}

// Errors a caller (the operator API) tells apart by their Lambda errorType.
type (
	// NotFound: no such deployment.
	NotFound struct{ ID string }
	// Refused: the action is not allowed now; the message says why.
	Refused struct{ Reason string }
)

func (e *NotFound) Error() string { return "deployment " + e.ID + " does not exist" }
func (e *Refused) Error() string  { return e.Reason }

// UpcomingCount is how many occurrences show lists.
const UpcomingCount = 4

// Handle dispatches a firing or an action.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	req, err := decode(payload)
	if err != nil {
		return nil, err
	}
	if req.Action == "" {
		return nil, h.Maintenance.Fire(ctx, maintenance.Fire{DeploymentID: req.DeploymentID, Purpose: req.Purpose, Key: req.Key, ScheduledTime: req.ScheduledTime})
	}
	d, err := h.Maintenance.Store.Get(ctx, req.DeploymentID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &NotFound{ID: req.DeploymentID}
	}
	if err != nil {
		return nil, err
	}
	if d.Maintenance == nil {
		return nil, &Refused{Reason: fmt.Sprintf("deployment %s was invited before maintenance windows existed: set a window first (action set)", d.ID)}
	}
	now := clock.Now()
	actor := "maintenance"
	if req.Actor != "" {
		actor += ":" + req.Actor
	}
	switch req.Action {
	case "show":
	case "set":
		d, err = h.set(ctx, d, req, actor, now)
	case "defer":
		d, err = h.deferNext(ctx, d, req, actor, now)
	}
	if err != nil {
		return nil, err
	}
	return h.view(ctx, d, now)
}

func (h *Handler) view(ctx context.Context, d store.Deployment, now time.Time) (View, error) {
	cur, _, err := h.Maintenance.Versions(ctx, d)
	if err != nil {
		return View{}, err
	}
	rs, err := h.Maintenance.Store.Releases(ctx)
	if err != nil {
		return View{}, err
	}
	due := maintenance.Due(rs, *d.Maintenance, cur, false)
	up, err := maintenance.Upcoming(*d.Maintenance, now, UpcomingCount, due)
	if err != nil {
		return View{}, err
	}
	var rolling []release.Release
	dueIDs := map[string]bool{}
	for _, r := range due {
		dueIDs[r.ID] = true
	}
	for _, r := range maintenance.Pending(rs, cur) {
		if !dueIDs[r.ID] {
			rolling = append(rolling, r)
		}
	}
	return View{DeploymentID: d.ID, Status: d.Status, Maintenance: *d.Maintenance, Versions: cur, Upcoming: up, RollingOut: maintenance.Releases(rolling)}, nil
}

// set changes the window, channel or canary flag and re-arms the schedule.
func (h *Handler) set(ctx context.Context, d store.Deployment, req Request, actor string, now time.Time) (store.Deployment, error) {
	if d.Status == lifecycle.Deleting || d.Status == lifecycle.Deleted {
		return d, &Refused{Reason: fmt.Sprintf("deployment %s is %s: its maintenance cannot change", d.ID, d.Status)}
	}
	m := *d.Maintenance
	var changes []string
	if req.Window != nil {
		w, err := window.Normalize(*req.Window, "window")
		if err != nil {
			return d, err
		}
		if w != m.Window {
			m.Window, m.Deferred = w, nil // deferrals name occurrences of the old window
			changes = append(changes, "window "+w.Describe())
		}
	}
	if req.Channel != nil {
		if !release.ValidChannel(*req.Channel) {
			c := settings.Collector{Of: "maintenance"}
			c.Add("channel", *req.Channel, "must be one of "+strings.Join(release.Channels, ", "))
			return d, c.Err()
		}
		if *req.Channel != m.Channel {
			m.Channel = *req.Channel
			changes = append(changes, "channel "+m.Channel)
		}
	}
	if req.Canary != nil && *req.Canary != m.Canary {
		m.Canary = *req.Canary
		changes = append(changes, fmt.Sprintf("canary %t", m.Canary))
	}
	if len(changes) == 0 {
		return d, nil // already so (a retried request): nothing to write
	}
	a := store.Audit{Actor: actor, Action: "maintenance.set", Detail: strings.Join(changes, ", ")}
	if !maintenance.Maintainable(d) {
		next := d
		next.Maintenance = &m
		return h.Maintenance.Store.Update(ctx, d, next, a) // armed once provisioning succeeds
	}
	return h.Maintenance.Rearm(ctx, d, m, now, a)
}

// deferNext skips the next window. A pending off-cycle security start moves with it to the
// window after, unless that is past the fix's deadline.
func (h *Handler) deferNext(ctx context.Context, d store.Deployment, req Request, actor string, now time.Time) (store.Deployment, error) {
	if !maintenance.Maintainable(d) {
		return d, &Refused{Reason: fmt.Sprintf("deployment %s is %s: only a provisioned deployment has windows to defer", d.ID, d.Status)}
	}
	m := *d.Maintenance
	if req.Key != "" && slices.Contains(m.Deferred, req.Key) {
		return d, nil // deferred already (a retried request)
	}
	if len(m.Deferred) >= store.MaxDeferrals {
		return d, &Refused{Reason: fmt.Sprintf("deployment %s has deferred %d windows in a row (%s): at most %d; the next one runs",
			d.ID, len(m.Deferred), strings.Join(m.Deferred, ", "), store.MaxDeferrals)}
	}
	plain := m
	plain.Security = nil
	next, err := maintenance.NextArm(plain, now)
	if err != nil {
		return d, err
	}
	o, err := m.Window.Current(next.At)
	if err != nil {
		return d, err
	}
	if req.Key != "" && req.Key != o.Key {
		c := settings.Collector{Of: "maintenance request"}
		c.Add("key", req.Key, "must be the next window's occurrence, "+o.Key+" (show lists it): a deferral names what it defers")
		return d, c.Err()
	}
	after, err := m.Window.After(o)
	if err != nil {
		return d, err
	}
	// A pending security start before the deferred window keeps its time; one at or after
	// it moves to the window after, unless that is past a fix's deadline.
	if m.Security != nil && !m.Security.At.Before(o.Opens) {
		rs, err := h.Maintenance.Store.Releases(ctx)
		if err != nil {
			return d, err
		}
		cur, _, err := h.Maintenance.Versions(ctx, d)
		if err != nil {
			return d, err
		}
		for _, r := range maintenance.Due(rs, m, cur, true) {
			if r.Deadline != nil && r.Deadline.Before(after.Closes) {
				return d, &Refused{Reason: fmt.Sprintf("security release %s must be applied by %s; deferring the %s window would postpone it to the window of %s, which closes %s",
					r.ID, r.Deadline.UTC().Format(time.RFC3339), o.Key, after.Key, after.Closes.UTC().Format(time.RFC3339))}
			}
		}
		sec := *m.Security
		sec.At = after.Opens
		m.Security = &sec
	}
	m.Deferred = append(append([]string(nil), m.Deferred...), o.Key)
	return h.Maintenance.Rearm(ctx, d, m, now, store.Audit{Actor: actor, Action: "maintenance.defer",
		Detail: fmt.Sprintf("window %s deferred (%d in a row)", o.Key, len(m.Deferred))})
}

const maxActorLength = 128

// decode reads the payload strictly and checks its shape: a misspelt field would otherwise
// be ignored.
func decode(payload json.RawMessage) (Request, error) {
	var req Request
	c := settings.Collector{Of: "maintenance request"}
	if err := c.DecodeStrict(payload, &req); err != nil {
		return Request{}, err
	}
	if req.DeploymentID == "" {
		c.Add("deploymentId", "", "is required")
	}
	switch req.Action {
	case "":
		if req.Purpose == "" || req.ScheduledTime == "" {
			c.Add("action", "", "is required: show, set or defer (a schedule's firing carries purpose and scheduledTime instead)")
		}
		if req.Window != nil || req.Channel != nil || req.Canary != nil {
			c.Add("window", "", "only the set action takes window, channel or canary")
		}
	case "show", "defer":
		if req.Window != nil || req.Channel != nil || req.Canary != nil {
			c.Add("action", req.Action, "takes no window, channel or canary: use set")
		}
	case "set":
		if req.Window == nil && req.Channel == nil && req.Canary == nil {
			c.Add("window", "", "set needs at least one of window, channel, canary")
		}
	default:
		c.Add("action", req.Action, "must be show, set or defer")
	}
	if req.Action != "" && (req.Purpose != "" || req.ScheduledTime != "") {
		c.Add("purpose", req.Purpose, "an action carries no purpose or scheduledTime (those are the schedule's)")
	}
	if len(req.Actor) > maxActorLength {
		c.Add("actor", req.Actor[:20]+"…", fmt.Sprintf("must be at most %d characters", maxActorLength))
	}
	if err := c.Err(); err != nil {
		return Request{}, err
	}
	return req, nil
}
