package servicestate

import (
	"context"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
)

// PendingAlert is a recorded transition whose alert has not been published yet. Its key is
// also the alert's id: consumers deduplicate on it, because delivery is at least once.
type PendingAlert struct {
	PK, SK string
	Alert  health.Alert
}

// ID identifies the alert (and its history entry) across redeliveries.
func (p PendingAlert) ID() string { return p.PK + "/" + p.SK }

// historyItem is one entry of a deployment's health history. While its alert is unpublished
// it carries the sweep index keys (the outbox); publishing removes them.
type historyItem struct {
	health.Transition
	Severity    health.Severity `json:"severity"`
	Recovered   bool            `json:"recovered"`
	RecordedAt  time.Time       `json:"recordedAt"`
	PublishedAt *time.Time      `json:"publishedAt,omitempty"`
	SweepPK     string          `json:"sweepPK,omitempty"`
	SweepAt     int64           `json:"sweepAt,omitempty"`
}

// historySK orders a deployment's history by time; at one instant, a service's transition
// sorts before the deployment transition it causes.
func historySK(t health.Transition, deploymentVersion int64) string {
	if t.Scope == health.ScopeDeployment {
		// Two services can change in one observation (same At): the deployment's health
		// version keeps their deployment transitions apart.
		return fmt.Sprintf("%s%s#2-deployment#%012d", skHistoryPrefix, timeKey(t.At), deploymentVersion)
	}
	// The cause tells apart two transitions of one service observed at the same instant.
	return skHistoryPrefix + timeKey(t.At) + "#1-service#" + t.ServiceID + "#" + strings.ReplaceAll(t.Cause, " ", "_")
}

func (r *Repo) historyPut(t health.Transition, sk string, now time.Time) (*types.Put, PendingAlert, error) {
	alert, ok := health.AlertFor(t)
	if !ok {
		return nil, PendingAlert{}, fmt.Errorf("record transition %s: it changes nothing", t)
	}
	item, err := store.ItemWithKey(historyItem{
		Transition: t, Severity: alert.Severity, Recovered: alert.Recovered, RecordedAt: now,
		SweepPK: outboxPK, SweepAt: now.Unix(),
	}, store.DeploymentPK(t.DeploymentID), sk, kindHistory)
	if err != nil {
		return nil, PendingAlert{}, fmt.Errorf("encode transition %s: %w", t, err)
	}
	return &types.Put{
			TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
		},
		PendingAlert{PK: store.DeploymentPK(t.DeploymentID), SK: sk, Alert: alert}, nil
}

// MarkPublished takes a published alert out of the outbox. Marking an alert twice is
// harmless.
func (r *Repo) MarkPublished(ctx context.Context, p PendingAlert) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       store.Key(p.PK, p.SK),
		UpdateExpression:          aws.String("SET #published = :now REMOVE #sweepPK, #sweepAt"),
		ConditionExpression:       aws.String("attribute_exists(#sweepPK)"),
		ExpressionAttributeNames:  map[string]string{"#published": "publishedAt", "#sweepPK": AttrSweepPK, "#sweepAt": AttrSweepAt},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": str(r.now().Format(time.RFC3339Nano))},
	})
	if err != nil && !store.ConditionFailed(err) {
		return fmt.Errorf("mark alert %s published: %w", p.ID(), err)
	}
	return nil
}

// Unpublished returns the alerts recorded at or before cutoff that are still in the outbox
// (their publisher stopped before marking them), by a query of the sweep index.
func (r *Repo) Unpublished(ctx context.Context, cutoff time.Time) ([]PendingAlert, error) {
	keys, err := r.queryAll(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String(SweepIndex),
		KeyConditionExpression:    aws.String("sweepPK = :pk AND sweepAt <= :cutoff"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(outboxPK), ":cutoff": num(cutoff.Unix())},
	})
	if err != nil {
		return nil, fmt.Errorf("query unpublished alerts: %w", err)
	}
	var out []PendingAlert
	for _, k := range keys {
		pk, sk := stringAttr(k, AttrPK), stringAttr(k, AttrSK)
		item, err := r.get(ctx, pk, sk)
		if IsNotFound(err) {
			continue // deleted with its deployment since the index was read
		}
		if err != nil {
			return nil, err
		}
		if _, pending := item[AttrSweepPK]; !pending {
			continue // published since the index was read (GSIs are eventually consistent)
		}
		var h historyItem
		if err := store.UnmarshalItem(item, &h); err != nil {
			return nil, fmt.Errorf("decode transition %s/%s: %w", pk, sk, err)
		}
		out = append(out, PendingAlert{PK: pk, SK: sk, Alert: health.Alert{Transition: h.Transition, Severity: h.Severity, Recovered: h.Recovered}})
	}
	return out, nil
}

// History returns a deployment's health transitions, newest first, at most limit of them.
func (r *Repo) History(ctx context.Context, deploymentID string, limit int) ([]health.Transition, error) {
	out, err := r.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(r.table),
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :hist)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(store.DeploymentPK(deploymentID)), ":hist": str(skHistoryPrefix)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit)),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", deploymentID, err)
	}
	ts := make([]health.Transition, 0, len(out.Items))
	for _, it := range out.Items {
		var h historyItem
		if err := store.UnmarshalItem(it, &h); err != nil {
			return nil, fmt.Errorf("decode history of %s: %w", deploymentID, err)
		}
		ts = append(ts, h.Transition)
	}
	return ts, nil
}

func stringAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
