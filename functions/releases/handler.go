package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment.
type Config struct {
	Table, BusName string
	VendorAccount  string // the account of the vendor bus: the only one whose health events count
	Schedules      maintenance.Schedules
}

// ConfigFromEnv reads the configuration, refusing a missing variable at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, append([]string{contract.EnvTableName, contract.EnvEventBusName, contract.EnvEventBusArn}, maintenance.ScheduleEnv...)...)
	if err != nil {
		return Config{}, err
	}
	bus, err := arn.Parse(v[contract.EnvEventBusArn])
	if err != nil {
		return Config{}, fmt.Errorf("%s %q: %w", contract.EnvEventBusArn, v[contract.EnvEventBusArn], err)
	}
	return Config{Table: v[contract.EnvTableName], BusName: v[contract.EnvEventBusName], VendorAccount: bus.AccountID,
		Schedules: maintenance.SchedulesFromEnv(v)}, nil
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	sch := c.Schedules
	sch.Client = scheduler.NewFromConfig(awsCfg)
	return &Handler{Maintenance: &maintenance.Service{
		Store: store.New(db, c.Table), Services: servicestate.New(db, c.Table), Schedules: sch,
		Notices: maintenance.Publisher{Bus: eventbridge.NewFromConfig(awsCfg), BusName: c.BusName}, Log: log,
	}, VendorAccount: c.VendorAccount, Log: log}
}

// Handler serves the release catalogue with one JSON contract:
//   - {"action": "publish", "release": {...}, "actor"}: validates and publishes a release
//     (package release's rules; a refusal names the field and rule and changes nothing),
//     and opens its first wave;
//   - {"action": "show"} or {"action": "show", "releaseId"}: releases with each wave's state;
//   - {"action": "resume", "releaseId", "actor"}: lifts a halt;
//   - {"action": "advance", "scheduledTime"}: the rollout schedule (every five minutes);
//   - a "BYOC Deployment Health Changed" event of the vendor's own account: a deployment
//     turning unhealthy within a release's bake time halts the release.
type Handler struct {
	Maintenance   *maintenance.Service
	VendorAccount string
	Log           *slog.Logger
}

// Request is the payload: an action, or an EventBridge event.
type Request struct {
	Action        string           `json:"action,omitempty"`
	Release       *release.Release `json:"release,omitempty"`
	ReleaseID     string           `json:"releaseId,omitempty"`
	ScheduledTime string           `json:"scheduledTime,omitempty"`
	Actor         string           `json:"actor,omitempty"`

	// An EventBridge event's envelope.
	Version    string          `json:"version,omitempty"`
	ID         string          `json:"id,omitempty"`
	DetailType string          `json:"detail-type,omitempty"`
	Source     string          `json:"source,omitempty"`
	Account    string          `json:"account,omitempty"`
	Time       string          `json:"time,omitempty"`
	Region     string          `json:"region,omitempty"`
	Resources  []string        `json:"resources,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// View is a release as shown: its record and one line per wave.
type View struct {
	store.ReleaseRecord
	Waves string `json:"waves"`
}

// Errors a caller tells apart by their Lambda errorType.
type (
	// NotFound: no such release.
	NotFound struct{ ID string }
	// Conflict: the catalogue or the release changed meanwhile, or it is not halted.
	Conflict struct{ Reason string }
)

func (e *NotFound) Error() string { return "release " + e.ID + " does not exist" }
func (e *Conflict) Error() string { return e.Reason }

// Handle dispatches.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (any, error) {
	req, err := decode(payload)
	if err != nil {
		return nil, err
	}
	now := clock.Now()
	actor := "releases"
	if req.Actor != "" {
		actor += ":" + req.Actor
	}
	switch {
	case req.DetailType != "":
		return nil, h.healthChanged(ctx, req, now)
	case req.Action == "publish":
		rec, err := h.Maintenance.Publish(ctx, *req.Release, actor, now)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
			return nil, &Conflict{Reason: err.Error()}
		}
		if err != nil {
			return nil, err
		}
		return view(rec), nil
	case req.Action == "resume":
		rec, err := h.Maintenance.Resume(ctx, req.ReleaseID, actor, now)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &NotFound{ID: req.ReleaseID}
		}
		if err != nil {
			return nil, &Conflict{Reason: err.Error()}
		}
		return view(rec), nil
	case req.Action == "advance":
		// The clock, not the payload: a bake must not be skipped by an invocation that says
		// it is later than it is. The schedule's scheduledTime is only logged.
		recs, err := h.Maintenance.Advance(ctx, now)
		return views(recs), err
	}
	return h.show(ctx, req.ReleaseID)
}

func (h *Handler) show(ctx context.Context, id string) (any, error) {
	if id != "" {
		r, err := h.Maintenance.Store.Release(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &NotFound{ID: id}
		}
		if err != nil {
			return nil, err
		}
		r, err = h.Maintenance.Store.WithCounts(ctx, r)
		return view(r), err
	}
	rs, err := h.Maintenance.Store.Releases(ctx)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i], err = h.Maintenance.Store.WithCounts(ctx, rs[i]); err != nil {
			return nil, err
		}
	}
	return views(rs), nil
}

// healthChanged halts the releases a deployment took within their bake time when it turns
// unhealthy. Only the vendor's own state events count: a customer account admitted to the
// bus cannot put byoc.state events (the bus policy), and the rule matches this account only;
// a forged one reaching here anyway is logged and ignored.
func (h *Handler) healthChanged(ctx context.Context, req Request, now time.Time) error {
	if req.Source != contract.SourceState || req.Account != h.VendorAccount || req.DetailType != contract.DetailTypeDeploymentHealthChanged {
		h.Log.WarnContext(ctx, "releases: event ignored: not the vendor's deployment health", "source", req.Source, "account", req.Account, "detailType", req.DetailType)
		return nil
	}
	var a servicestate.AlertDetail
	if err := json.Unmarshal(req.Detail, &a); err != nil || a.DeploymentID == "" {
		h.Log.WarnContext(ctx, "releases: health event without a deployment ignored", "eventId", req.ID)
		return nil
	}
	if a.Severity != health.SeverityCritical {
		return nil
	}
	halted, err := h.Maintenance.HealthRegressed(ctx, a.DeploymentID, fmt.Sprintf("%s -> %s (%s)", a.From, a.To, a.Reason), now)
	if len(halted) > 0 {
		h.Log.WarnContext(ctx, "releases halted by a health regression", "deploymentId", a.DeploymentID, "releases", strings.Join(halted, ","))
	}
	return err
}

func view(r store.ReleaseRecord) View {
	return View{ReleaseRecord: r, Waves: release.Summary(r.Progress)}
}

func views(rs []store.ReleaseRecord) []View {
	out := make([]View, 0, len(rs))
	for _, r := range rs {
		out = append(out, view(r))
	}
	return out
}

const maxActorLength = 128

func decode(payload json.RawMessage) (Request, error) {
	var req Request
	c := settings.Collector{Of: "releases request"}
	if err := c.DecodeStrict(payload, &req); err != nil {
		return Request{}, err
	}
	if req.DetailType != "" {
		return req, nil
	}
	switch req.Action {
	case "publish":
		if req.Release == nil {
			c.Add("release", "", "publish needs the release: {component, version, kind, ...}")
		}
	case "resume":
		if req.ReleaseID == "" {
			c.Add("releaseId", "", "resume needs the release id")
		}
	case "show", "advance":
	default:
		c.Add("action", req.Action, "must be publish, show, resume or advance")
	}
	if req.Release != nil && req.Action != "publish" {
		c.Add("release", "", "only publish takes a release")
	}
	if len(req.Actor) > maxActorLength {
		c.Add("actor", req.Actor[:20]+"…", fmt.Sprintf("must be at most %d characters", maxActorLength))
	}
	if err := c.Err(); err != nil {
		return Request{}, err
	}
	return req, nil
}
