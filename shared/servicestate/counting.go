package servicestate

import (
	"context"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// CountingDB counts the write requests (PutItem, UpdateItem, DeleteItem, and each item of a
// TransactWriteItems) and read requests made through it. Ingest logs the counts per batch,
// and the benchmark reports writes per message, so the one-write steady path is measured
// rather than claimed.
type CountingDB struct {
	DynamoDB
	writes, reads atomic.Int64
}

// CountWrites wraps db.
func CountWrites(db DynamoDB) *CountingDB { return &CountingDB{DynamoDB: db} }

// Writes returns the number of item writes so far.
func (c *CountingDB) Writes() int64 { return c.writes.Load() }

// Reads returns the number of read requests (GetItem, BatchGetItem, Query pages) so far.
func (c *CountingDB) Reads() int64 { return c.reads.Load() }

func (c *CountingDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.writes.Add(1)
	return c.DynamoDB.PutItem(ctx, in, o...)
}

func (c *CountingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.writes.Add(1)
	return c.DynamoDB.UpdateItem(ctx, in, o...)
}

func (c *CountingDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.writes.Add(1)
	return c.DynamoDB.DeleteItem(ctx, in, o...)
}

func (c *CountingDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.writes.Add(int64(len(in.TransactItems)))
	return c.DynamoDB.TransactWriteItems(ctx, in, o...)
}

func (c *CountingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.reads.Add(1)
	return c.DynamoDB.GetItem(ctx, in, o...)
}

func (c *CountingDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.reads.Add(1)
	return c.DynamoDB.Query(ctx, in, o...)
}

func (c *CountingDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.reads.Add(1)
	return c.DynamoDB.BatchGetItem(ctx, in, o...)
}
