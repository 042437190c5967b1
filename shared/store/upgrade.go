package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/release"
)

// Upgrade is one run of the upgrade workflow on a deployment: its plan and how far it got.
// Kept in the deployment's partition, so a deployment's upgrades are its history.
type Upgrade struct {
	Execution string         `json:"execution"` // the execution ARN
	Purpose   string         `json:"purpose"`   // open (a window) or security (off-cycle)
	Key       string         `json:"key"`
	Closes    *time.Time     `json:"closes,omitempty"` // the window's close; nil off-cycle
	Steps     []release.Step `json:"steps"`
	Done      int            `json:"done"`     // steps completed, in order
	Releases  []string       `json:"releases"` // every release due when it was planned
	StartedAt time.Time      `json:"startedAt"`
}

const (
	kindUpgrade     = "upgrade"
	skUpgradePrefix = "UPGRADE#"
)

// PutUpgrade stores a planned upgrade once: a retried plan finds its own record (returned
// as stored) and writes nothing.
func (s *Store) PutUpgrade(ctx context.Context, deploymentID string, u Upgrade) (Upgrade, error) {
	item, err := ItemWithKey(u, DeploymentPK(deploymentID), skUpgradePrefix+u.Execution, kindUpgrade)
	if err != nil {
		return Upgrade{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")})
	if ConditionFailed(err) {
		return s.Upgrade(ctx, deploymentID, u.Execution)
	}
	if err != nil {
		return Upgrade{}, fmt.Errorf("store upgrade %s of %s: %w", u.Execution, deploymentID, err)
	}
	return u, nil
}

// Upgrade returns an upgrade, or ErrNotFound.
func (s *Store) Upgrade(ctx context.Context, deploymentID, execution string) (Upgrade, error) {
	var u Upgrade
	if err := s.get(ctx, DeploymentPK(deploymentID), skUpgradePrefix+execution, &u); err != nil {
		return Upgrade{}, fmt.Errorf("upgrade %s of %s: %w", execution, deploymentID, err)
	}
	return u, nil
}

// StepDone records step index of an upgrade as completed, once: a retried step finds it
// done (no error, false).
func (s *Store) StepDone(ctx context.Context, deploymentID, execution string, index int) (bool, error) {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: Key(DeploymentPK(deploymentID), skUpgradePrefix+execution),
		UpdateExpression:          aws.String("SET #d = :next"),
		ConditionExpression:       aws.String("#d = :i"),
		ExpressionAttributeNames:  map[string]string{"#d": "done"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":i": &types.AttributeValueMemberN{Value: strconv.Itoa(index)}, ":next": &types.AttributeValueMemberN{Value: strconv.Itoa(index + 1)}},
	})
	if ConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("step %d of upgrade %s: %w", index, execution, err)
	}
	return true, nil
}
