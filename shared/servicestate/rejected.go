package servicestate

import (
	"context"
	"fmt"
	"github.com/byocloud/byoc/shared/store"
	"time"

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
}

func rejectedPK(sentAt time.Time) string { return pkRejected + sentAt.UTC().Format("2006-01-02") }

// RecordRejection records a rejected message once: every redelivery of the same message
// (same SQS message id and sent time) finds the record and reports first=false, so the
// reason is recorded, and a security event raised, exactly once per message.
func (r *Repo) RecordRejection(ctx context.Context, rej Rejection) (first bool, err error) {
	if rej.MessageID == "" || rej.Reason == "" || rej.SentAt.IsZero() {
		return false, fmt.Errorf("record rejection: messageId, reason and sentAt are required")
	}
	rej.RecordedAt = r.now()
	item, err := store.ItemWithKey(rej, rejectedPK(rej.SentAt), rej.MessageID, kindRejected)
	if err != nil {
		return false, err
	}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(r.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record rejection of message %s: %w", rej.MessageID, err)
	}
	return true, nil
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
