package servicestate

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/store"
)

// DeploymentHealth is a deployment's health: the worst of its services'.
type DeploymentHealth struct {
	DeploymentID string        `json:"deploymentId"`
	Health       health.Health `json:"health"`
	Reason       string        `json:"reason"`
	Services     int           `json:"services"` // reporting services when the health last changed
	Version      int64         `json:"version"`  // bumped by each change; the optimistic lock
	ChangedAt    time.Time     `json:"changedAt"`
}

// refreshAttempts bounds the optimistic retries when reports of several services of one
// deployment change its health at the same moment; each retry re-reads, so the last writer
// always wrote from a complete view.
const refreshAttempts = 5

// DeploymentHealth returns a deployment's stored health; a deployment no service has
// reported for is Unknown at version 0.
func (r *Repo) DeploymentHealth(ctx context.Context, deploymentID string) (DeploymentHealth, error) {
	item, err := r.get(ctx, store.DeploymentPK(deploymentID), skHealth)
	if IsNotFound(err) {
		return DeploymentHealth{DeploymentID: deploymentID, Health: health.Unknown}, nil
	}
	if err != nil {
		return DeploymentHealth{}, err
	}
	var d DeploymentHealth
	if err := store.UnmarshalItem(item, &d); err != nil {
		return DeploymentHealth{}, fmt.Errorf("decode health of %s: %w", deploymentID, err)
	}
	return d, nil
}

// batchGetKeys is BatchGetItem's limit of keys per call.
const batchGetKeys = 100

// unprocessedRounds bounds the calls that ask again for the keys DynamoDB left unprocessed
// (it does under throttling), each after a longer pause.
const unprocessedRounds = 5

// DeploymentHealths returns the stored health of many deployments, keyed by id, in one
// BatchGetItem per hundred: a page of the fleet costs one read, not one per deployment. A
// deployment no service has reported for is Unknown, as in DeploymentHealth.
func (r *Repo) DeploymentHealths(ctx context.Context, ids []string) (map[string]DeploymentHealth, error) {
	out := make(map[string]DeploymentHealth, len(ids))
	unique := make([]string, 0, len(ids)) // BatchGetItem refuses a key asked twice
	for _, id := range ids {
		if _, dup := out[id]; !dup {
			out[id] = DeploymentHealth{DeploymentID: id, Health: health.Unknown}
			unique = append(unique, id)
		}
	}
	ids = unique
	for start := 0; start < len(ids); start += batchGetKeys {
		keys := make([]map[string]types.AttributeValue, 0, batchGetKeys)
		for _, id := range ids[start:min(start+batchGetKeys, len(ids))] {
			keys = append(keys, store.Key(store.DeploymentPK(id), skHealth))
		}
		request := map[string]types.KeysAndAttributes{r.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		pause := 50 * time.Millisecond
		for round := 0; len(request) > 0; round++ {
			if round == unprocessedRounds {
				return nil, fmt.Errorf("read the health of %d deployments: %d keys after %d calls: %w",
					len(ids), len(request[r.table].Keys), round, ErrUnprocessed)
			}
			if round > 0 {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(pause):
				}
				pause *= 2
			}
			got, err := r.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: request})
			if err != nil {
				return nil, fmt.Errorf("read the health of %d deployments: %w", len(ids), err)
			}
			for _, item := range got.Responses[r.table] {
				var d DeploymentHealth
				if err := store.UnmarshalItem(item, &d); err != nil {
					return nil, fmt.Errorf("decode a deployment's health: %w", err)
				}
				if _, asked := out[d.DeploymentID]; asked {
					out[d.DeploymentID] = d
				}
			}
			request = got.UnprocessedKeys
		}
	}
	return out, nil
}

// RefreshDeploymentHealth recomputes a deployment's health from its services after cause
// (a service transition) and stores it when it changed, with the transition in the history
// and its alert in the outbox, in one transaction. It returns that alert, or nil when the
// deployment's health did not change.
func (r *Repo) RefreshDeploymentHealth(ctx context.Context, deploymentID string, cause health.Transition) (*PendingAlert, error) {
	for range refreshAttempts {
		// The stored health first, then the services: a service write that this read of
		// the services misses happens after the health was read, so that service's own
		// refresh either conflicts with this one on the version (and one of them re-reads)
		// or reads the health this one writes and recomputes. Reading in the other order
		// could store a view older than the health it replaces.
		cur, err := r.DeploymentHealth(ctx, deploymentID)
		if err != nil {
			return nil, err
		}
		worst, reason, count, err := r.worstService(ctx, deploymentID)
		if err != nil {
			return nil, err
		}
		if cur.Health == worst {
			return nil, nil
		}
		now := r.now()
		next := DeploymentHealth{
			DeploymentID: deploymentID, Health: worst, Reason: reason, Services: count,
			Version: cur.Version + 1, ChangedAt: now,
		}
		t := health.Transition{
			Scope: health.ScopeDeployment, DeploymentID: deploymentID, From: cur.Health, To: worst,
			Reason: reason, At: cause.At, Cause: cause.Cause,
		}
		histPut, pending, err := r.historyPut(t, historySK(t, next.Version), now)
		if err != nil {
			return nil, err
		}
		item, err := store.ItemWithKey(next, store.DeploymentPK(deploymentID), skHealth, kindHealth)
		if err != nil {
			return nil, err
		}
		cond := "attribute_not_exists(PK)"
		values, names := map[string]types.AttributeValue(nil), map[string]string(nil)
		if cur.Version > 0 {
			cond = "#version = :v"
			values, names = map[string]types.AttributeValue{":v": num(cur.Version)}, map[string]string{"#version": "version"}
		}
		_, err = r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String(cond), ExpressionAttributeNames: names, ExpressionAttributeValues: values}},
			{Put: histPut},
		}})
		if err == nil {
			return &pending, nil
		}
		if !cancelledAt(err, 0) {
			return nil, fmt.Errorf("store health of %s: %w", deploymentID, err)
		}
		// Another report changed the deployment's health first: read again.
	}
	return nil, fmt.Errorf("store health of %s: still contended after %d attempts: %w", deploymentID, refreshAttempts, ErrConflict)
}

// worstService reads the health of every service of a deployment (one query of the
// deployment's partition, projecting only what is needed) and names the worst.
func (r *Repo) worstService(ctx context.Context, deploymentID string) (health.Health, string, int, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :svc)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(store.DeploymentPK(deploymentID)), ":svc": str(skServicePrefix)},
		ProjectionExpression:      aws.String("#s, #h, #r"),
		ExpressionAttributeNames:  map[string]string{"#s": "serviceId", "#h": "health", "#r": "healthReason"},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return "", "", 0, fmt.Errorf("read services of %s: %w", deploymentID, err)
	}
	worst, reason, count := health.Unknown, "no service has reported", 0
	for _, it := range items {
		h := health.Health(stringAttr(it, "health"))
		if h == "" {
			continue // an item created only by a waiter: not reported yet
		}
		count++
		if h.Severity() > worst.Severity() {
			worst = h
			reason = fmt.Sprintf("service %s is %s: %s", stringAttr(it, "serviceId"), h, stringAttr(it, "healthReason"))
		}
	}
	if count > 0 && worst == health.Healthy {
		reason = fmt.Sprintf("all %d services healthy", count)
	}
	return worst, reason, count, nil
}
