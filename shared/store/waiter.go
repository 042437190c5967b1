package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Waiter is a workflow task waiting for a stack operation to end: the stackevents function
// finds it by the stack in an event and completes its task token.
type Waiter struct {
	AccountID    string `json:"accountId"`
	Region       string `json:"region"`
	StackName    string `json:"stackName"`
	DeploymentID string `json:"deploymentId"`
	TaskToken    string `json:"taskToken"`
	// StackID, Operation and RequestToken describe the awaited operation, so that a late
	// event of an earlier operation on the same stack name does not end this wait.
	StackID      string    `json:"stackId,omitempty"`
	Operation    string    `json:"operation,omitempty"`    // create, update or delete (stackevent.Operation)
	RequestToken string    `json:"requestToken,omitempty"` // ClientRequestToken of the operation
	ExpiresAt    time.Time `json:"expiresAt"`
}

const kindWaiter = "waiter"

const skWaiter = "TOKEN"

func waiterPK(accountID, region, stackName string) string {
	return "WAIT#" + accountID + "#" + region + "#" + stackName
}

// PutWaiter stores a waiter, replacing an earlier one of the same deployment (a wait that
// timed out into a poll and started again). A waiter of another deployment for the same
// stack is never replaced: ErrConflict.
func (s *Store) PutWaiter(ctx context.Context, w Waiter) error {
	if w.AccountID == "" || w.Region == "" || w.StackName == "" || w.DeploymentID == "" || w.TaskToken == "" || w.ExpiresAt.IsZero() {
		return fmt.Errorf("put waiter: accountId, region, stackName, deploymentId, taskToken and expiresAt are required")
	}
	pk := waiterPK(w.AccountID, w.Region, w.StackName)
	item, err := ItemWithKey(w, pk, skWaiter, kindWaiter)
	if err != nil {
		return err
	}
	item[TTLAttribute] = epoch(w.ExpiresAt)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR deploymentId = :dep"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":dep": &types.AttributeValueMemberS{Value: w.DeploymentID}},
	})
	if ConditionFailed(err) {
		return fmt.Errorf("stack %s is awaited by another deployment: %w", pk, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("put waiter %s: %w", pk, err)
	}
	return nil
}

// Waiter returns the waiter of a stack, or ErrNotFound. An expired waiter counts as absent:
// DynamoDB's TTL deletes lazily, and its token is dead anyway.
func (s *Store) Waiter(ctx context.Context, accountID, region, stackName string) (Waiter, error) {
	var w Waiter
	if err := s.get(ctx, waiterPK(accountID, region, stackName), skWaiter, &w); err != nil {
		return Waiter{}, fmt.Errorf("waiter: %w", err)
	}
	if !s.now().Before(w.ExpiresAt) {
		return Waiter{}, fmt.Errorf("waiter of %s expired at %s: %w", stackName, w.ExpiresAt.Format(time.RFC3339), ErrNotFound)
	}
	return w, nil
}

// DeleteWaiter removes a waiter if it still holds w's task token; a waiter already removed or
// replaced by a newer wait is left alone and ErrConflict returned.
func (s *Store) DeleteWaiter(ctx context.Context, w Waiter) error {
	pk := waiterPK(w.AccountID, w.Region, w.StackName)
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(s.table),
		Key:                       Key(pk, skWaiter),
		ConditionExpression:       aws.String("taskToken = :tok"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":tok": &types.AttributeValueMemberS{Value: w.TaskToken}},
	})
	if ConditionFailed(err) {
		return fmt.Errorf("waiter %s no longer holds this token: %w", pk, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete waiter %s: %w", pk, err)
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
