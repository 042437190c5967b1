package servicestate

import (
	"context"
	"errors"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Service is the stored state of one ClickHouse service: its last accepted report and the
// control plane's judgement of it.
type Service struct {
	DeploymentID string          `json:"deploymentId"`
	ServiceID    string          `json:"serviceId"`
	Hostname     string          `json:"hostname"`
	Status       statemsg.Status `json:"status"`
	Health       health.Health   `json:"health"`
	HealthReason string          `json:"healthReason"`
	// PrevHealth is the health before the last write (equal to Health unless that write
	// changed it).
	PrevHealth health.Health `json:"prevHealth"`
	// ChangeAt and ChangeCause describe the last write (a report, or the sweep finding the
	// service silent): the time and cause of the transition PrevHealth -> Health, if any.
	ChangeAt     time.Time         `json:"changeAt"`
	ChangeCause  string            `json:"changeCause"`
	OrderKey     string            `json:"orderKey"`
	ObservedAt   time.Time         `json:"observedAt"`
	LastSeenAt   time.Time         `json:"lastSeenAt"` // when the control plane received the report
	SeenAtMs     int64             `json:"seenAtMs"`   // LastSeenAt in Unix ms, for conditions
	Versions     statemsg.Versions `json:"versions"`
	Replicas     statemsg.Replicas `json:"replicas"`
	Warnings     int               `json:"warnings"`
	Errors       int               `json:"errors"`
	StorageBytes int64             `json:"storageBytes"`
	MessageID    string            `json:"messageId"` // SQS message id of the last report
	// Waiters counts workflow tasks waiting on a condition of this service: ingest looks for
	// waiters only when it is positive, so a report costs no extra read when nobody waits.
	Waiters int `json:"waiters"`
	// RefreshedCause is the ChangeCause whose deployment-health refresh is done. A change
	// writes the state first and refreshes the deployment after; a process that dies between
	// the two leaves them different, and whoever next reads the service finishes the refresh.
	RefreshedCause string `json:"refreshedCause,omitempty"`
}

// refreshPending reports whether the service's last change of health has not yet been
// carried to its deployment's health.
func (s Service) refreshPending() bool {
	return s.Reported() && s.ChangeCause != "" && s.RefreshedCause != s.ChangeCause
}

// Reported reports whether the service has accepted a report (an item may exist only
// because a task waits for the service to appear).
func (s Service) Reported() bool { return s.OrderKey != "" }

// NotTerminated lists the reporting services of a deployment not terminated: what a teardown
// waits for (the API's 409, the workflow's refusal).
func (r *Repo) NotTerminated(ctx context.Context, deploymentID string) ([]string, error) {
	svcs, err := r.Services(ctx, deploymentID)
	if err != nil {
		return nil, err
	}
	var live []string
	for _, s := range svcs {
		if !s.Terminated() {
			live = append(live, s.ServiceID)
		}
	}
	return live, nil
}

// Terminated reports whether the service was terminated on purpose (its exporter's last
// report says so). A teardown waits for every service to be, unless forced: a stopped or
// idle service still holds the customer's data and wakes on the next query.
func (s Service) Terminated() bool { return s.Status == statemsg.StatusTerminated }

// Outcome is what became of a report.
type Outcome string

const (
	// Applied: the report was newer than the stored state and replaced it.
	Applied Outcome = "applied"
	// Duplicate: the stored state is this very report (redelivery, or the exporter sent it
	// twice). Nothing is written; effects a cut-short first delivery may have missed are
	// finished idempotently.
	Duplicate Outcome = "duplicate"
	// OutOfOrder: a newer report is already stored; this one changes nothing.
	OutOfOrder Outcome = "out-of-order"
)

// Result is the effect of one report.
type Result struct {
	Outcome Outcome
	// Service is the state stored after the call.
	Service Service
	// Alerts are the transitions this report caused (service, then deployment) whose alert
	// is not published yet: the caller publishes them and marks them (MarkPublished).
	Alerts []PendingAlert
}

// Apply records a verified report of a service, received in the SQS message messageID.
//
// It reads the stored state (one consistent read) and then writes conditionally on that
// state still being the one it read, so concurrent deliveries for one service cannot
// interleave. A report that is not newer than the stored one costs no write at all. On the
// steady path (health unchanged) the write is one UpdateItem; a change of health writes the
// state and its history entry (with the alert in the outbox) in one transaction, then brings
// the deployment's health up to date.
//
// A change whose deployment refresh a dead process left undone (refreshPending) is finished
// first, whatever this report turns out to be: the same report again, an older one, or a
// newer one that changes nothing (which would otherwise never refresh the deployment).
func (r *Repo) Apply(ctx context.Context, m statemsg.Message, messageID string) (Result, error) {
	var finished []PendingAlert // alerts of finished refreshes, kept across contended attempts
	for range applyAttempts {
		cur, err := r.Service(ctx, m.DeploymentID, m.ServiceID)
		if err != nil && !IsNotFound(err) {
			return Result{}, err
		}
		done, err := r.finishRefresh(ctx, cur)
		finished = append(finished, done...)
		if err != nil {
			return Result{Alerts: finished}, err
		}
		var res Result
		if cur.Reported() && cur.OrderKey >= m.OrderKey() {
			res = r.notNewer(cur, m)
		} else if res, err = r.write(ctx, cur, m, messageID); errors.Is(err, errMoved) {
			continue // another delivery wrote this service since the read: read again
		}
		res.Alerts = append(finished, res.Alerts...)
		return res, err
	}
	return Result{}, fmt.Errorf("apply report %s of %s/%s: still contended after %d attempts: %w", m.OrderKey(), m.DeploymentID, m.ServiceID, applyAttempts, ErrConflict)
}

// applyAttempts bounds the read-write retries of one report under contention.
const applyAttempts = 5

// errMoved says the stored state changed between the read and the conditional write.
var errMoved = errors.New("state moved since it was read")

func (r *Repo) write(ctx context.Context, cur Service, m statemsg.Message, messageID string) (Result, error) {
	now := r.now()
	h, reason := health.OfReport(m)
	next := Service{
		DeploymentID: m.DeploymentID, ServiceID: m.ServiceID, Hostname: m.Hostname,
		Status: m.Status, Health: h, HealthReason: reason, PrevHealth: health.Unknown,
		OrderKey: m.OrderKey(), ObservedAt: m.ObservedAt.UTC(), LastSeenAt: now, SeenAtMs: now.UnixMilli(),
		Versions: m.Versions, Replicas: m.Replicas, Warnings: m.Warnings, Errors: m.Errors,
		StorageBytes: m.StorageBytes, MessageID: messageID, Waiters: cur.Waiters,
		ChangeAt: cur.ChangeAt, ChangeCause: cur.ChangeCause,
	}
	if cur.Reported() {
		next.PrevHealth = cur.Health
	}
	changed := next.PrevHealth != next.Health
	if changed {
		next.ChangeAt, next.ChangeCause = next.ObservedAt, "report "+next.OrderKey
	}
	update, err := r.stateUpdate(cur, next)
	if err != nil {
		return Result{}, err
	}
	res := Result{Outcome: Applied, Service: next}
	if !changed {
		_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: update.TableName, Key: update.Key, UpdateExpression: update.UpdateExpression,
			ConditionExpression: update.ConditionExpression, ExpressionAttributeNames: update.ExpressionAttributeNames,
			ExpressionAttributeValues: update.ExpressionAttributeValues,
		})
		if store.ConditionFailed(err) {
			return Result{}, errMoved
		}
		if err != nil {
			return Result{}, fmt.Errorf("apply report %s of %s/%s: %w", next.OrderKey, m.DeploymentID, m.ServiceID, err)
		}
		return res, nil
	}
	t := serviceTransition(next)
	histPut, pending, err := r.historyPut(t, historySK(t, 0), now)
	if err != nil {
		return Result{}, err
	}
	_, err = r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: update}, {Put: histPut},
	}})
	switch {
	case cancelledAt(err, 0):
		return Result{}, errMoved
	case err != nil:
		return Result{}, fmt.Errorf("apply report %s of %s/%s: %w", next.OrderKey, m.DeploymentID, m.ServiceID, err)
	}
	res.Alerts = []PendingAlert{pending}
	dep, err := r.refresh(ctx, next)
	if dep != nil {
		res.Alerts = append(res.Alerts, *dep)
	}
	return res, err
}

// finishRefresh does the deployment refresh of cur's last change if it is pending, and
// returns the deployment's alert if that refresh changed its health.
func (r *Repo) finishRefresh(ctx context.Context, cur Service) ([]PendingAlert, error) {
	if !cur.refreshPending() {
		return nil, nil
	}
	dep, err := r.refresh(ctx, cur)
	if dep == nil {
		return nil, err
	}
	return []PendingAlert{*dep}, err
}

// refresh brings the deployment's health up to date after s's last change (its
// transition is the cause), then records on the service that it did. The refresh is
// idempotent: done twice, the second finds the health already right and writes nothing.
func (r *Repo) refresh(ctx context.Context, s Service) (*PendingAlert, error) {
	dep, err := r.RefreshDeploymentHealth(ctx, s.DeploymentID, serviceTransition(s))
	if err != nil {
		return dep, err
	}
	// Done for this change: a stale service also leaves the sweep's index now (it stays
	// there until its refresh is done, so the next sweep finishes one a crash cut short).
	update := "SET #refreshed = :cause"
	if s.Health == health.Stale {
		update += " REMOVE #sweepPK, #sweepAt"
	}
	_, err = r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(r.table),
		Key:                 store.Key(store.DeploymentPK(s.DeploymentID), skServicePrefix+s.ServiceID),
		UpdateExpression:    aws.String(update),
		ConditionExpression: aws.String("#changeCause = :cause"),
		ExpressionAttributeNames: map[string]string{
			"#refreshed": "refreshedCause", "#changeCause": "changeCause", "#sweepPK": AttrSweepPK, "#sweepAt": AttrSweepAt,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{":cause": str(s.ChangeCause)},
	})
	if store.ConditionFailed(err) {
		err = nil // a newer change took over, with its own refresh
	}
	if err != nil {
		return dep, fmt.Errorf("record the health refresh of %s/%s: %w", s.DeploymentID, s.ServiceID, err)
	}
	return dep, nil
}

// serviceTransition is the transition a stored state records, derived from stored fields
// only, so a replay names the same history entry.
func serviceTransition(s Service) health.Transition {
	return health.Transition{
		Scope: health.ScopeService, DeploymentID: s.DeploymentID, ServiceID: s.ServiceID,
		From: s.PrevHealth, To: s.Health, Reason: s.HealthReason, At: s.ChangeAt, Cause: s.ChangeCause,
	}
}

// stateUpdate writes next's report fields, on condition that the stored report is still
// cur's. It leaves the waiter count alone: registrations change it concurrently.
func (r *Repo) stateUpdate(cur, next Service) (*types.Update, error) {
	versions, err := marshal(next.Versions)
	if err != nil {
		return nil, err
	}
	replicas, err := marshal(next.Replicas)
	if err != nil {
		return nil, err
	}
	fields := []struct {
		name  string
		value types.AttributeValue
	}{
		{"kind", str(kindService)}, {"deploymentId", str(next.DeploymentID)}, {"serviceId", str(next.ServiceID)},
		{"hostname", str(next.Hostname)}, {"status", str(string(next.Status))},
		{"health", str(string(next.Health))}, {"healthReason", str(next.HealthReason)}, {"prevHealth", str(string(next.PrevHealth))},
		{"changeAt", str(next.ChangeAt.Format(time.RFC3339Nano))}, {"changeCause", str(next.ChangeCause)},
		{"orderKey", str(next.OrderKey)}, {"observedAt", str(next.ObservedAt.Format(time.RFC3339Nano))},
		{"lastSeenAt", str(next.LastSeenAt.Format(time.RFC3339Nano))}, {"seenAtMs", num(next.SeenAtMs)},
		{"versions", versions}, {"replicas", replicas},
		{"warnings", num(next.Warnings)}, {"errors", num(next.Errors)}, {"storageBytes", num(next.StorageBytes)},
		{"messageId", str(next.MessageID)},
		// Back in the sweep index (a stale service left it), keyed by the minute last heard.
		{AttrSweepPK, str(liveShard(next.DeploymentID, next.ServiceID))}, {AttrSweepAt, num(minuteOf(next.LastSeenAt))},
	}
	names := make(map[string]string, len(fields))
	values := make(map[string]types.AttributeValue, len(fields)+1)
	set := make([]string, len(fields))
	for i, f := range fields {
		// Fixed-width placeholders: kumo substitutes names textually, so "#f1" must not be a
		// prefix of "#f12".
		n, v := fmt.Sprintf("#f%02d", i), fmt.Sprintf(":f%02d", i)
		names[n], values[v] = f.name, f.value
		set[i] = n + " = " + v
	}
	names["#orderKey"] = "orderKey"
	cond := "attribute_not_exists(#orderKey)"
	if cur.Reported() {
		cond = "#orderKey = :readKey"
		values[":readKey"] = str(cur.OrderKey)
	}
	return &types.Update{
		TableName:                 aws.String(r.table),
		Key:                       store.Key(store.DeploymentPK(next.DeploymentID), skServicePrefix+next.ServiceID),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ")),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}, nil
}

// notNewer is the outcome of a report that is not newer than the stored state: the same
// report again (a redelivery, or the exporter sent it twice) or an older one. Neither writes
// the state; a refresh its first delivery left undone was finished by Apply. An alert is not
// published again here: a copy processed at the same time as the original would announce it
// twice; an alert that a crashed delivery left unpublished is published by the sweep from the
// outbox.
func (r *Repo) notNewer(cur Service, m statemsg.Message) Result {
	if cur.OrderKey != m.OrderKey() {
		return Result{Outcome: OutOfOrder, Service: cur}
	}
	return Result{Outcome: Duplicate, Service: cur}
}

// Service returns the stored state of a service, or ErrNotFound.
func (r *Repo) Service(ctx context.Context, deploymentID, serviceID string) (Service, error) {
	item, err := r.get(ctx, store.DeploymentPK(deploymentID), skServicePrefix+serviceID)
	if err != nil {
		return Service{}, err
	}
	var s Service
	if err := store.UnmarshalItem(item, &s); err != nil {
		return Service{}, fmt.Errorf("decode service %s/%s: %w", deploymentID, serviceID, err)
	}
	return s, nil
}

// Services returns every service of a deployment that has reported, by service id.
func (r *Repo) Services(ctx context.Context, deploymentID string) ([]Service, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :svc)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(store.DeploymentPK(deploymentID)), ":svc": str(skServicePrefix)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("services of %s: %w", deploymentID, err)
	}
	var out []Service
	for _, it := range items {
		var s Service
		if err := store.UnmarshalItem(it, &s); err != nil {
			return nil, fmt.Errorf("decode a service of %s: %w", deploymentID, err)
		}
		if s.Reported() {
			out = append(out, s)
		}
	}
	return out, nil
}

// IsNotFound reports whether err says an item does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
