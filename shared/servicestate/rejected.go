package servicestate

import (
	"context"
	"fmt"
	"time"

	"github.com/byocloud/byoc/shared/store"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Rejection records why a state message was refused. The message itself stays untouched in
// the queue (and then the DLQ); the record says why it is there, so operators need not
// reverse-engineer it.
type Rejection struct {
	MessageID string `json:"messageId"` // SQS message id: the key, stable across redeliveries
	Reason    string `json:"reason"`    // oversized, malformed, unknown-version, invalid, unknown-deployment, no-sender, forged-sender
	Detail    string `json:"detail"`
	// Security marks a message whose sender may not speak for the deployment it names.
	Security bool   `json:"security"`
	SenderID string `json:"senderId,omitempty"`
	// ClaimedDeploymentID is the deployment the message names, when it could be read.
	ClaimedDeploymentID string    `json:"claimedDeploymentId,omitempty"`
	BodySHA256          string    `json:"bodySha256"`
	BodyBytes           int       `json:"bodyBytes"`
	SentAt              time.Time `json:"sentAt"`
	RecordedAt          time.Time `json:"recordedAt"`
	// TTL (epoch seconds) expires the record after RejectionRetention: a flood of forged
	// messages must not grow the table for ever.
	TTL int64 `json:"ttl,omitempty"`
	// Pending: not yet counted in its sender's window and, when it opened the window,
	// announced. A redelivery of a pending rejection (the ingest stopped in between) finishes
	// the job. Records written before the field existed are not pending.
	Pending bool `json:"pending,omitempty"`
	// CountedIn is the start of the window the rejection was counted in (RFC 3339), once it
	// was: a redelivery counts nothing twice.
	CountedIn string `json:"countedIn,omitempty"`
}

// RejectionRetention is how long a rejection record is kept (the messages themselves stay
// 14 days in the state DLQ).
const RejectionRetention = 30 * 24 * time.Hour

func rejectedPK(sentAt time.Time) string { return pkRejected + sentAt.UTC().Format("2006-01-02") }

// RecordRejection records a rejected message once (same SQS message id and sent time: every
// redelivery finds the record) and reports whether it still has to be handled: counted in its
// sender's window and announced when it opened it (MarkRejectionHandled). That is true for a
// new record, and for one whose first delivery stopped before it was handled; so a rejection
// is announced at least once, and, once handled, never again.
func (r *Repo) RecordRejection(ctx context.Context, rej Rejection) (pending bool, err error) {
	if rej.MessageID == "" || rej.Reason == "" || rej.SentAt.IsZero() {
		return false, fmt.Errorf("record rejection: messageId, reason and sentAt are required")
	}
	rej.RecordedAt = r.now()
	rej.TTL = rej.RecordedAt.Add(RejectionRetention).Unix()
	rej.Pending, rej.CountedIn = true, ""
	item, err := store.ItemWithKey(rej, rejectedPK(rej.SentAt), rej.MessageID, kindRejected)
	if err != nil {
		return false, err
	}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if store.ConditionFailed(err) {
		stored, gerr := r.get(ctx, rejectedPK(rej.SentAt), rej.MessageID)
		if gerr != nil {
			return false, gerr
		}
		var prev Rejection
		if err := store.UnmarshalItem(stored, &prev); err != nil {
			return false, fmt.Errorf("decode rejection of message %s: %w", rej.MessageID, err)
		}
		return prev.Pending, nil
	}
	if err != nil {
		return false, fmt.Errorf("record rejection of message %s: %w", rej.MessageID, err)
	}
	return true, nil
}

// MarkRejectionHandled records that a rejection was counted and, if it had to be, announced.
func (r *Repo) MarkRejectionHandled(ctx context.Context, rej Rejection) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(r.table), Key: store.Key(rejectedPK(rej.SentAt), rej.MessageID),
		UpdateExpression:    aws.String("REMOVE pending"),
		ConditionExpression: aws.String("attribute_exists(PK)"),
	})
	if err != nil {
		return fmt.Errorf("mark rejection of message %s handled: %w", rej.MessageID, err)
	}
	return nil
}

// Rejections returns the messages rejected on a day (UTC), by SQS send time.
func (r *Repo) Rejections(ctx context.Context, day time.Time) ([]Rejection, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(rejectedPK(day))},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("rejections of %s: %w", day.Format("2006-01-02"), err)
	}
	out := make([]Rejection, 0, len(items))
	for _, it := range items {
		var rej Rejection
		if err := store.UnmarshalItem(it, &rej); err != nil {
			return nil, fmt.Errorf("decode a rejection: %w", err)
		}
		out = append(out, rej)
	}
	return out, nil
}

// Repeated rejections of one sender are announced once per RejectionWindow: the first at
// once (so a forged message pages without delay), the rest of the window once, with their
// count, by the sweep after the window closes. A sender flooding the state queue costs the
// operators two alerts per window, not one per message.
const RejectionWindow = 5 * time.Minute

const pkRejectionWindow = "REJWINDOW#" // + window start (RFC 3339); SK: the sender

// RejectionWindowSummary is one sender's rejections in one window.
type RejectionWindowSummary struct {
	WindowStart time.Time `json:"windowStart"`
	Sender      string    `json:"sender"` // the sender id, "#security" added for security rejections
	Count       int64     `json:"count"`
	First       Rejection `json:"first"` // the rejection that opened the window
	ReportedAt  time.Time `json:"reportedAt,omitzero"`
}

// WindowOf is the start of the rejection window holding t.
func WindowOf(t time.Time) time.Time { return t.UTC().Truncate(RejectionWindow) }

func rejectionWindowPK(start time.Time) string { return pkRejectionWindow + start.Format(time.RFC3339) }

// senderKey names who sent a rejected message (its SQS sender id, or "unknown") and whether
// the rejection is a security one. Security rejections have windows of their own: a sender
// cannot open its window with a harmless malformed message and have its forged ones summed up
// under that first, non-security rejection, where no operator is paged.
func senderKey(rej Rejection) string {
	sender := rej.SenderID
	if sender == "" {
		sender = "unknown"
	}
	if rej.Security {
		return sender + "#security"
	}
	return sender
}

// CountRejection counts a recorded rejection in its sender's window (by the time it is
// counted), once: the count and the mark on the rejection record (countedIn) are one
// transaction, so a redelivery after a stop counts nothing twice. It reports the window's
// count and whether this rejection opened the window, which the caller then announces (again,
// on a redelivery whose first announcement may have been lost); the others wait for the
// window's summary.
func (r *Repo) CountRejection(ctx context.Context, rej Rejection) (count int64, opened bool, err error) {
	start := WindowOf(r.now())
	opener := rej
	opener.Pending, opener.CountedIn = false, ""
	first, err := store.MarshalItem(opener)
	if err != nil {
		return 0, false, err
	}
	record := store.Key(rejectedPK(rej.SentAt), rej.MessageID)
	_, err = r.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:        aws.String(r.table),
			Key:              store.Key(rejectionWindowPK(start), senderKey(rej)),
			UpdateExpression: aws.String("ADD #count :one SET #first = if_not_exists(#first, :first), #start = :start, #sender = :sender, #kind = :kind, #ttl = :ttl"),
			ExpressionAttributeNames: map[string]string{
				"#count": "count", "#first": "first", "#start": "windowStart", "#sender": "sender", "#kind": "kind", "#ttl": TTLAttribute,
			},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":one": num(1), ":first": &types.AttributeValueMemberM{Value: first},
				":start": str(start.Format(time.RFC3339)), ":sender": str(senderKey(rej)), ":kind": str(kindRejectionWindow),
				":ttl": num(start.Add(RejectionRetention).Unix()),
			},
		}},
		{Update: &types.Update{
			TableName: aws.String(r.table), Key: record,
			UpdateExpression:          aws.String("SET countedIn = :start"),
			ConditionExpression:       aws.String("attribute_exists(PK) AND attribute_not_exists(countedIn)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":start": str(start.Format(time.RFC3339))},
		}},
	}})
	switch {
	case cancelledAt(err, 1):
		// Counted before, or never recorded: the record says which, and in which window.
		item, gerr := r.get(ctx, rejectedPK(rej.SentAt), rej.MessageID)
		if gerr != nil {
			return 0, false, fmt.Errorf("count rejection of message %s: %w", rej.MessageID, gerr)
		}
		var prev Rejection
		if err := store.UnmarshalItem(item, &prev); err != nil {
			return 0, false, fmt.Errorf("count rejection of message %s: %w", rej.MessageID, err)
		}
		if start, err = time.Parse(time.RFC3339, prev.CountedIn); err != nil {
			return 0, false, fmt.Errorf("count rejection of message %s: countedIn %q: %w", rej.MessageID, prev.CountedIn, err)
		}
	case err != nil:
		return 0, false, fmt.Errorf("count rejection of message %s: %w", rej.MessageID, err)
	}
	item, err := r.get(ctx, rejectionWindowPK(start), senderKey(rej))
	if err != nil {
		return 0, false, fmt.Errorf("count rejection of message %s: %w", rej.MessageID, err)
	}
	var w RejectionWindowSummary
	if err := store.UnmarshalItem(item, &w); err != nil {
		return 0, false, fmt.Errorf("count rejection of message %s: %w", rej.MessageID, err)
	}
	return w.Count, w.First.MessageID == rej.MessageID, nil
}

// RepeatedRejections returns the senders of a window with more than one rejection whose
// summary is not reported yet.
func (r *Repo) RepeatedRejections(ctx context.Context, start time.Time) ([]RejectionWindowSummary, error) {
	items, err := r.queryAll(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("PK = :pk"),
		FilterExpression:          aws.String("#count > :one AND attribute_not_exists(reportedAt)"),
		ExpressionAttributeNames:  map[string]string{"#count": "count"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(rejectionWindowPK(start)), ":one": num(1)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("repeated rejections of window %s: %w", start.Format(time.RFC3339), err)
	}
	out := make([]RejectionWindowSummary, 0, len(items))
	for _, it := range items {
		var w RejectionWindowSummary
		if err := store.UnmarshalItem(it, &w); err != nil {
			return nil, fmt.Errorf("decode a rejection window: %w", err)
		}
		out = append(out, w)
	}
	return out, nil
}

// MarkRejectionsReported records that a window's summary went out. It reports false when it
// already had (a concurrent or repeated sweep), so a summary is marked once.
func (r *Repo) MarkRejectionsReported(ctx context.Context, w RejectionWindowSummary) (bool, error) {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       store.Key(rejectionWindowPK(w.WindowStart), w.Sender),
		UpdateExpression:          aws.String("SET reportedAt = :now"),
		ConditionExpression:       aws.String("attribute_exists(PK) AND attribute_not_exists(reportedAt)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": str(r.now().Format(time.RFC3339Nano))},
	})
	if store.ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("mark rejections of %s in window %s reported: %w", w.Sender, w.WindowStart.Format(time.RFC3339), err)
	}
	return true, nil
}
