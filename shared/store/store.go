// Package store is the control plane's DynamoDB repository: one table holding deployments,
// the account index that keeps one deployment per account and region, the task tokens of
// workflow steps waiting on a stack, idempotency records of handled events, and the audit
// trail of every state change.
//
// Every write is conditional. A state change is one transaction: the deployment is replaced
// only if its version and status are still those the caller read, and the audit entry is
// written with it, so duplicate or out-of-order events cannot corrupt state and no change goes
// unrecorded.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

// Sentinel errors. Callers test them with errors.Is; the wrapping error says which item and
// why.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflicting write")
)

// Table layout, named in the contract so the CDK stack creates the same table.
const (
	AttrPK       = contract.TableAttrPartitionKey
	AttrSK       = contract.TableAttrSortKey
	TTLAttribute = contract.TableAttrTTL // epoch seconds; expires waiters and event records

	// SweepIndex is a sparse KEYS_ONLY GSI: only items that a scheduled sweep must find by
	// time carry its keys (package servicestate's live services and unpublished alerts).
	SweepIndex  = "SweepIndex"
	AttrSweepPK = "sweepPK" // S: which sweep list the item is on
	AttrSweepAt = "sweepAt" // N: when, in the unit of that list
)

// TableDefinition is the control plane's one table, as the CDK stack creates it and as tests
// create it in the local cloud: string partition and sort keys, on-demand capacity, the
// sweep index and the fleet index.
func TableDefinition(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSweepPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrSweepAt), AttributeType: types.ScalarAttributeTypeN},
			{AttributeName: aws.String(AttrFleetPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(AttrFleetSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(SweepIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrSweepPK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrSweepAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}, {
			IndexName: aws.String(FleetIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(AttrFleetPK), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(AttrFleetSK), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: fleetProjection},
		}},
	}
}

// Store reads and writes the control-plane table.
type Store struct {
	db    cloud.DynamoDB
	table string
	// Now is the clock of timestamps, TTLs and expiry checks; tests replace it.
	Now func() time.Time
}

// New returns a store on the given table.
func New(db cloud.DynamoDB, table string) *Store {
	return &Store{db: db, table: table, Now: clock.Now}
}

func (s *Store) now() time.Time { return s.Now().UTC() }

// Key is an item's primary key.
func Key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		AttrPK: &types.AttributeValueMemberS{Value: pk},
		AttrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// Items carry their attributes under their JSON names, so a deployment read from the table
// looks like the one the functions return. MarshalItem, UnmarshalItem and ItemWithKey are the
// table's one item encoding; package servicestate writes its items with them too.
func MarshalItem(v any) (map[string]types.AttributeValue, error) {
	return attributevalue.MarshalMapWithOptions(v, func(o *attributevalue.EncoderOptions) { o.TagKey = "json" })
}

func UnmarshalItem(item map[string]types.AttributeValue, v any) error {
	return attributevalue.UnmarshalMapWithOptions(item, v, func(o *attributevalue.DecoderOptions) { o.TagKey = "json" })
}

// ItemWithKey marshals v and adds its key and item kind.
func ItemWithKey(v any, pk, sk, kind string) (map[string]types.AttributeValue, error) {
	item, err := MarshalItem(v)
	if err != nil {
		return nil, err
	}
	// "kind" is every item's item kind: a value's own field of that name would be lost.
	if _, taken := item["kind"]; taken {
		return nil, fmt.Errorf("store %s/%s: %T has a field \"kind\", which is the item-kind attribute (nest it)", pk, sk, v)
	}
	item[AttrPK] = &types.AttributeValueMemberS{Value: pk}
	item[AttrSK] = &types.AttributeValueMemberS{Value: sk}
	item["kind"] = &types.AttributeValueMemberS{Value: kind}
	return item, nil
}

func (s *Store) get(ctx context.Context, pk, sk string, v any) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            Key(pk, sk),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("get %s/%s: %w", pk, sk, err)
	}
	if len(out.Item) == 0 {
		return fmt.Errorf("%s/%s: %w", pk, sk, ErrNotFound)
	}
	if err := UnmarshalItem(out.Item, v); err != nil {
		return fmt.Errorf("read %s/%s: %w", pk, sk, err)
	}
	return nil
}

// cancelled returns, for a TransactionCanceledException, which items failed their condition
// (by position in the transaction); ok is false for any other error.
func cancelled(err error) (failed []bool, ok bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, false
	}
	failed = make([]bool, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		failed[i] = aws.ToString(r.Code) == "ConditionalCheckFailed"
	}
	return failed, true
}

// ConditionFailed reports whether a write failed its condition expression.
func ConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func epoch(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(t.Unix())}
}
