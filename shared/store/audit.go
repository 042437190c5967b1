package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/lifecycle"
)

// Audit says who did what. Every write of a deployment takes one.
type Audit struct {
	Actor  string // "invite:<caller>", "onboard", "provision:<execution>", ...
	Action string // "invite", "provision.start", "bootstrap.failed", ...
	Detail string
	// EventID, when set, makes the write idempotent for that event: the write stores an
	// event record in the same transaction and fails with ErrExists if the event was
	// already handled.
	EventID string
}

// AuditEntry is one stored audit record.
type AuditEntry struct {
	At      time.Time        `json:"at"`
	Actor   string           `json:"actor"`
	Action  string           `json:"action"`
	From    lifecycle.Status `json:"from,omitempty"`
	To      lifecycle.Status `json:"to,omitempty"`
	Detail  string           `json:"detail,omitempty"`
	EventID string           `json:"eventId,omitempty"`
}

const (
	kindAudit     = "audit"
	kindEvent     = "event"
	skAuditPrefix = "AUDIT#"
	skEvent       = "SEEN"
	// EventRetention bounds how long an event id is remembered. EventBridge retries a
	// delivery for up to 24 hours, so a week is ample.
	EventRetention = 7 * 24 * time.Hour
)

// auditTime formats with a fixed width (RFC3339Nano drops trailing zeros), so the sort key
// orders entries chronologically.
const auditTime = "2006-01-02T15:04:05.000000000Z"

func eventPK(id string) string { return "EVENT#" + id }

// auditItem builds the audit put of a write. The random suffix keeps two entries of the same
// nanosecond apart; the put is conditional so an entry is never overwritten.
func (s *Store) auditItem(id string, a Audit, from, to lifecycle.Status, now time.Time) (types.TransactWriteItem, error) {
	if a.Actor == "" || a.Action == "" {
		return types.TransactWriteItem{}, fmt.Errorf("audit of deployment %s: actor and action are required", id)
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return types.TransactWriteItem{}, err
	}
	entry := AuditEntry{At: now, Actor: a.Actor, Action: a.Action, From: from, To: to, Detail: a.Detail, EventID: a.EventID}
	item, err := ItemWithKey(entry, DeploymentPK(id), skAuditPrefix+now.Format(auditTime)+"#"+hex.EncodeToString(suffix[:]), kindAudit)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	}}, nil
}

// withEvent appends the event record of a.EventID (if any) to a transaction, as its last item.
func (s *Store) withEvent(items []types.TransactWriteItem, a Audit, now time.Time) ([]types.TransactWriteItem, error) {
	if a.EventID == "" {
		return items, nil
	}
	put, err := s.eventPut(a.EventID, a.Action, now)
	if err != nil {
		return nil, err
	}
	return append(items, types.TransactWriteItem{Put: put}), nil
}

type eventRecord struct {
	Action string    `json:"action"`
	At     time.Time `json:"at"`
}

func (s *Store) eventPut(id, action string, now time.Time) (*types.Put, error) {
	item, err := ItemWithKey(eventRecord{Action: action, At: now}, eventPK(id), skEvent, kindEvent)
	if err != nil {
		return nil, err
	}
	item[TTLAttribute] = epoch(now.Add(EventRetention))
	return &types.Put{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}, nil
}

// Record appends an audit entry that changes no state (a bootstrap stack rolled back, an
// event ignored on purpose). The deployment must exist. With a.EventID set it is idempotent
// per event: a second call fails with ErrExists and writes nothing.
func (s *Store) Record(ctx context.Context, id string, a Audit) error {
	now := s.now()
	audit, err := s.auditItem(id, a, "", "", now)
	if err != nil {
		return err
	}
	items := []types.TransactWriteItem{
		{ConditionCheck: &types.ConditionCheck{
			TableName: aws.String(s.table), Key: Key(DeploymentPK(id), skMeta), ConditionExpression: aws.String("attribute_exists(PK)"),
		}},
		audit,
	}
	if items, err = s.withEvent(items, a, now); err != nil {
		return err
	}
	if _, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}); err != nil {
		if failed, ok := cancelled(err); ok {
			switch {
			case at(failed, 0):
				return fmt.Errorf("deployment %s: %w", id, ErrNotFound)
			case at(failed, 2):
				return fmt.Errorf("event %s already handled: %w", a.EventID, ErrExists)
			}
		}
		return fmt.Errorf("record %s on deployment %s: %w", a.Action, id, err)
	}
	return nil
}

// AuditTrail returns a deployment's audit entries, oldest first.
func (s *Store) AuditTrail(ctx context.Context, id string) ([]AuditEntry, error) {
	var entries []AuditEntry
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :audit)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: DeploymentPK(id)}, ":audit": &types.AttributeValueMemberS{Value: skAuditPrefix},
		},
		ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("audit trail of %s: %w", id, err)
		}
		for _, it := range page.Items {
			var e AuditEntry
			if err := UnmarshalItem(it, &e); err != nil {
				return nil, fmt.Errorf("read audit entry of %s: %w", id, err)
			}
			entries = append(entries, e)
		}
	}
	return entries, nil
}

// MarkEvent remembers that an event was handled. It fails with ErrExists if it already was.
// Use it for handling that writes nothing else; writes that change a deployment take the
// event id in their Audit so both land in one transaction.
func (s *Store) MarkEvent(ctx context.Context, id, action string) error {
	put, err := s.eventPut(id, action, s.now())
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: put.TableName, Item: put.Item, ConditionExpression: put.ConditionExpression,
	})
	if ConditionFailed(err) {
		return fmt.Errorf("event %s already handled: %w", id, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("mark event %s: %w", id, err)
	}
	return nil
}

// EventSeen reports whether an event was handled (and is still remembered).
func (s *Store) EventSeen(ctx context.Context, id string) (bool, error) {
	var rec eventRecord
	err := s.get(ctx, eventPK(id), skEvent, &rec)
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	default:
		return false, err
	}
}

// AuditPage returns up to limit audit entries of a deployment, newest first, starting after
// the entry a previous page's token names; the token of the next page is "" on the last.
func (s *Store) AuditPage(ctx context.Context, id string, limit int, token string) ([]AuditEntry, string, error) {
	if limit < 1 || limit > MaxPage {
		return nil, "", fmt.Errorf("limit %d: must be from 1 to %d", limit, MaxPage)
	}
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.table),
		KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :audit)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: DeploymentPK(id)}, ":audit": &types.AttributeValueMemberS{Value: skAuditPrefix},
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(int32(limit)),
	}
	if token != "" {
		sk, err := hex.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(sk), skAuditPrefix) {
			return nil, "", ErrBadToken
		}
		in.ExclusiveStartKey = Key(DeploymentPK(id), string(sk))
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("audit trail of %s: %w", id, err)
	}
	entries := make([]AuditEntry, 0, len(out.Items))
	lastSK := ""
	for _, it := range out.Items {
		var e AuditEntry
		if err := UnmarshalItem(it, &e); err != nil {
			return nil, "", fmt.Errorf("read audit entry of %s: %w", id, err)
		}
		entries = append(entries, e)
		if sk, ok := it[AttrSK].(*types.AttributeValueMemberS); ok {
			lastSK = sk.Value
		}
	}
	next := ""
	if len(out.LastEvaluatedKey) > 0 && lastSK != "" {
		next = hex.EncodeToString([]byte(lastSK))
	}
	return entries, next, nil
}
