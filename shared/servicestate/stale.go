package servicestate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/store"
)

// ServiceKey names a service.
type ServiceKey struct {
	DeploymentID string
	ServiceID    string
}

// SilentServices returns the live services last heard before cutoff, by querying each shard
// of the sweep index (never a scan). The index holds a service's last-heard minute, so a
// service heard in cutoff's own minute is found by the next sweep: staleness is detected up
// to a minute late. The result is a list of candidates; MarkStale checks each exactly.
func (r *Repo) SilentServices(ctx context.Context, cutoff time.Time) ([]ServiceKey, error) {
	var out []ServiceKey
	for shard := range LiveShards {
		items, err := r.queryAll(ctx, &dynamodb.QueryInput{
			IndexName:              aws.String(SweepIndex),
			KeyConditionExpression: aws.String("sweepPK = :pk AND sweepAt < :minute"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(fmt.Sprintf("LIVE#%d", shard)), ":minute": num(minuteOf(cutoff)),
			},
		})
		if err != nil {
			return nil, fmt.Errorf("query silent services (shard %d): %w", shard, err)
		}
		for _, it := range items {
			dep, ok1 := strings.CutPrefix(stringAttr(it, AttrPK), "DEP#")
			svc, ok2 := strings.CutPrefix(stringAttr(it, AttrSK), skServicePrefix)
			if ok1 && ok2 {
				out = append(out, ServiceKey{DeploymentID: dep, ServiceID: svc})
			}
		}
	}
	return out, nil
}

// MarkStale marks a service stale if it has been silent since before cutoff and is not
// stale already: its health becomes stale, it leaves the sweep index (so it raises one
// alert, not one per sweep), and the transition is recorded with it in one transaction.
// The deployment's health follows. It returns the alerts to publish; none when the service
// reported meanwhile or another sweep got there first.
func (r *Repo) MarkStale(ctx context.Context, k ServiceKey, cutoff time.Time) ([]PendingAlert, error) {
	cur, err := r.Service(ctx, k.DeploymentID, k.ServiceID)
	if IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if cur.Health == health.Stale {
		// Marked by an earlier sweep: only its deployment refresh may be left to do.
		return r.finishRefresh(ctx, cur)
	}
	if !cur.Reported() || cur.SeenAtMs >= cutoff.UnixMilli() {
		return nil, nil
	}
	now := r.now()
	silent := now.Sub(cur.LastSeenAt).Round(time.Second)
	t := health.Transition{
		Scope: health.ScopeService, DeploymentID: k.DeploymentID, ServiceID: k.ServiceID,
		From: cur.Health, To: health.Stale, Reason: fmt.Sprintf("no report for %s", silent), At: now,
		Cause: "silent since " + cur.LastSeenAt.Format(time.RFC3339),
	}
	histPut, pending, err := r.historyPut(t, historySK(t, 0), now)
	if err != nil {
		return nil, err
	}
	_, err = r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: aws.String(r.table),
			Key:       store.Key(store.DeploymentPK(k.DeploymentID), skServicePrefix+k.ServiceID),
			// It stays in the sweep's index until its deployment is refreshed (refresh).
			UpdateExpression: aws.String("SET #prev = :old, #health = :stale, #reason = :reason, " +
				"#changeAt = :at, #changeCause = :cause"),
			// The report read above is still the latest, and still silent since the cutoff.
			ConditionExpression: aws.String("#orderKey = :orderKey AND #seen < :cutoff AND #health = :old"),
			ExpressionAttributeNames: map[string]string{
				"#prev": "prevHealth", "#health": "health", "#reason": "healthReason", "#changeAt": "changeAt",
				"#changeCause": "changeCause", "#orderKey": "orderKey", "#seen": "seenAtMs",
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":stale": str(string(health.Stale)), ":reason": str(t.Reason),
				":at": str(now.Format(time.RFC3339Nano)), ":cause": str(t.Cause),
				":orderKey": str(cur.OrderKey), ":cutoff": num(cutoff.UnixMilli()), ":old": str(string(cur.Health)),
			},
		}},
		{Put: histPut},
	}})
	if err != nil {
		if cancelledAt(err, 0) || cancelledAt(err, 1) {
			return nil, nil // it reported, or another sweep marked it, since the read
		}
		return nil, fmt.Errorf("mark %s/%s stale: %w", k.DeploymentID, k.ServiceID, err)
	}
	cur.PrevHealth, cur.Health, cur.HealthReason, cur.ChangeCause = cur.Health, health.Stale, t.Reason, t.Cause
	cur.ChangeAt, _ = time.Parse(time.RFC3339Nano, now.Format(time.RFC3339Nano)) // as stored
	alerts := []PendingAlert{pending}
	dep, err := r.refresh(ctx, cur)
	if dep != nil {
		alerts = append(alerts, *dep)
	}
	return alerts, err
}
