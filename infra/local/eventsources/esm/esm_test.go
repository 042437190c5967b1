package esm

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/infra/local/sqsgate"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
)

type fixture struct {
	env      *cloudtest.Env
	mappings *Mappings
	lambda   *lambda.Client // through a front door that serves mappings here
	sqs      *sqs.Client
	mu       sync.Mutex
	batches  []Batch
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	f := &fixture{env: env, sqs: sqs.NewFromConfig(env.Config)}
	f.mappings = New(Config{AWS: env.Config, Account: "000000000000", Region: "us-east-1", Observer: func(b Batch) {
		f.mu.Lock()
		f.batches = append(f.batches, b)
		f.mu.Unlock()
	}})
	t.Cleanup(f.mappings.Close)
	proxy, err := frontdoor.Proxy(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	door := frontdoor.New(proxy)
	door.HandleIf("lambda", IsMappingRequest, f.mappings)
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	cfg := env.Config
	cfg.BaseEndpoint = aws.String(srv.URL)
	f.lambda = lambda.NewFromConfig(cfg)
	return f
}

func (f *fixture) observed() []Batch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Batch(nil), f.batches...)
}

// function creates a function in kumo and serves it with handler over the Runtime API
// (what lambda.Start does) until the test ends. handler returns the response and whether
// it is a function error.
func (f *fixture) function(t *testing.T, timeout int32, handler func(events.SQSEvent) (string, bool)) string {
	t.Helper()
	name := cloudtest.UniqueName("fn")
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("bootstrap")
	_, _ = w.Write([]byte("x"))
	_ = zw.Close()
	if _, err := lambda.NewFromConfig(f.env.Config).CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), Runtime: ltypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"), Timeout: aws.Int32(timeout),
		Role: aws.String("arn:aws:iam::000000000000:role/r"), Code: &ltypes.FunctionCode{ZipFile: zipped.Bytes()},
	}); err != nil {
		t.Fatal(err)
	}
	f.env.ReadyRuntime(t, name)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	base := f.env.URL + "/_runtime/" + name + "/2018-06-01/runtime/invocation/"
	go func() {
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"next", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			payload, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			var ev events.SQSEvent
			_ = json.Unmarshal(payload, &ev)
			out, failed := handler(ev)
			kind := "/response"
			if failed {
				kind = "/error"
				out = `{"errorMessage":"failed on purpose","errorType":"TestError"}`
			}
			r, err := http.Post(base+resp.Header.Get("Lambda-Runtime-Aws-Request-Id")+kind, "application/json", strings.NewReader(out))
			if err == nil {
				_ = r.Body.Close()
			}
		}
	}()
	return name
}

// queue creates a queue with attributes and returns its URL and ARN.
func (f *fixture) queue(t *testing.T, attrs map[string]string) (string, string) {
	t.Helper()
	ctx := context.Background()
	out, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("q")), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

func (f *fixture) send(t *testing.T, url string, bodies ...string) []string {
	t.Helper()
	var ids []string
	for _, b := range bodies {
		out, err := f.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(b),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("test")}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.MessageId)
	}
	return ids
}

// depth is the queue's visible plus in-flight message count.
func (f *fixture) depth(t *testing.T, url string) int {
	t.Helper()
	a, err := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	var n, m int
	_ = json.Unmarshal([]byte(a.Attributes["ApproximateNumberOfMessages"]), &n)
	_ = json.Unmarshal([]byte(a.Attributes["ApproximateNumberOfMessagesNotVisible"]), &m)
	return n + m
}

func (f *fixture) create(t *testing.T, in *lambda.CreateEventSourceMappingInput) *lambda.CreateEventSourceMappingOutput {
	t.Helper()
	out, err := f.lambda.CreateEventSourceMapping(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatchReachesTheFunctionAsAnSQSEventAndIsDeleted(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var got []events.SQSEvent
	fn := f.function(t, 3, func(ev events.SQSEvent) (string, bool) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		return `null`, false
	})
	url, arn := f.queue(t, nil)
	ids := f.send(t, url, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	out := f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn),
		BatchSize: aws.Int32(10), MaximumBatchingWindowInSeconds: aws.Int32(1)})
	if out.State == nil || *out.State != "Creating" || aws.ToInt32(out.BatchSize) != 10 || !strings.HasSuffix(aws.ToString(out.FunctionArn), ":function:"+fn) {
		t.Errorf("CreateEventSourceMapping answered %+v", out)
	}
	waitFor(t, "the queue to drain", func() bool { return f.depth(t, url) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || len(got[0].Records) != 3 {
		t.Fatalf("invocations %+v, want one batch of 3 (the batching window gathers them)", got)
	}
	r := got[0].Records[0]
	if r.MessageId != ids[0] || r.Body != `{"n":1}` || r.EventSource != "aws:sqs" || r.EventSourceARN != arn || r.AWSRegion != "us-east-1" ||
		r.ReceiptHandle == "" || r.Md5OfBody == "" || r.Attributes["ApproximateReceiveCount"] != "1" || r.Attributes["SentTimestamp"] == "" ||
		aws.ToString(r.MessageAttributes["kind"].StringValue) != "test" || r.MessageAttributes["kind"].DataType != "String" {
		t.Errorf("record = %+v", r)
	}
	g, err := f.lambda.GetEventSourceMapping(context.Background(), &lambda.GetEventSourceMappingInput{UUID: out.UUID})
	if err != nil || aws.ToString(g.State) != "Enabled" || aws.ToString(g.LastProcessingResult) != "OK" {
		t.Errorf("GetEventSourceMapping = %+v, %v", g, err)
	}
}

func TestPartialBatchFailureDeletesOnlyTheSucceeded(t *testing.T) {
	f := newFixture(t)
	var failID string
	var mu sync.Mutex
	seen := map[string]int{}
	fn := f.function(t, 1, func(ev events.SQSEvent) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		var failures []string
		for _, r := range ev.Records {
			seen[r.MessageId]++
			if r.MessageId == failID && seen[r.MessageId] == 1 {
				failures = append(failures, `{"itemIdentifier":"`+r.MessageId+`"}`)
			}
		}
		return `{"batchItemFailures":[` + strings.Join(failures, ",") + `]}`, false
	})
	// Visibility must outlast the batching window plus the function's run, or the batch
	// comes back while it is processed (AWS advises 6x the function timeout).
	url, arn := f.queue(t, map[string]string{"VisibilityTimeout": "2"})
	ids := f.send(t, url, "a", "b", "c")
	mu.Lock()
	failID = ids[1]
	mu.Unlock()
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn),
		BatchSize:             aws.Int32(10),
		FunctionResponseTypes: []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures}})
	waitFor(t, "the failed message to come back and succeed", func() bool { return f.depth(t, url) == 0 })
	// The observer hears of a batch after its deletions: wait for it rather than race it.
	waitFor(t, "the deleting batches to be observed", func() bool {
		n := 0
		for _, b := range f.observed() {
			n += len(b.Deleted)
		}
		return n >= len(ids)
	})
	mu.Lock()
	defer mu.Unlock()
	if seen[ids[0]] != 1 || seen[ids[2]] != 1 || seen[ids[1]] != 2 {
		t.Errorf("deliveries per message %v: the reported failure must be redelivered, the others not", seen)
	}
	deleted := map[string]int{}
	keptOnce := false
	for _, b := range f.observed() {
		for _, id := range b.Deleted {
			deleted[id]++
		}
		if slices.Contains(b.MessageIDs, failID) && !slices.Contains(b.Deleted, failID) {
			keptOnce = true
		}
	}
	if !keptOnce || len(deleted) != 3 || deleted[ids[0]] != 1 || deleted[ids[1]] != 1 || deleted[ids[2]] != 1 {
		t.Errorf("deletions %v (failed message kept once: %v): want each message deleted once, the failed one only after its retry", deleted, keptOnce)
	}
}

func TestWithoutReportBatchItemFailuresTheResponseIsIgnored(t *testing.T) {
	f := newFixture(t)
	var calls int
	var mu sync.Mutex
	fn := f.function(t, 3, func(ev events.SQSEvent) (string, bool) {
		mu.Lock()
		calls++
		mu.Unlock()
		return `{"batchItemFailures":[{"itemIdentifier":"` + ev.Records[0].MessageId + `"}]}`, false
	})
	url, arn := f.queue(t, nil)
	f.send(t, url, "a")
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn)})
	waitFor(t, "the queue to drain", func() bool { return f.depth(t, url) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("function called %d times, want 1", calls)
	}
}

func TestFunctionErrorKeepsTheBatchUntilRedriveToTheDLQ(t *testing.T) {
	f := newFixture(t)
	fn := f.function(t, 1, func(events.SQSEvent) (string, bool) { return "", true })
	dlqURL, dlqArn := f.queue(t, nil)
	url, arn := f.queue(t, map[string]string{"VisibilityTimeout": "1",
		"RedrivePolicy": `{"deadLetterTargetArn":"` + dlqArn + `","maxReceiveCount":"2"}`})
	ids := f.send(t, url, "poison")
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn), BatchSize: aws.Int32(1)})
	waitFor(t, "the message to reach the DLQ", func() bool { return f.depth(t, dlqURL) == 1 })
	if f.depth(t, url) != 0 {
		t.Error("the source queue must be empty after redrive")
	}
	waitFor(t, "the function's maxReceiveCount=2 tries to be observed", func() bool { return len(f.observed()) >= 2 })
	batches := f.observed()
	for _, b := range batches {
		if b.FunctionError != "Unhandled" || len(b.Deleted) != 0 || b.MessageIDs[0] != ids[0] {
			t.Errorf("batch %+v: a function error deletes nothing", b)
		}
	}
}

func TestMalformedPartialResponseFailsTheWholeBatch(t *testing.T) {
	for _, resp := range []string{`{"batchItemFailures":[{"itemIdentifier":""}]}`, `{"batchItemFailures":[{"itemIdentifier":"not-in-batch"}]}`, `[1`} {
		if failed, ok := itemFailures([]byte(resp), []string{"m1"}); ok {
			t.Errorf("itemFailures(%s) = %v, ok; want the whole batch failed", resp, failed)
		}
	}
	for _, resp := range []string{``, `null`, `{}`, `{"batchItemFailures":[]}`, `{"batchItemFailures":null}`} {
		if failed, ok := itemFailures([]byte(resp), []string{"m1"}); !ok || len(failed) != 0 {
			t.Errorf("itemFailures(%q) = %v, %v; want every message succeeded", resp, failed, ok)
		}
	}
}

func TestFilterCriteriaDropAndDeleteNonMatchingMessages(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var bodies []string
	fn := f.function(t, 3, func(ev events.SQSEvent) (string, bool) {
		mu.Lock()
		for _, r := range ev.Records {
			bodies = append(bodies, r.Body)
		}
		mu.Unlock()
		return "null", false
	})
	url, arn := f.queue(t, nil)
	f.send(t, url, `{"kind":"state"}`, `{"kind":"noise"}`, `plain text`)
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn),
		MaximumBatchingWindowInSeconds: aws.Int32(1),
		FilterCriteria:                 &ltypes.FilterCriteria{Filters: []ltypes.Filter{{Pattern: aws.String(`{"body":{"kind":["state"]}}`)}}}})
	waitFor(t, "the queue to drain", func() bool { return f.depth(t, url) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || bodies[0] != `{"kind":"state"}` {
		t.Errorf("the function received %q, want only the matching message", bodies)
	}
}

func TestBadMappingsAreRefusedAndNothingIsCreated(t *testing.T) {
	f := newFixture(t)
	fn := f.function(t, 60, func(events.SQSEvent) (string, bool) { return "null", false })
	short := f.function(t, 3, func(events.SQSEvent) (string, bool) { return "null", false })
	_, arn := f.queue(t, map[string]string{"VisibilityTimeout": "30"})
	_, fifoArn := f.queue(t, nil)
	fifoURL, err := f.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("q") + ".fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: fifoURL.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	fifoArn = fa.Attributes["QueueArn"]
	in := func(mod func(*lambda.CreateEventSourceMappingInput)) *lambda.CreateEventSourceMappingInput {
		m := &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(short), EventSourceArn: aws.String(arn)}
		mod(m)
		return m
	}
	cases := []struct {
		in         *lambda.CreateEventSourceMappingInput
		code, want string
	}{
		{in(func(m *lambda.CreateEventSourceMappingInput) { m.FunctionName = aws.String("missing-fn") }), "ResourceNotFoundException", "Function does not exist: missing-fn"},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.EventSourceArn = aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s")
		}), "InvalidParameterValueException", "maps SQS queues only"},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.EventSourceArn = aws.String("arn:aws:sqs:us-east-1:000000000000:missing-queue")
		}), "InvalidParameterValueException", "The specified queue does not exist"},
		{in(func(m *lambda.CreateEventSourceMappingInput) { m.BatchSize = aws.Int32(10001) }), "InvalidParameterValueException", "BatchSize 10001: must be between 1 and 10000"},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.EventSourceArn = aws.String(fifoArn)
			m.BatchSize = aws.Int32(11)
			m.MaximumBatchingWindowInSeconds = aws.Int32(1)
		}), "InvalidParameterValueException", "BatchSize 11: must be between 1 and 10 for this queue"},
		{in(func(m *lambda.CreateEventSourceMappingInput) { m.BatchSize = aws.Int32(50) }), "InvalidParameterValueException", "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"},
		{in(func(m *lambda.CreateEventSourceMappingInput) { m.MaximumBatchingWindowInSeconds = aws.Int32(301) }), "InvalidParameterValueException", "MaximumBatchingWindowInSeconds 301: must be between 0 and 300"},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.FunctionResponseTypes = []ltypes.FunctionResponseType{"Everything"}
		}), "InvalidParameterValueException", `FunctionResponseTypes "Everything"`},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.ScalingConfig = &ltypes.ScalingConfig{MaximumConcurrency: aws.Int32(1)}
		}), "InvalidParameterValueException", "ScalingConfig.MaximumConcurrency 1: must be between 2 and 1000"},
		{in(func(m *lambda.CreateEventSourceMappingInput) {
			m.FilterCriteria = &ltypes.FilterCriteria{Filters: []ltypes.Filter{{Pattern: aws.String(`{"body":"not-a-list"}`)}}}
		}), "InvalidParameterValueException", "FilterCriteria.Filters[0].Pattern"},
		{in(func(m *lambda.CreateEventSourceMappingInput) { m.FunctionName = aws.String(fn) }), "InvalidParameterValueException", "Queue visibility timeout: 30 seconds is less than Function timeout: 60 seconds"},
	}
	for _, c := range cases {
		_, err := f.lambda.CreateEventSourceMapping(context.Background(), c.in)
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != c.code || !strings.Contains(apiErr.ErrorMessage(), c.want) {
			t.Errorf("error = %v, want %s %q", err, c.code, c.want)
		}
	}
	list, err := f.lambda.ListEventSourceMappings(context.Background(), &lambda.ListEventSourceMappingsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list.EventSourceMappings {
		if strings.HasSuffix(aws.ToString(m.FunctionArn), ":"+short) || strings.HasSuffix(aws.ToString(m.FunctionArn), ":"+fn) {
			t.Errorf("a refused mapping was created: %+v", m)
		}
	}
	// The same function and queue twice: a conflict, and still one mapping.
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(short), EventSourceArn: aws.String(arn)})
	_, err = f.lambda.CreateEventSourceMapping(context.Background(), &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(short), EventSourceArn: aws.String(arn)})
	var conflict *ltypes.ResourceConflictException
	if !errors.As(err, &conflict) {
		t.Errorf("duplicate mapping: error = %v, want ResourceConflictException", err)
	}
	list, _ = f.lambda.ListEventSourceMappings(context.Background(), &lambda.ListEventSourceMappingsInput{FunctionName: aws.String(short)})
	if len(list.EventSourceMappings) != 1 {
		t.Errorf("ListEventSourceMappings(FunctionName) = %d mappings, want 1", len(list.EventSourceMappings))
	}
}

func TestDisableAndDeleteStopPolling(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	calls := 0
	fn := f.function(t, 3, func(events.SQSEvent) (string, bool) {
		mu.Lock()
		calls++
		mu.Unlock()
		return "null", false
	})
	url, arn := f.queue(t, nil)
	out := f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn), Enabled: aws.Bool(false)})
	ctx := context.Background()
	g, _ := f.lambda.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: out.UUID})
	if aws.ToString(g.State) != "Disabled" {
		t.Errorf("a mapping created disabled is %q", aws.ToString(g.State))
	}
	f.send(t, url, "x")
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	if calls != 0 {
		t.Errorf("a disabled mapping invoked the function %d times", calls)
	}
	mu.Unlock()
	if _, err := f.lambda.UpdateEventSourceMapping(ctx, &lambda.UpdateEventSourceMappingInput{UUID: out.UUID, Enabled: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the enabled mapping to process the message", func() bool { return f.depth(t, url) == 0 })
	del, err := f.lambda.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: out.UUID})
	if err != nil || aws.ToString(del.State) != "Deleting" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	f.send(t, url, "after delete")
	time.Sleep(300 * time.Millisecond)
	if f.depth(t, url) != 1 {
		t.Error("a deleted mapping still polls")
	}
	_, err = f.lambda.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: out.UUID})
	var nf *ltypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("get after delete: %v, want ResourceNotFoundException", err)
	}
}

// The front door stamps each sent message with its sender (package sqsgate); the record
// Lambda gets carries it as SQS's SenderId attribute, not as a message attribute.
func TestStampedSenderBecomesTheRecordsSenderId(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var records []events.SQSMessage
	fn := f.function(t, 3, func(ev events.SQSEvent) (string, bool) {
		mu.Lock()
		records = append(records, ev.Records...)
		mu.Unlock()
		return `null`, false
	})
	url, arn := f.queue(t, nil)
	ctx := context.Background()
	sender := "AROAEXAMPLEEXAMPLEEXA:state-exporter"
	kind := sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("report")}
	for body, attrs := range map[string]map[string]sqstypes.MessageAttributeValue{
		"stamped":          {contract.LocalSenderIDAttribute: {DataType: aws.String("String"), StringValue: aws.String(sender)}, "kind": kind},
		"stamped-only":     {contract.LocalSenderIDAttribute: {DataType: aws.String("String"), StringValue: aws.String(sender)}},
		"not-stamped":      {"kind": kind},
		"no-attributes-at": nil,
	} {
		if _, err := f.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body), MessageAttributes: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	f.create(t, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String(fn), EventSourceArn: aws.String(arn), BatchSize: aws.Int32(10)})
	waitFor(t, "the queue to drain", func() bool { return f.depth(t, url) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(records) != 4 {
		t.Fatalf("%d records, want 4", len(records))
	}
	kindOnly := sqsgate.MessageAttributesMD5(map[string]sqstypes.MessageAttributeValue{"kind": kind})
	for _, r := range records {
		if _, ok := r.MessageAttributes[contract.LocalSenderIDAttribute]; ok {
			t.Errorf("%s: the sender is still a message attribute", r.Body)
		}
		senderID, hasSender := r.Attributes["SenderId"]
		switch r.Body {
		case "stamped":
			if senderID != sender || aws.ToString(r.MessageAttributes["kind"].StringValue) != "report" || r.Md5OfMessageAttributes != kindOnly {
				t.Errorf("stamped record: SenderId %q, attributes %v, md5 %q (want %q)", senderID, r.MessageAttributes, r.Md5OfMessageAttributes, kindOnly)
			}
		case "stamped-only":
			if senderID != sender || len(r.MessageAttributes) != 0 || r.Md5OfMessageAttributes != "" {
				t.Errorf("stamped-only record: SenderId %q, attributes %v, md5 %q", senderID, r.MessageAttributes, r.Md5OfMessageAttributes)
			}
		default:
			// stateingest refuses these as no-sender.
			if hasSender {
				t.Errorf("%s: SenderId %q on a message nobody stamped", r.Body, senderID)
			}
		}
	}
}
