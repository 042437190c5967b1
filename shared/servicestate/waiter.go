package servicestate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Condition is a state a workflow task waits for: every field that is set must hold. For
// example {serviceId: s, health: healthy, clickhouseVersion: "24.8"} is "service s reports
// ClickHouse 24.8 and is healthy".
type Condition struct {
	ServiceID         string        `json:"serviceId"`
	Health            health.Health `json:"health,omitempty"`
	ClickHouseVersion string        `json:"clickhouseVersion,omitempty"`
	OperatorVersion   string        `json:"operatorVersion,omitempty"`
	// ReadyReplicas, when positive, is the least number of ready replicas.
	ReadyReplicas int `json:"readyReplicas,omitempty"`
	// CommandID, when set, must have succeeded; if the agent reports it failed, the wait
	// fails at once instead of running into its timeout.
	CommandID string `json:"commandId,omitempty"`
}

// Validate checks a condition; the error names the field and the rule.
func (c Condition) Validate() error {
	var bad []string
	if !statemsg.ValidID(c.ServiceID) {
		bad = append(bad, "serviceId: "+statemsg.IDRule)
	}
	if c.Health != "" && (!c.Health.Valid() || c.Health == health.Unknown) {
		bad = append(bad, "health: must be one of healthy, idle, stopped, degraded, stale, unhealthy")
	}
	if c.ReadyReplicas < 0 || c.ReadyReplicas > statemsg.MaxReplicas {
		bad = append(bad, fmt.Sprintf("readyReplicas: must be between 0 and %d", statemsg.MaxReplicas))
	}
	if c.CommandID != "" && !statemsg.ValidID(c.CommandID) {
		bad = append(bad, "commandId: "+statemsg.IDRule)
	}
	if c.Health == "" && c.ClickHouseVersion == "" && c.OperatorVersion == "" && c.ReadyReplicas == 0 && c.CommandID == "" {
		bad = append(bad, "condition: at least one of health, clickhouseVersion, operatorVersion, readyReplicas, commandId is required")
	}
	if len(bad) > 0 {
		return fmt.Errorf("invalid wait condition: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Evaluate tells whether s (and cmd, the record of c.CommandID, nil if c names none or it
// is unknown) satisfies the condition, or makes it impossible: failed says why the wait
// must end in failure (the awaited command failed).
func (c Condition) Evaluate(s Service, cmd *CommandRecord) (satisfied bool, failed string) {
	if c.CommandID != "" {
		if cmd != nil && cmd.Status == CommandFailed {
			return false, fmt.Sprintf("command %s failed: %s", c.CommandID, cmd.Detail)
		}
		if cmd == nil || cmd.Status != CommandSucceeded {
			return false, ""
		}
	}
	if !s.Reported() {
		return false, ""
	}
	switch {
	case c.Health != "" && s.Health != c.Health,
		c.ClickHouseVersion != "" && s.Versions.ClickHouse != c.ClickHouseVersion,
		c.OperatorVersion != "" && s.Versions.Operator != c.OperatorVersion,
		c.ReadyReplicas > 0 && s.Replicas.Ready < c.ReadyReplicas:
		return false, ""
	}
	return true, ""
}

// Waiter is a workflow task waiting, with its task token, for a condition.
type Waiter struct {
	ID           string    `json:"id"`
	DeploymentID string    `json:"deploymentId"`
	Condition    Condition `json:"condition"`
	TaskToken    string    `json:"taskToken"`
	RegisteredAt time.Time `json:"registeredAt"`
	// ExpiresAt is when the task times out in Step Functions; after it, the token is dead
	// and the waiter is garbage (TTL removes it).
	ExpiresAt time.Time `json:"expiresAt"`
	TTL       int64     `json:"ttl"`
}

// Expired reports whether the task has timed out at now.
func (w Waiter) Expired(now time.Time) bool { return !now.Before(w.ExpiresAt) }

// waiterID is derived from the task token, so registering the same task twice (a retried
// Lambda invocation) yields the same waiter.
func waiterID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:16])
}

func waiterSK(serviceID, id string) string { return skWaiterPrefix + serviceID + "#" + id }

// ttlGrace keeps an expired waiter a little beyond its task's timeout, for diagnosis.
const ttlGrace = time.Hour

// MaxWait bounds a wait: Step Functions tasks can wait up to a year, but a state condition
// not met within a week is a failure to investigate, not to wait out.
const MaxWait = 7 * 24 * time.Hour

// RegisterWaiter records a task waiting for cond on a deployment's service, for at most
// timeout, and counts it on the service item (creating the item if the service has not
// reported yet) so ingest knows to look. Registering the same token again returns the
// waiter already stored and counts nothing twice.
func (r *Repo) RegisterWaiter(ctx context.Context, deploymentID string, cond Condition, token string, timeout time.Duration) (Waiter, error) {
	switch {
	case !settings.ValidDeploymentID(deploymentID):
		return Waiter{}, fmt.Errorf("register waiter: deploymentId: must be %s", settings.DeploymentIDRule)
	case token == "" || len(token) > 1024:
		return Waiter{}, fmt.Errorf("register waiter: taskToken: required, at most 1024 characters")
	case timeout <= 0 || timeout > MaxWait:
		return Waiter{}, fmt.Errorf("register waiter: timeout: must be between 1s and %s", MaxWait)
	}
	if err := cond.Validate(); err != nil {
		return Waiter{}, fmt.Errorf("register waiter: %w", err)
	}
	now := r.now()
	w := Waiter{
		ID: waiterID(token), DeploymentID: deploymentID, Condition: cond, TaskToken: token,
		RegisteredAt: now, ExpiresAt: now.Add(timeout), TTL: now.Add(timeout + ttlGrace).Unix(),
	}
	item, err := store.ItemWithKey(w, store.DeploymentPK(deploymentID), waiterSK(cond.ServiceID, w.ID), kindWaiter)
	if err != nil {
		return Waiter{}, err
	}
	_, err = r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Update: &types.Update{
			TableName:                 aws.String(r.table),
			Key:                       store.Key(store.DeploymentPK(deploymentID), skServicePrefix+cond.ServiceID),
			UpdateExpression:          aws.String("ADD #waiters :one"),
			ExpressionAttributeNames:  map[string]string{"#waiters": "waiters"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": num(1)},
		}},
	}})
	if err == nil {
		return w, nil
	}
	if !cancelledAt(err, 0) {
		return Waiter{}, fmt.Errorf("register waiter on %s/%s: %w", deploymentID, cond.ServiceID, err)
	}
	item, err = r.get(ctx, store.DeploymentPK(deploymentID), waiterSK(cond.ServiceID, w.ID))
	if err != nil {
		return Waiter{}, err
	}
	var existing Waiter
	if err := store.UnmarshalItem(item, &existing); err != nil {
		return Waiter{}, fmt.Errorf("decode waiter: %w", err)
	}
	return existing, nil
}

// Waiters returns the tasks waiting on a service.
func (r *Repo) Waiters(ctx context.Context, deploymentID, serviceID string) ([]Waiter, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :w)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(store.DeploymentPK(deploymentID)), ":w": str(waiterSK(serviceID, ""))},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("waiters on %s/%s: %w", deploymentID, serviceID, err)
	}
	out := make([]Waiter, 0, len(items))
	for _, it := range items {
		var w Waiter
		if err := store.UnmarshalItem(it, &w); err != nil {
			return nil, fmt.Errorf("decode waiter on %s/%s: %w", deploymentID, serviceID, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// RemoveWaiter deletes a waiter and uncounts it, in one transaction. It reports false when
// the waiter was already gone (another invocation resumed it).
func (r *Repo) RemoveWaiter(ctx context.Context, w Waiter) (bool, error) {
	_, err := r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{
			TableName: aws.String(r.table), Key: store.Key(store.DeploymentPK(w.DeploymentID), waiterSK(w.Condition.ServiceID, w.ID)),
			ConditionExpression: aws.String("attribute_exists(PK)"),
		}},
		{Update: &types.Update{
			TableName:                 aws.String(r.table),
			Key:                       store.Key(store.DeploymentPK(w.DeploymentID), skServicePrefix+w.Condition.ServiceID),
			UpdateExpression:          aws.String("ADD #waiters :minus"),
			ConditionExpression:       aws.String("#waiters > :zero"),
			ExpressionAttributeNames:  map[string]string{"#waiters": "waiters"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":minus": num(-1), ":zero": num(0)},
		}},
	}})
	if err == nil {
		return true, nil
	}
	if cancelledAt(err, 0) {
		return false, nil
	}
	if cancelledAt(err, 1) {
		// The count is already zero (a reset raced us): delete the waiter alone.
		_, err = r.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
			TableName: aws.String(r.table), Key: store.Key(store.DeploymentPK(w.DeploymentID), waiterSK(w.Condition.ServiceID, w.ID)),
			ConditionExpression: aws.String("attribute_exists(PK)"),
		})
		if store.ConditionFailed(err) {
			return false, nil
		}
		if err == nil {
			return true, nil
		}
	}
	return false, fmt.Errorf("remove waiter %s on %s/%s: %w", w.ID, w.DeploymentID, w.Condition.ServiceID, err)
}

// ResetWaiterCount sets a service's waiter count to zero if it is still seen. TTL deletes
// expired waiters without uncounting them; when ingest finds no waiter behind a positive
// count it resets the count, so a service does not pay a query per report forever. The
// condition keeps a registration that raced in (and raised the count) counted.
func (r *Repo) ResetWaiterCount(ctx context.Context, deploymentID, serviceID string, seen int) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       store.Key(store.DeploymentPK(deploymentID), skServicePrefix+serviceID),
		UpdateExpression:          aws.String("SET #waiters = :zero"),
		ConditionExpression:       aws.String("#waiters = :seen"),
		ExpressionAttributeNames:  map[string]string{"#waiters": "waiters"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":seen": num(seen)},
	})
	if err != nil && !store.ConditionFailed(err) {
		return fmt.Errorf("reset waiter count of %s/%s: %w", deploymentID, serviceID, err)
	}
	return nil
}
