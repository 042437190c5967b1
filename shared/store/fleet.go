package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
)

// The fleet index lists every deployment without a scan. All deployments share one partition
// key; the sort key is "<status>#<created>#<id>", so one Query serves the whole fleet (grouped
// by status, newest first) or one status (begins_with). Its sort key changes only with the
// status, so the index is written on a status change, not on every update. It projects the
// few attributes a list shows, so a page is one Query.
//
// DynamoDB adds one global secondary index per table update; this is the second, added alone.
const (
	FleetIndex  = "FleetIndex"
	AttrFleetPK = "fleetPK"
	AttrFleetSK = "fleetSK"
	fleetAll    = "FLEET"
)

// fleetProjection are the attributes the index carries besides its keys.
// Only attributes that change with the status (or never): the index is written again only
// when the status changes.
var fleetProjection = []string{"id", "status", "settings", "createdAt", "failure"}

func fleetSK(d Deployment) string {
	return string(d.Status) + "#" + d.CreatedAt.UTC().Format(time.RFC3339Nano) + "#" + d.ID
}

// Summary is a deployment as a fleet list shows it.
type Summary struct {
	ID        string            `json:"id"`
	Status    lifecycle.Status  `json:"status"`
	Settings  settings.Settings `json:"settings"`
	CreatedAt time.Time         `json:"createdAt"`
	Failure   *Failure          `json:"failure,omitempty"`
}

// FleetQuery selects a page of the fleet.
type FleetQuery struct {
	Status    lifecycle.Status // "" for every status
	Limit     int              // 1..MaxPage; 0 means DefaultPage
	NextToken string           // from the previous page; "" for the first
}

// Page sizes of a fleet list.
const (
	DefaultPage = 50
	MaxPage     = 100
)

// ErrBadToken is a next token this store did not issue (or issued for another query).
var ErrBadToken = errors.New("invalid next token")

// fleetToken is the opaque cursor: the last key read, and the status it was read under, so
// a token cannot be replayed against another filter.
type fleetToken struct {
	Status string `json:"s"`
	SK     string `json:"k"`
	ID     string `json:"i"`
}

// Fleet returns one page of deployments and the token of the next ("" on the last page).
func (s *Store) Fleet(ctx context.Context, q FleetQuery) ([]Summary, string, error) {
	if q.Status != "" && !q.Status.Known() {
		return nil, "", fmt.Errorf("status %q: must be one of %v", q.Status, lifecycle.All())
	}
	if q.Limit == 0 {
		q.Limit = DefaultPage
	}
	if q.Limit < 1 || q.Limit > MaxPage {
		return nil, "", fmt.Errorf("limit %d: must be from 1 to %d", q.Limit, MaxPage)
	}
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		IndexName:                aws.String(FleetIndex),
		KeyConditionExpression:   aws.String("#pk = :pk"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrFleetPK},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": &types.AttributeValueMemberS{Value: fleetAll},
		},
		ScanIndexForward: aws.Bool(false),
		Limit:            aws.Int32(int32(q.Limit)),
	}
	if q.Status != "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND begins_with(#sk, :status)")
		in.ExpressionAttributeNames["#sk"] = AttrFleetSK
		in.ExpressionAttributeValues[":status"] = &types.AttributeValueMemberS{Value: string(q.Status) + "#"}
	}
	if q.NextToken != "" {
		t, err := decodeFleetToken(q.NextToken)
		if err != nil || t.Status != string(q.Status) || !strings.HasSuffix(t.SK, "#"+t.ID) {
			return nil, "", ErrBadToken
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			AttrFleetPK: &types.AttributeValueMemberS{Value: fleetAll},
			AttrFleetSK: &types.AttributeValueMemberS{Value: t.SK},
			AttrPK:      &types.AttributeValueMemberS{Value: DeploymentPK(t.ID)},
			AttrSK:      &types.AttributeValueMemberS{Value: skMeta},
		}
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("list deployments: %w", err)
	}
	page := make([]Summary, 0, len(out.Items))
	for _, it := range out.Items {
		var sum Summary
		if err := UnmarshalItem(it, &sum); err != nil {
			return nil, "", fmt.Errorf("list deployments: %w", err)
		}
		page = append(page, sum)
	}
	// The cursor is built from the last item read, not from LastEvaluatedKey: DynamoDB's
	// carries the index keys too, but kumo's (the local cloud) has only the table's, and the
	// item has everything the key is made of.
	next := ""
	if len(out.LastEvaluatedKey) > 0 && len(page) > 0 {
		last := Deployment{ID: page[len(page)-1].ID, Status: page[len(page)-1].Status, CreatedAt: page[len(page)-1].CreatedAt}
		next = encodeFleetToken(fleetToken{Status: string(q.Status), SK: fleetSK(last), ID: last.ID})
	}
	return page, next, nil
}

// FleetCounts counts the deployments of each status, every status present (0 when none):
// one COUNT query per status on the fleet index. No item comes back, though DynamoDB still
// reads (and bills) the index entries it counts: for 10,000 deployments, a few hundred KB.
func (s *Store) FleetCounts(ctx context.Context) (map[lifecycle.Status]int, error) {
	counts := make(map[lifecycle.Status]int, len(lifecycle.All()))
	for _, status := range lifecycle.All() {
		in := &dynamodb.QueryInput{
			TableName:                aws.String(s.table),
			IndexName:                aws.String(FleetIndex),
			KeyConditionExpression:   aws.String("#pk = :pk AND begins_with(#sk, :status)"),
			ExpressionAttributeNames: map[string]string{"#pk": AttrFleetPK, "#sk": AttrFleetSK},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk":     &types.AttributeValueMemberS{Value: fleetAll},
				":status": &types.AttributeValueMemberS{Value: string(status) + "#"},
			},
			Select: types.SelectCount,
		}
		counts[status] = 0
		for {
			out, err := s.db.Query(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("count %s deployments: %w", status, err)
			}
			counts[status] += int(out.Count)
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return counts, nil
}

// Scanner is DynamoDB's Scan, which only BackfillFleetIndex uses.
type Scanner interface {
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// BackfillFleetIndex gives the fleet index's keys to every deployment record written before
// the index existed (they are listed and counted only once they have them; any later write
// of the record adds them too). It is a one-off migration an operator runs after upgrading,
// the one scan byoc makes, never serving a list: the table's records without the keys are
// read a page at a time, and each gets its keys on the condition that it still lacks them,
// so running it again, or beside the control plane's own writes, changes nothing twice.
// progress is told the running count after each page. It returns how many records it gave
// keys.
func (s *Store) BackfillFleetIndex(ctx context.Context, scan Scanner, progress func(scanned, updated int)) (int, error) {
	in := &dynamodb.ScanInput{
		TableName:                aws.String(s.table),
		FilterExpression:         aws.String("#sk = :meta AND attribute_not_exists(#fpk)"),
		ProjectionExpression:     aws.String("#pk, #sk, id, #status, createdAt"),
		ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#sk": AttrSK, "#fpk": AttrFleetPK, "#status": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":meta": &types.AttributeValueMemberS{Value: skMeta},
		},
	}
	scanned, updated := 0, 0
	for {
		page, err := scan.Scan(ctx, in)
		if err != nil {
			return updated, fmt.Errorf("scan for deployments without fleet keys: %w", err)
		}
		scanned += int(page.ScannedCount)
		for _, item := range page.Items {
			var d Deployment
			if err := UnmarshalItem(item, &d); err != nil || d.ID == "" || !d.Status.Known() {
				pk := ""
				if v, ok := item[AttrPK].(*types.AttributeValueMemberS); ok {
					pk = v.Value
				}
				return updated, fmt.Errorf("deployment record %s cannot be read (status %q, %v): fix it, then run again", pk, d.Status, err)
			}
			_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:        aws.String(s.table),
				Key:              Key(DeploymentPK(d.ID), skMeta),
				UpdateExpression: aws.String("SET #fpk = :all, #fsk = :sk"),
				// Still without keys, and still in the status read: a record an older function
				// rewrote meanwhile is left for the next run, never indexed under a stale status.
				ConditionExpression:      aws.String("attribute_exists(#pk) AND attribute_not_exists(#fpk) AND #status = :status"),
				ExpressionAttributeNames: map[string]string{"#pk": AttrPK, "#fpk": AttrFleetPK, "#fsk": AttrFleetSK, "#status": "status"},
				ExpressionAttributeValues: map[string]types.AttributeValue{
					":all":    &types.AttributeValueMemberS{Value: fleetAll},
					":sk":     &types.AttributeValueMemberS{Value: fleetSK(d)},
					":status": &types.AttributeValueMemberS{Value: string(d.Status)},
				},
			})
			switch {
			case err == nil:
				updated++
			case errors.As(err, new(*types.ConditionalCheckFailedException)):
				// written meanwhile (with its keys, or by an older function), or deleted
			default:
				return updated, fmt.Errorf("give deployment %s its fleet keys: %w", d.ID, err)
			}
		}
		if progress != nil {
			progress(scanned, updated)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return updated, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func encodeFleetToken(t fleetToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeFleetToken(s string) (fleetToken, error) {
	var t fleetToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return t, err
	}
	// Nothing may follow the token's object: a token with bytes appended is not one this
	// store issued (whether the extra characters still decode depends on its length).
	if _, err := dec.Token(); err != io.EOF || t.SK == "" || t.ID == "" {
		return t, ErrBadToken
	}
	return t, nil
}
