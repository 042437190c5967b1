// Package servicestate is the DynamoDB repository of what the data plane reports: the state
// and health of every service, each deployment's health (the worst of its services), the
// history of health transitions with an outbox of alerts to publish, the data-plane identity
// of each deployment (who may report for it), the commands sent to its agent, and the
// workflow tasks waiting for a state condition.
//
// It shares the control plane's single table (package store's layout: string PK and SK) and
// adds one sparse global secondary index, SweepIndex, so the scheduled sweep finds silent
// services and unpublished alerts by a key query, never a scan.
//
// Every write is conditional. A report replaces a service's state only when it is newer (by
// the exporter's order key) than what is stored, and only if the state is still the one
// read, so duplicate, out-of-order and concurrent messages cannot roll state back. On the
// steady path (no change of health) a report costs one consistent read and one write; a
// duplicate or older report costs the read alone.
//
// Expressions never copy one attribute into another (SET a = b): values are computed from
// the state read and guarded by the condition, which real DynamoDB and the local emulator
// evaluate alike.
package servicestate

import (
	"context"
	"errors"
	"fmt"
	fnclock "github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/store"
	"hash/fnv"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/cloud"
)

// Sentinel errors: the store's own, so errors.Is works whichever package wrapped them; the
// wrapping error names the item and the reason.
var (
	ErrNotFound = store.ErrNotFound
	ErrConflict = store.ErrConflict
	// ErrUnprocessed is a batch read DynamoDB kept leaving unprocessed (it does when
	// throttled): worth retrying later.
	ErrUnprocessed = errors.New("DynamoDB left keys unprocessed (throttled)")
)

// Table layout. PK, SK and the TTL attribute are the control-plane table's (package store); the sweep
// index is this package's addition and must be created with the table (see
// store.TableDefinition and docs/state.md).
const (
	AttrPK       = store.AttrPK
	AttrSK       = store.AttrSK
	TTLAttribute = store.TTLAttribute // the table's TTL attribute (epoch seconds); waiters use it

	// SweepIndex is a sparse KEYS_ONLY GSI. Only two kinds of items carry its keys: services
	// that are live (keyed by the minute they were last heard, so the sweep can ask "who
	// was last heard before the cutoff"), and transitions whose alert is not published yet.
	// A live service's key changes at most once a minute, so its steady reports do not
	// rewrite the index on every message.
	SweepIndex  = store.SweepIndex
	AttrSweepPK = store.AttrSweepPK // S: "LIVE#<shard>" or "OUTBOX"
	AttrSweepAt = store.AttrSweepAt // N: minute (live services) or second (outbox) since the epoch
)

// LiveShards spreads live services over this many index partitions, so no single index
// partition takes every service's once-a-minute key change.
const LiveShards = 4

const outboxPK = "OUTBOX"

// Key prefixes, all in the deployment's partition (PK "DEP#<id>", as package store uses)
// except the data-plane registry, which is one partition so the state queue's admission
// policy can list every exporter with one query.
const (
	skServicePrefix = "SVC#"
	skHealth        = "HEALTH"
	skHistoryPrefix = "HIST#"
	skCommandPrefix = "CMD#"
	skWaiterPrefix  = "SWAIT#"
	pkDataPlane     = "DATAPLANE"
	pkRejected      = "REJECTED#" // + day; rejected messages, by SQS message id
)

// Item kinds, in the "kind" attribute like package store's items.
const (
	kindService   = "service"
	kindHealth    = "deploymentHealth"
	kindHistory   = "healthTransition"
	kindCommand   = "command"
	kindWaiter    = "stateWaiter"
	kindDataPlane = "dataPlane"
	kindRejected  = "rejectedMessage"

	kindRejectionWindow = "rejectionWindow"
)

// DynamoDB is what the repository needs: the store's interface plus UpdateItem, which lets a
// report be applied with one conditional write that also returns the state it replaced.
type DynamoDB interface {
	cloud.DynamoDB
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ DynamoDB = (*dynamodb.Client)(nil)

// Repo reads and writes service state in one table.
type Repo struct {
	db    DynamoDB
	table string
	// Now is the clock of receive times, staleness and expiry; tests replace it.
	Now func() time.Time
}

// New returns a repository on table.
func New(db DynamoDB, table string) *Repo {
	return &Repo{db: db, table: table, Now: fnclock.Now}
}

func (r *Repo) now() time.Time { return r.Now().UTC() }

// AsOf returns the repository with its clock stopped at t: what one run that judges "as of" a
// given time (the sweep, as of its schedule) writes with, so the transitions it records,
// their reasons and the outbox entries all carry that time. r is not changed.
func (r *Repo) AsOf(t time.Time) *Repo {
	t = t.UTC()
	return &Repo{db: r.db, table: r.table, Now: func() time.Time { return t }}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num[T ~int | ~int64](n T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

func jsonTags(o *attributevalue.EncoderOptions) { o.TagKey = "json" }

func marshal(v any) (types.AttributeValue, error) {
	return attributevalue.MarshalWithOptions(v, jsonTags)
}

func (r *Repo) get(ctx context.Context, pk, sk string) (map[string]types.AttributeValue, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(r.table), Key: store.Key(pk, sk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", pk, sk, err)
	}
	if len(out.Item) == 0 {
		return nil, fmt.Errorf("%s/%s: %w", pk, sk, ErrNotFound)
	}
	return out.Item, nil
}

// queryAll runs a query to its last page.
func (r *Repo) queryAll(ctx context.Context, in *dynamodb.QueryInput) ([]map[string]types.AttributeValue, error) {
	in.TableName = aws.String(r.table)
	var items []map[string]types.AttributeValue
	p := dynamodb.NewQueryPaginator(r.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		items = append(items, page.Items...)
	}
	return items, nil
}

// cancelledAt reports whether a TransactionCanceledException says item i failed its
// condition.
func cancelledAt(err error, i int) bool {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) || i >= len(tce.CancellationReasons) {
		return false
	}
	return aws.ToString(tce.CancellationReasons[i].Code) == "ConditionalCheckFailed"
}

// liveShard is the index partition of a live service: a stable hash, so a service keeps its
// shard and its index key only changes when its minute does.
func liveShard(deploymentID, serviceID string) string {
	h := fnv.New32a()
	h.Write([]byte(deploymentID + "/" + serviceID))
	return fmt.Sprintf("LIVE#%d", h.Sum32()%LiveShards)
}

func minuteOf(t time.Time) int64 { return t.Unix() / 60 }

// timeKey formats t for sort keys: fixed width, so string order is time order.
func timeKey(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}
