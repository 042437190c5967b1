package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// Starter starts upgrade executions.
type Starter interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
}

// Service is the maintenance of deployments: arming their schedules and handling their
// firings. Fields a caller does not use may stay empty (provision only arms).
type Service struct {
	Store             *store.Store
	Services          *servicestate.Repo
	Schedules         Schedules
	Notices           Publisher
	Workflows         Starter
	UpgradeMachineArn string
	Log               *slog.Logger
}

// UpgradeInput is the upgrade workflow's input. It is derived only from the firing (the
// deployment, purpose and occurrence), so a repeated firing starts the same execution with
// the same input: Step Functions answers it with the running one.
type UpgradeInput struct {
	DeploymentID string `json:"deploymentId"`
	Purpose      string `json:"purpose"`
	Key          string `json:"key"`
	// Closes is when the window closes (RFC 3339); empty off-cycle (no window to fit).
	Closes string `json:"closes"`
}

// ExecutionName names the upgrade execution of a firing: the deployment and the
// occurrence's scheduled instant.
func ExecutionName(deploymentID, purpose string, scheduled time.Time) string {
	return fmt.Sprintf("upgrade-%s-%s-%s", deploymentID, purpose, scheduled.UTC().Format("20060102T150405Z"))
}

// Maintainable reports whether a deployment has a schedule to keep: it was provisioned and is
// not being torn down.
func Maintainable(d store.Deployment) bool {
	return d.Maintenance != nil && (d.Status == lifecycle.Ready || d.Status == lifecycle.Updating)
}

// Rearm points the deployment's schedule at its next firing after now and records it (with
// a, whose Action says why; the write is conditional on d, so a concurrent change makes it
// ErrConflict and the caller reads again). m is the maintenance to store (d's, changed).
func (s *Service) Rearm(ctx context.Context, d store.Deployment, m store.Maintenance, now time.Time, a store.Audit) (store.Deployment, error) {
	next, err := NextArm(m, now)
	if err != nil {
		return store.Deployment{}, err
	}
	if err := s.Schedules.Arm(ctx, d.ID, next); err != nil {
		return store.Deployment{}, err
	}
	m.Armed = &next
	updated := d
	updated.Maintenance = &m
	if a.Detail == "" {
		a.Detail = fmt.Sprintf("next: %s %s at %s", next.Purpose, next.Key, next.At.Format(time.RFC3339))
	} else {
		a.Detail += fmt.Sprintf("; next: %s %s at %s", next.Purpose, next.Key, next.At.Format(time.RFC3339))
	}
	return s.Store.Update(ctx, d, updated, a)
}

// Versions is what a deployment runs, from its recorded stack versions and its services.
func (s *Service) Versions(ctx context.Context, d store.Deployment) (release.Versions, []servicestate.Service, error) {
	services, err := s.Services.Services(ctx, d.ID)
	if err != nil {
		return release.Versions{}, nil, fmt.Errorf("services of %s: %w", d.ID, err)
	}
	return Versions(d.StackVersions, services), services, nil
}

// Fire handles one firing of a deployment's schedule (at least once: a repeated firing finds
// its event recorded and changes nothing): a notice tells the customer what the coming
// window will do; an opening starts the upgrade when work is due; a security start starts
// the off-cycle upgrade. Then the schedule is armed for what comes next.
func (s *Service) Fire(ctx context.Context, f Fire) error {
	scheduled, err := time.Parse(time.RFC3339, f.ScheduledTime)
	if err != nil {
		return fmt.Errorf("maintenance firing of %s: scheduledTime %q is not RFC 3339 (the schedule's input must carry <aws.scheduler.scheduled-time>)", f.DeploymentID, f.ScheduledTime)
	}
	eventID := fmt.Sprintf("maintenance/%s/%s/%s", f.DeploymentID, f.Purpose, scheduled.UTC().Format(time.RFC3339))
	for attempt := 0; ; attempt++ {
		d, err := s.Store.Get(ctx, f.DeploymentID)
		if errors.Is(err, store.ErrNotFound) {
			s.Log.WarnContext(ctx, "maintenance: firing for an unknown deployment ignored", "deploymentId", f.DeploymentID)
			return nil
		}
		if err != nil {
			return err
		}
		if !Maintainable(d) {
			s.Log.InfoContext(ctx, "maintenance: firing ignored, nothing to maintain", "deploymentId", d.ID, "status", string(d.Status))
			return nil
		}
		err = s.fire(ctx, d, f, scheduled, eventID)
		if errors.Is(err, store.ErrExists) {
			s.Log.InfoContext(ctx, "maintenance: firing already handled", "deploymentId", d.ID, "event", eventID)
			return nil
		}
		if errors.Is(err, store.ErrConflict) && attempt < 3 {
			continue // the deployment changed meanwhile (an upgrade step): decide again
		}
		return err
	}
}

func (s *Service) fire(ctx context.Context, d store.Deployment, f Fire, scheduled time.Time, eventID string) error {
	m := *d.Maintenance
	now := clock.Now()
	a := m.Armed
	// Only the firing the schedule was armed for acts, and not before its time: a duplicate
	// of one already handled (the arm moved on), a stale retry, or an invocation forged by
	// someone who may invoke the function (show tells the armed firing) is refused.
	if a == nil || a.Purpose != f.Purpose || a.Key != f.Key || scheduled.Sub(a.At).Abs() > time.Minute || now.Before(a.At.Add(-time.Minute)) {
		seen, err := s.Store.EventSeen(ctx, eventID)
		if err != nil {
			return err
		}
		if seen {
			return store.ErrExists
		}
		armed := "nothing"
		if a != nil {
			armed = fmt.Sprintf("%s %s at %s", a.Purpose, a.Key, a.At.Format(time.RFC3339))
		}
		s.Log.WarnContext(ctx, "maintenance: firing refused, not the armed one", "deploymentId", d.ID, "purpose", f.Purpose, "key", f.Key, "scheduledTime", f.ScheduledTime, "armed", armed)
		err = s.Store.Record(ctx, d.ID, store.Audit{Actor: "maintenance", Action: "maintenance.refused", EventID: "refused/" + eventID,
			Detail: fmt.Sprintf("firing %s %s at %s refused: the schedule is armed for %s", f.Purpose, f.Key, f.ScheduledTime, armed)})
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		return s.resync(ctx, d, now)
	}
	rs, err := s.Store.Releases(ctx)
	if err != nil {
		return err
	}
	cur, _, err := s.Versions(ctx, d)
	if err != nil {
		return err
	}
	audit := store.Audit{Actor: "maintenance", Action: "maintenance." + f.Purpose, EventID: eventID}
	switch f.Purpose {
	case PurposeNotice:
		due := Due(rs, m, cur, false)
		audit.Detail = fmt.Sprintf("window %s: nothing due", f.Key)
		if len(due) > 0 {
			o, err := m.Window.Current(scheduled.Add(UpcomingLead - time.Minute))
			if err != nil {
				return err
			}
			n := Notice{NoticeID: "upcoming/" + d.ID + "/" + f.Key, DeploymentID: d.ID, CustomerID: d.Settings.CustomerID, Window: &m.Window, Occurrence: &o,
				Releases: Releases(due), Steps: release.Describe(release.Plan(cur, due))}
			if err := s.Notices.Publish(ctx, contract.DetailTypeMaintenanceUpcoming, n); err != nil {
				return err
			}
			audit.Detail = fmt.Sprintf("window %s: told the customer %s is due", f.Key, ids(due))
		}
	case PurposeOpen:
		if slices.Contains(m.Deferred, f.Key) {
			audit.Detail = fmt.Sprintf("window %s deferred by the customer", f.Key)
			break
		}
		m.Deferred = nil // a window that opens ends the deferrals in a row
		o, err := m.Window.Current(scheduled)
		if err != nil {
			return err
		}
		audit.Detail, _, err = s.start(ctx, d, &m, Due(rs, m, cur, false), UpgradeInput{DeploymentID: d.ID, Purpose: PurposeOpen, Key: f.Key, Closes: o.Closes.UTC().Format(time.RFC3339)}, scheduled)
		if err != nil {
			return err
		}
	case PurposeSecurity:
		due := Due(rs, m, cur, true)
		var started bool
		audit.Detail, started, err = s.start(ctx, d, &m, due, UpgradeInput{DeploymentID: d.ID, Purpose: PurposeSecurity, Key: f.Key}, scheduled)
		if err != nil {
			return err
		}
		m.Security = nil
		if !started && len(due) > 0 {
			// Another upgrade still runs: the fix waits a little, never for a window that may
			// come after its deadline.
			m.Security = &store.Arm{At: now.Add(securityRetry).UTC().Truncate(time.Second), Purpose: PurposeSecurity, Key: f.Key}
		}
	default:
		return fmt.Errorf("maintenance firing of %s: purpose %q is not notice, open or security", d.ID, f.Purpose)
	}
	// Armed from the later of the firing's time and now: a firing handled late (retried,
	// redriven from the DLQ) must not arm an instant already past.
	from := scheduled
	if now.After(from) {
		from = now
	}
	_, err = s.Rearm(ctx, d, m, from, audit)
	return err
}

// firingRetries is how long Scheduler retries a firing it could not deliver (Schedules.Arm's
// retry policy): an arm older than that was lost.
const firingRetries = time.Hour

// securityRetry is how long a security start that found another upgrade running waits.
const securityRetry = 15 * time.Minute

// resync points the deployment's schedule at what its record says is armed (a write that
// moved the schedule but lost its record's update leaves them apart), or arms the next
// firing when that is already past. A refused firing calls it, so the schedule never stops.
func (s *Service) resync(ctx context.Context, d store.Deployment, now time.Time) error {
	a := d.Maintenance.Armed
	switch {
	case a != nil && a.At.After(now):
		return s.Schedules.Arm(ctx, d.ID, *a)
	case a != nil && a.At.After(now.Add(-firingRetries)):
		return nil // its firing is due, or Scheduler still retries it
	}
	_, err := s.Rearm(ctx, d, *d.Maintenance, now, store.Audit{Actor: "maintenance", Action: "maintenance.armed", Detail: "re-armed after a stale firing"})
	if errors.Is(err, store.ErrConflict) {
		return nil // someone else moved it on
	}
	return err
}

// start starts the upgrade of what is due, unless nothing is or another upgrade runs, and
// says what it did and whether the upgrade runs (started now, or by an earlier try).
func (s *Service) start(ctx context.Context, d store.Deployment, m *store.Maintenance, due []release.Release, in UpgradeInput, scheduled time.Time) (string, bool, error) {
	what := in.Purpose + " " + in.Key
	name := ExecutionName(d.ID, in.Purpose, scheduled)
	if m.Last != nil && m.Last.Execution == name {
		// This firing's upgrade ran already (the firing is written again after its upgrade
		// finished): its record stands.
		return fmt.Sprintf("%s: started %s", what, name), true, nil
	}
	if len(due) == 0 {
		m.Last = &store.Run{Key: in.Key, Outcome: "nothing-due", At: scheduled}
		return what + ": nothing due", false, nil
	}
	if d.Status == lifecycle.Updating {
		if strings.HasSuffix(d.Execution, ":"+name) {
			// This firing's own upgrade took the deployment before the firing was recorded.
			return fmt.Sprintf("%s: started %s for %s", what, name, ids(due)), true, nil
		}
		return fmt.Sprintf("%s: %s due, but upgrade %s still runs", what, ids(due), d.Execution), false, nil
	}
	body, _ := json.Marshal(in)
	_, err := s.Workflows.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(s.UpgradeMachineArn), Name: aws.String(name), Input: aws.String(string(body)),
	})
	var exists *sfntypes.ExecutionAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return "", false, fmt.Errorf("start upgrade %s: %w", name, err)
	}
	m.Last = &store.Run{Execution: name, Key: in.Key, Outcome: "started", At: scheduled}
	return fmt.Sprintf("%s: started %s for %s", what, name, ids(due)), true, nil
}

func ids(rs []release.Release) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return strings.Join(out, ", ")
}
