package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/statemsg"
)

// The benchmark: 10,000 state messages through SQS -> handler -> DynamoDB on the
// local cloud, beside a plain conditional-write loop on the same emulator in the same run.
//
//	go test ./functions/stateingest -run '^$' -bench StateIngest -benchtime 1x
//
// Until the local cloud's SQS-to-Lambda poller exists, the pipeline's poller is this file's:
// it receives batches of ten from kumo's SQS, builds the events.SQSEvent the Lambda event
// source would (SenderId taken from contract.LocalSenderIDAttribute, as the local cloud
// does), calls Handle, and deletes what did not fail. The Lambda runtime hop is not in it.
const (
	benchMessages = 10_000
	benchServices = 100
	benchPollers  = 4 // concurrent "Lambda instances"
)

func BenchmarkStateIngest(b *testing.B) {
	b.Run("sqs-handler-dynamodb", benchPipeline)
	b.Run("conditional-write-loop", benchWriteLoop)
}

func benchPipeline(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		f := newFixture(b)
		f.h.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
		ctx := context.Background()
		client := sqs.NewFromConfig(f.env.Config)
		q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state"))})
		if err != nil {
			b.Fatal(err)
		}
		url := aws.ToString(q.QueueUrl)
		// Every service's first report is a transition; apply those before timing, so the
		// measured messages are the steady path.
		for s := range benchServices {
			f.handle(b, event(record(s, body(b, sampleReport(fmt.Sprintf("svc-%03d", s), 1)), sampleSender)))
		}
		sendAll(b, client, url)
		writes, reads := f.db.Writes(), f.db.Reads()
		b.StartTimer()

		start := time.Now()
		processed := drain(b, client, url, f.h)
		elapsed := time.Since(start)

		b.StopTimer()
		if processed != benchMessages {
			b.Fatalf("processed %d of %d", processed, benchMessages)
		}
		b.ReportMetric(float64(benchMessages)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(f.db.Writes()-writes)/benchMessages, "writes/msg")
		b.ReportMetric(float64(f.db.Reads()-reads)/benchMessages, "reads/msg")
		b.StartTimer()
	}
}

// sendAll queues benchMessages steady reports, round-robin over the services, in
// SendMessageBatch calls of ten as an exporter fleet would.
func sendAll(b *testing.B, client *sqs.Client, url string) {
	ctx := context.Background()
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i := range benchMessages {
		m := sampleReport(fmt.Sprintf("svc-%03d", i%benchServices), int64(2+i/benchServices))
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(body(b, m)),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				contract.LocalSenderIDAttribute: {DataType: aws.String("String"), StringValue: aws.String(sampleSender)},
			},
		})
		if len(entries) == 10 {
			if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
				b.Fatal(err)
			}
			entries = nil
		}
	}
}

// benchWriteLoop is the floor: the same number of conditional UpdateItems (newer order key
// wins) on the same emulator, from the same number of concurrent writers, with no SQS, no
// parsing, no verification.
func benchWriteLoop(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		env := cloudtest.Start(b)
		table := env.CreateTable(b, testTable(), "")
		db := env.DynamoDB()
		ctx := context.Background()
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		per := benchMessages / benchPollers
		for w := range benchPollers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per {
					n := w*per + i
					key := statemsg.OrderKey(1, int64(n))
					_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
						TableName: aws.String(table),
						Key: map[string]ddbtypes.AttributeValue{
							"PK": &ddbtypes.AttributeValueMemberS{Value: "DEP#bench"},
							"SK": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("SVC#svc-%03d", n%benchServices)},
						},
						UpdateExpression:          aws.String("SET #k = :k"),
						ConditionExpression:       aws.String("attribute_not_exists(#k) OR #k < :k"),
						ExpressionAttributeNames:  map[string]string{"#k": "orderKey"},
						ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":k": &ddbtypes.AttributeValueMemberS{Value: key}},
					})
					if err != nil {
						var ccf *ddbtypes.ConditionalCheckFailedException
						if !errors.As(err, &ccf) {
							b.Error(err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(benchMessages)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(1, "writes/msg") // by construction: one UpdateItem per message
		b.StartTimer()
	}
}

func testTable() *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String("x"),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("PK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("SK"), AttributeType: ddbtypes.ScalarAttributeTypeS},
		},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("PK"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("SK"), KeyType: ddbtypes.KeyTypeRange},
		},
	}
}
