package frontdoor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

// tokenTable serves kumo's DynamoDB through TransactTokens, as the local cloud's door does,
// and returns a client for it (one attempt: the tests play the SDK's retries themselves).
func tokenTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, &dynamodb.CreateTableInput{
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("PK"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("PK"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}, "")
	proxy, err := Proxy(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	door := New(proxy)
	door.HandleIf("dynamodb", IsTransactWrite, TransactTokens(proxy))
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	cfg := env.Config.Copy()
	cfg.BaseEndpoint = aws.String(srv.URL)
	cfg.RetryMaxAttempts = 1
	return dynamodb.NewFromConfig(cfg), table
}

// create is a transaction that creates item pk and counts how often it ran.
func create(table, pk, token string) *dynamodb.TransactWriteItemsInput {
	return &dynamodb.TransactWriteItemsInput{
		ClientRequestToken: aws.String(token),
		TransactItems: []types.TransactWriteItem{{Update: &types.Update{
			TableName:                 aws.String(table),
			Key:                       map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: pk}},
			UpdateExpression:          aws.String("ADD runs :one"),
			ConditionExpression:       aws.String("attribute_not_exists(PK)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": &types.AttributeValueMemberN{Value: "1"}},
		}}},
	}
}

func runs(t *testing.T, db *dynamodb.Client, table, pk string) string {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: pk}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Item == nil {
		return "absent"
	}
	return out.Item["runs"].(*types.AttributeValueMemberN).Value
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestTransactTokenRepeatSucceedsWithoutWritingAgain(t *testing.T) {
	db, table := tokenTable(t)
	ctx := context.Background()
	in := create(table, "a", "token-a")
	for i := range 3 { // the first call, then two retries whose answers matter to the caller
		if _, err := db.TransactWriteItems(ctx, in); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	if got := runs(t, db, table, "a"); got != "1" {
		t.Fatalf("runs = %s, want 1: a repeated token ran the transaction again", got)
	}
	// Without the token's memory the same transaction fails its condition, as kumo alone would.
	if _, err := db.TransactWriteItems(ctx, create(table, "a", "token-other")); errorCode(err) != "TransactionCanceledException" {
		t.Fatalf("a new token = %v, want TransactionCanceledException", err)
	}
}

func TestTransactTokenWithOtherParametersIsRefused(t *testing.T) {
	db, table := tokenTable(t)
	ctx := context.Background()
	if _, err := db.TransactWriteItems(ctx, create(table, "b", "token-b")); err != nil {
		t.Fatal(err)
	}
	_, err := db.TransactWriteItems(ctx, create(table, "c", "token-b"))
	if errorCode(err) != "IdempotentParameterMismatchException" || !strings.Contains(err.Error(), "token-b") {
		t.Fatalf("same token, other item = %v, want IdempotentParameterMismatchException naming the token", err)
	}
	if got := runs(t, db, table, "c"); got != "absent" {
		t.Fatalf("item c = %s, want absent: a refused call wrote", got)
	}
}

func TestTransactTokenOfAFailedCallRunsAgain(t *testing.T) {
	db, table := tokenTable(t)
	ctx := context.Background()
	if _, err := db.TransactWriteItems(ctx, create(table, "d", "token-d1")); err != nil {
		t.Fatal(err)
	}
	// token-d2's first call fails its condition (d exists); once d is gone, its retry applies.
	in := create(table, "d", "token-d2")
	if _, err := db.TransactWriteItems(ctx, in); errorCode(err) != "TransactionCanceledException" {
		t.Fatalf("first call = %v, want TransactionCanceledException", err)
	}
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: "d"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TransactWriteItems(ctx, in); err != nil {
		t.Fatalf("retry after a failed call = %v, want it to run", err)
	}
	if got := runs(t, db, table, "d"); got != "1" {
		t.Fatalf("runs = %s, want 1", got)
	}
}

func TestTransactTokenConcurrentRepeatsRunOnce(t *testing.T) {
	db, table := tokenTable(t)
	in := create(table, "e", "token-e")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, errs[i] = db.TransactWriteItems(context.Background(), in) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if got := runs(t, db, table, "e"); got != "1" {
		t.Fatalf("runs = %s, want 1", got)
	}
}

func TestTransactWithoutTokenPassesThrough(t *testing.T) {
	body := `{"TransactItems":[{"Put":{"TableName":"t","Item":{"PK":{"S":"f"}}}}]}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("X-Amz-Target", "DynamoDB_20120810.TransactWriteItems")
	next := &recorder{name: "next"}
	tokens := TransactTokens(next)
	tokens.ServeHTTP(httptest.NewRecorder(), r)
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("X-Amz-Target", "DynamoDB_20120810.TransactWriteItems")
	tokens.ServeHTTP(httptest.NewRecorder(), r)
	if next.count() != 2 || !strings.Contains(next.hits[0], `"PK":{"S":"f"}`) {
		t.Fatalf("next saw %v, want the untouched body twice (no token, nothing to remember)", next.hits)
	}
}
