package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Idempotency keys of the operator API. A caller's key names one request: the first request
// under it runs, and its answer is kept for IdempotencyRetention; the same request again gets
// that answer without running again; another request under the same key is refused.
//
// The record is claimed before the request runs (a conditional put), so two copies arriving
// together cannot both run: the second finds it running. A claim whose request never finished
// (the function was killed) is taken over after its lease, so a key is never stuck.

// Errors of a claim.
var (
	ErrKeyReused  = errors.New("idempotency key already used for another request")
	ErrInProgress = errors.New("the first request under this idempotency key is still running")
)

const (
	kindIdempotency = "idempotency"
	skIdempotency   = "REQUEST"
	// IdempotencyRetention is how long an answer is replayed (the TTL of the record).
	IdempotencyRetention = 24 * time.Hour
)

// Answer is a finished request's answer, replayed to a repeat.
type Answer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type idempotencyRecord struct {
	RequestHash string  `json:"requestHash"`
	Running     bool    `json:"running"`
	LeaseUntil  int64   `json:"leaseUntil"` // epoch milliseconds: compared in the condition
	Answer      *Answer `json:"answer,omitempty"`
}

// idempotencyPK scopes a key to its caller: two operators' keys never collide, and nobody
// can read another caller's answer by guessing their key.
func idempotencyPK(caller, key string) string {
	sum := sha256.Sum256([]byte(caller))
	return "IDEM#" + hex.EncodeToString(sum[:16]) + "#" + key
}

// RequestHash is the fingerprint a key is bound to: the method, the path and the body.
func RequestHash(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", method, path)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// ClaimKey claims caller's key for a request. It returns (nil, nil) when the request should
// run now (then FinishKey or ReleaseKey); the stored answer when the same request already
// finished; ErrInProgress when it is running under a live lease; ErrKeyReused when the key
// belongs to another request.
func (s *Store) ClaimKey(ctx context.Context, caller, key, requestHash string, lease time.Duration) (*Answer, error) {
	now := s.now()
	rec := idempotencyRecord{RequestHash: requestHash, Running: true, LeaseUntil: now.Add(lease).UnixMilli()}
	item, err := ItemWithKey(rec, idempotencyPK(caller, key), skIdempotency, kindIdempotency)
	if err != nil {
		return nil, err
	}
	item[TTLAttribute] = epoch(now.Add(IdempotencyRetention))
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item:      item,
		// A new key, a record past its TTL (DynamoDB removes expired items late), or the same
		// request's claim whose lease ran out (its runner died).
		ConditionExpression:      aws.String("attribute_not_exists(PK) OR #ttl < :nowSeconds OR (#running = :true AND #hash = :hash AND #lease < :now)"),
		ExpressionAttributeNames: map[string]string{"#running": "running", "#hash": "requestHash", "#lease": "leaseUntil", "#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":true":       &types.AttributeValueMemberBOOL{Value: true},
			":hash":       &types.AttributeValueMemberS{Value: requestHash},
			":now":        &types.AttributeValueMemberN{Value: fmt.Sprint(now.UnixMilli())},
			":nowSeconds": &types.AttributeValueMemberN{Value: fmt.Sprint(now.Unix())},
		},
	})
	if err == nil {
		return nil, nil
	}
	if !ConditionFailed(err) {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	var cur idempotencyRecord
	if err := s.get(ctx, idempotencyPK(caller, key), skIdempotency, &cur); err != nil {
		if errors.Is(err, ErrNotFound) {
			// Released (or expired) between the put and the read: the caller may retry.
			return nil, ErrInProgress
		}
		return nil, err
	}
	switch {
	case cur.RequestHash != requestHash:
		return nil, ErrKeyReused
	case cur.Running || cur.Answer == nil:
		return nil, ErrInProgress
	default:
		return cur.Answer, nil
	}
}

// FinishKey stores the answer of the request that claimed the key.
func (s *Store) FinishKey(ctx context.Context, caller, key, requestHash string, a Answer) error {
	rec := idempotencyRecord{RequestHash: requestHash, Answer: &a}
	item, err := ItemWithKey(rec, idempotencyPK(caller, key), skIdempotency, kindIdempotency)
	if err != nil {
		return err
	}
	item[TTLAttribute] = epoch(s.now().Add(IdempotencyRetention))
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: item,
		ConditionExpression:       aws.String("#hash = :hash"),
		ExpressionAttributeNames:  map[string]string{"#hash": "requestHash"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":hash": &types.AttributeValueMemberS{Value: requestHash}},
	})
	if err != nil {
		return fmt.Errorf("store the answer of idempotency key: %w", err)
	}
	return nil
}

// ReleaseKey forgets a claim whose request failed in a way worth retrying (a 5xx), so the
// same request under the same key runs again instead of replaying the failure.
func (s *Store) ReleaseKey(ctx context.Context, caller, key, requestHash string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(s.table), Key: Key(idempotencyPK(caller, key), skIdempotency),
		ConditionExpression:       aws.String("#hash = :hash AND #running = :true"),
		ExpressionAttributeNames:  map[string]string{"#hash": "requestHash", "#running": "running"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":hash": &types.AttributeValueMemberS{Value: requestHash}, ":true": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err != nil && !ConditionFailed(err) {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
