package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// The benchmark: 10,000 steady state messages (100 services) sent to the state
// queue with the exporter role's credentials, drained by the event source mapping into the
// stateingest process, which writes to kumo's DynamoDB; beside it, in the same run, a plain
// conditional-write loop of as many UpdateItems against the same kumo through the same
// front door.
//
//	go test ./infra/local/e2e -run '^$' -bench StateIngest -benchtime 1x
const (
	benchMessages = 10_000
	benchServices = 100
	// benchWriters is the loop's concurrency: what the pipeline can reach, the mapping's
	// pollers (2) times the messages stateingest handles at once per batch (10).
	benchWriters = 20
)

func BenchmarkStateIngest(b *testing.B) {
	b.Run("sqs-lambda-dynamodb", benchPipeline)
	b.Run("conditional-write-loop", benchWriteLoop)
}

// dynamoWrites and dynamoReads are DynamoDB operations at the front door.
var (
	dynamoWrites = []string{"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
	dynamoReads  = []string{"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
)

func dynamoCalls(s map[frontdoor.Call]int64, ops []string) int64 {
	var n int64
	for _, op := range ops {
		n += s[frontdoor.Call{Service: "dynamodb", Operation: op}]
	}
	return n
}

func benchPipeline(b *testing.B) {
	st := state(b)
	// A first report may be retried (its deployment's health, contended by a hundred
	// services turning healthy at once, is an optimistic write): back in seconds, not minutes.
	st.fastRedelivery(b)
	tn := onboard(b)
	exporter := tn.exporter(b)
	mapping := ingestMapping(b, st)

	// Every service's first report is a transition; apply those before measuring, so what
	// is measured is the steady path.
	var first []string
	seqs := map[string]int64{}
	for s := range benchServices {
		svc := fmt.Sprintf("svc-%03d", s)
		first = append(first, encode(b, tn.report(svc, 1)))
		seqs[svc] = 1
	}
	rec := shared.record(b)
	st.send(b, exporter, first...)
	st.awaitStored(b, tn, seqs)
	awaitDeleted(b, rec, tn.dep.ID, benchServices) // the queue is empty before the mapping pauses
	// During the run the queue's visibility timeout is stateingest's timeout, the least the
	// mapping accepts (the stack's is six times that): a received batch whose answer the
	// local cloud loses (seen now and then under load: the SDK retries the receive) comes
	// back within it instead of minutes later. Such a run is logged.
	redelivery := functionTimeout(b, contract.FunctionStateIngest)
	st.setVisibility(b, fmt.Sprint(int(redelivery.Seconds())))

	var deleted, batchMs, batches atomic.Int64
	batchDone := make(chan struct{}, 1)
	shared.subscribe(b, func(e localcloud.Event) {
		var n, d int
		if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionStateIngest {
			if _, err := fmt.Sscanf(e.Detail, "%d ms", &n); err == nil {
				batchMs.Add(int64(n))
				batches.Add(1)
			}
		}
		if e.Kind == localcloud.KindBatch && e.Subject == contract.FunctionStateIngest {
			if _, err := fmt.Sscanf(e.Detail, "%d messages, %d deleted", &n, &d); err == nil {
				deleted.Add(int64(d))
			}
			select {
			case batchDone <- struct{}{}:
			default:
			}
		}
	})
	b.Cleanup(func() {
		setMapping(b, mapping, true)
		st.stackRedelivery(b)
	})
	seq := int64(1)
	var elapsed time.Duration
	var writes, reads, invocations int64
	applied, ms := 0, 0.0
	for b.Loop() {
		b.StopTimer()
		// Queue the messages with the mapping paused, as a backlog the event source drains.
		setMapping(b, mapping, false)
		bodies := make([]string, 0, benchMessages)
		for i := range benchMessages {
			bodies = append(bodies, encode(b, tn.report(fmt.Sprintf("svc-%03d", i%benchServices), seq+1+int64(i/benchServices))))
		}
		// In order, as an exporter fleet sends: a service's next report comes a hundred
		// messages later, so no two reports of one service are ever in flight together.
		st.send(b, exporter, bodies...)
		seq += benchMessages / benchServices
		before, inv0 := shared.cloud.Door.Stats().Snapshot(), shared.cloud.Counters().LambdaInvocations
		logMark := shared.logs.size()
		deleted.Store(0)
		batchMs.Store(0)
		batches.Store(0)
		b.StartTimer()

		began := time.Now()
		setMapping(b, mapping, true)
		// Done when every service stores its newest report. Not "10,000 deleted": now and then
		// the local cloud loses the answer to a call and the SDK sends it again (a batch
		// invoked twice is deleted twice; a receive sent again leaves its first batch in
		// flight), so deletions are not a count of distinct messages.
		newest := statemsg.OrderKey(tn.epoch, seq)
		drained := func() bool {
			if deleted.Load() < benchMessages-benchServices {
				return false
			}
			for _, svc := range st.services(b, tn.dep.ID) {
				if svc.OrderKey != newest {
					return false
				}
			}
			return true
		}
		last, progress, stalled := int64(0), time.Now(), false
		for !drained() {
			select {
			case <-batchDone:
			case <-time.After(time.Second):
			}
			if n := deleted.Load(); n != last {
				last, progress = n, time.Now()
			}
			if time.Since(progress) > redelivery+30*time.Second {
				b.Fatalf("the mapping deleted %d of %d messages, then nothing for %s", last, benchMessages, redelivery+30*time.Second)
			}
			if stall := time.Since(progress); stall > 5*time.Second && !stalled {
				stalled = true
				b.Logf("no message deleted for %s after %d: a batch in flight was lost and waits for its visibility timeout (%s); this run's msgs/s is not representative", stall, last, redelivery)
			}
		}
		elapsed += time.Since(began)

		b.StopTimer()
		// Let stragglers (older reports still in flight) finish before counting.
		st.awaitEmpty(b, redelivery+30*time.Second)
		after := shared.cloud.Door.Stats().Snapshot()
		writes += dynamoCalls(after, dynamoWrites) - dynamoCalls(before, dynamoWrites)
		reads += dynamoCalls(after, dynamoReads) - dynamoCalls(before, dynamoReads)
		invocations += shared.cloud.Counters().LambdaInvocations - inv0
		ms += float64(batchMs.Load()) / float64(batches.Load())
		st.logsSettled(b)
		totals := batchTotals(b, shared.logs.since(logMark))
		applied += totals["applied"]
		if totals["applied"] != benchMessages {
			b.Logf("stateingest's batches during the run: %v (duplicates: a write or a batch the SDK sent again after its answer was lost; out of order: a received batch whose answer was lost, back after the visibility timeout, once newer reports were stored)", totals)
		}
		if totals["rejected"]+totals["retry"] != 0 {
			b.Fatalf("stateingest's batches during the run: %v", totals)
		}
		b.StartTimer()
	}
	msgs := float64(b.N * benchMessages)
	b.ReportMetric(msgs/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(writes)/msgs, "ddb-writes/msg")
	b.ReportMetric(float64(reads)/msgs, "ddb-reads/msg")
	b.ReportMetric(msgs/float64(invocations), "msgs/invocation")
	b.ReportMetric(ms/float64(b.N), "ms/invocation") // the function's own time per batch
	// The steady path is every message applied (none older than the stored report).
	b.ReportMetric(float64(applied)/msgs, "applied/msg")
}

// ingestMapping is stateingest's event source mapping on the state queue.
func ingestMapping(b *testing.B, st *stateEnv) string {
	fn, ok := shared.cloud.FunctionName(contract.FunctionStateIngest)
	if !ok {
		b.Fatal("stateingest is not running")
	}
	out, err := lambda.NewFromConfig(shared.cloud.WatchConfig()).ListEventSourceMappings(context.Background(),
		&lambda.ListEventSourceMappingsInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(st.queueARN)})
	if err != nil || len(out.EventSourceMappings) != 1 {
		b.Fatalf("stateingest's mappings on the state queue: %+v (%v), want one", out, err)
	}
	return aws.ToString(out.EventSourceMappings[0].UUID)
}

// functionTimeout is a control-plane function's configured timeout.
func functionTimeout(b *testing.B, byocName string) time.Duration {
	fn, _ := shared.cloud.FunctionName(byocName)
	out, err := lambda.NewFromConfig(shared.cloud.WatchConfig()).GetFunctionConfiguration(context.Background(),
		&lambda.GetFunctionConfigurationInput{FunctionName: aws.String(fn)})
	if err != nil || aws.ToInt32(out.Timeout) <= 0 {
		b.Fatalf("%s's configuration: %+v (%v)", byocName, out, err)
	}
	return time.Duration(aws.ToInt32(out.Timeout)) * time.Second
}

func setMapping(b *testing.B, id string, enabled bool) {
	_, err := lambda.NewFromConfig(shared.cloud.WatchConfig()).UpdateEventSourceMapping(context.Background(),
		&lambda.UpdateEventSourceMappingInput{UUID: aws.String(id), Enabled: aws.Bool(enabled)})
	if err != nil {
		b.Fatal(err)
	}
}

// benchWriteLoop is the floor: conditional UpdateItems (a newer order key wins), as many
// as the pipeline's messages over as many items, from benchWriters writers, through the
// front door to the same kumo, with no SQS, no Lambda, no parsing or verification.
func benchWriteLoop(b *testing.B) {
	ctx := context.Background()
	cfg := shared.cloud.Config()
	db := dynamodb.NewFromConfig(cfg)
	table := "e2e-bench-" + scenario.RandomAccount()
	if _, err := db.CreateTable(ctx, store.TableDefinition(table)); err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	round := 0
	for b.Loop() {
		round++
		began := time.Now()
		var wg sync.WaitGroup
		per := benchMessages / benchWriters
		for w := range benchWriters {
			wg.Go(func() {
				for i := range per {
					n := w*per + i
					_, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
						TableName: aws.String(table),
						Key: map[string]ddbtypes.AttributeValue{
							"PK": &ddbtypes.AttributeValueMemberS{Value: "DEP#bench"},
							"SK": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprintf("SVC#svc-%03d", n%benchServices)},
						},
						UpdateExpression:          aws.String("SET #k = :k"),
						ConditionExpression:       aws.String("attribute_not_exists(#k) OR #k < :k"),
						ExpressionAttributeNames:  map[string]string{"#k": "orderKey"},
						ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":k": &ddbtypes.AttributeValueMemberS{Value: statemsg.OrderKey(int64(round), int64(n))}},
					})
					var ccf *ddbtypes.ConditionalCheckFailedException
					if err != nil && !errors.As(err, &ccf) {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(began)
	}
	b.ReportMetric(float64(b.N*benchMessages)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(1, "ddb-writes/msg") // by construction
}
