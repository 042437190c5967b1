package esm

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/eventpattern"
	"github.com/byocloud/byoc/infra/local/sqsgate"
	"github.com/byocloud/byoc/shared/contract"
)

// Config wires the mappings.
type Config struct {
	// AWS reaches kumo's Lambda and SQS (through the front door, as internal calls).
	AWS     aws.Config
	Account string
	Region  string
	// Pollers is how many batches of one mapping may be in flight at once (Lambda scales
	// SQS pollers with the backlog; the local cloud keeps a fixed number). 0 means 2;
	// a mapping's ScalingConfig.MaximumConcurrency lowers it.
	Pollers int
	// Observer is told of every batch handed to a function.
	Observer func(Batch)
	Logger   *slog.Logger
	// Chaos, when armed, holds some batches back or hands them over twice (nil injects nothing).
	Chaos *chaos.Injector
}

// Batch is one invocation of a mapping's function.
type Batch struct {
	Mapping       string
	Function      string // function ARN
	Queue         string // queue ARN
	MessageIDs    []string
	Bodies        map[string]string // message id -> body, of the messages handed to the function
	Deleted       []string          // messages removed from the queue: processed, or filtered out
	FunctionError string            // "Unhandled" etc. when the function failed: nothing deleted
	Err           error             // the invocation itself failed (no runtime, throttled, ...)
	At            time.Time
}

// Mappings holds the event source mappings and their pollers. Safe for concurrent use.
type Mappings struct {
	cfg      Config
	lambda   *lambda.Client
	sqs      *sqs.Client
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	urls     sync.Map // queue ARN -> URL
	timeouts sync.Map // function ARN -> timeout

	mu   sync.Mutex
	byID map[string]*mapping
	wg   sync.WaitGroup
}

type mapping struct {
	cfg     Configuration
	enabled bool
	cancel  context.CancelFunc
	done    sync.WaitGroup
	mu      sync.Mutex
	result  string
}

func (mp *mapping) snapshot() Configuration {
	c := mp.cfg
	c.FunctionResponseTypes = append([]string{}, c.FunctionResponseTypes...)
	mp.mu.Lock()
	if mp.result != "" {
		c.LastProcessingResult = mp.result
	}
	mp.mu.Unlock()
	return c
}

// stop ends a mapping's pollers and waits for their batch in flight.
func (mp *mapping) stop() {
	if mp.cancel != nil {
		mp.cancel()
		mp.cancel = nil
	}
	mp.done.Wait()
}

// New returns an empty set of mappings.
func New(cfg Config) *Mappings {
	if cfg.Pollers <= 0 {
		cfg.Pollers = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Mappings{
		cfg: cfg, lambda: lambda.NewFromConfig(cfg.AWS), sqs: sqs.NewFromConfig(cfg.AWS), log: cfg.Logger,
		ctx: ctx, cancel: cancel, byID: map[string]*mapping{},
	}
}

// Close stops every poller.
func (m *Mappings) Close() {
	m.cancel()
	m.mu.Lock()
	all := make([]*mapping, 0, len(m.byID))
	for _, mp := range m.byID {
		all = append(all, mp)
	}
	m.mu.Unlock()
	for _, mp := range all {
		mp.done.Wait()
	}
}

// settle moves a created or updated mapping to Enabled (pollers started) or Disabled.
func (m *Mappings) settle(mp *mapping) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp.cfg.LastModified = float64(time.Now().UnixMilli()) / 1000
	if !mp.enabled {
		mp.cfg.State = "Disabled"
		return
	}
	mp.cfg.State = "Enabled"
	ctx, cancel := context.WithCancel(m.ctx)
	mp.cancel = cancel
	n := m.cfg.Pollers
	if sc := mp.cfg.ScalingConfig; sc != nil && sc.MaximumConcurrency != nil && *sc.MaximumConcurrency < n {
		n = *sc.MaximumConcurrency
	}
	var filters []*eventpattern.Pattern
	if mp.cfg.FilterCriteria != nil {
		for _, f := range mp.cfg.FilterCriteria.Filters {
			p, _ := eventpattern.Compile([]byte(f.Pattern)) // validated by apply
			filters = append(filters, p)
		}
	}
	url, _ := m.urls.Load(mp.cfg.EventSourceArn)
	p := &poller{m: m, mp: mp, cfg: mp.cfg, url: url.(string), filters: filters}
	for range n {
		mp.done.Go(func() { p.run(ctx) })
	}
}

type poller struct {
	m       *Mappings
	mp      *mapping
	cfg     Configuration
	url     string
	filters []*eventpattern.Pattern
}

func (p *poller) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msgs, err := p.receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.m.log.Warn("event source mapping: receive failed", "mapping", p.cfg.UUID, "queue", p.cfg.EventSourceArn, "error", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
			}
			continue
		}
		backoff = 100 * time.Millisecond
		if len(msgs) > 0 {
			p.process(ctx, msgs)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// receive gathers one batch: up to BatchSize messages, waiting at most the batching window
// after the first one (Lambda's MaximumBatchingWindowInSeconds); with no window, what one
// long poll returns.
func (p *poller) receive(ctx context.Context) ([]sqstypes.Message, error) {
	var msgs []sqstypes.Message
	var deadline time.Time
	window := time.Duration(p.cfg.MaximumBatchingWindowInSeconds) * time.Second
	for len(msgs) < p.cfg.BatchSize {
		// Short long polls: kumo's long poll wakes for new messages but not for ones whose
		// visibility timeout ends meanwhile, and those must come back on time.
		wait := int32(1)
		if len(msgs) > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = int32(left.Seconds())
		}
		out, err := p.m.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.url),
			MaxNumberOfMessages:         int32(min(10, p.cfg.BatchSize-len(msgs))),
			WaitTimeSeconds:             wait,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
			MessageAttributeNames:       []string{"All"},
		})
		if err != nil {
			if len(msgs) > 0 && ctx.Err() == nil {
				return msgs, nil
			}
			return nil, err
		}
		if len(msgs) == 0 && len(out.Messages) > 0 {
			deadline = time.Now().Add(window)
		}
		msgs = append(msgs, out.Messages...)
		if window == 0 && len(msgs) > 0 {
			break
		}
	}
	return msgs, nil
}

// process filters a batch, invokes the function and deletes what succeeded.
func (p *poller) process(ctx context.Context, msgs []sqstypes.Message) {
	b := Batch{Mapping: p.cfg.UUID, Function: p.cfg.FunctionArn, Queue: p.cfg.EventSourceArn, At: time.Now()}
	defer func() {
		if p.m.cfg.Observer != nil {
			p.m.cfg.Observer(b)
		}
	}()
	var records []events.SQSMessage
	var filteredOut []sqstypes.Message
	for _, msg := range msgs {
		rec := record(msg, p.cfg.EventSourceArn, p.m.cfg.Region)
		if p.matches(rec) {
			records = append(records, rec)
			b.MessageIDs = append(b.MessageIDs, rec.MessageId)
			if b.Bodies == nil {
				b.Bodies = map[string]string{}
			}
			b.Bodies[rec.MessageId] = rec.Body
		} else {
			filteredOut = append(filteredOut, msg)
		}
	}
	// Lambda deletes the messages its filters drop: they will never be processed.
	b.Deleted = append(b.Deleted, p.delete(ctx, filteredOut)...)
	if len(records) == 0 {
		return
	}
	payload, err := json.Marshal(events.SQSEvent{Records: records})
	if err != nil {
		b.Err = err
		return
	}
	invoke := &lambda.InvokeInput{
		FunctionName: aws.String(p.cfg.FunctionArn), InvocationType: ltypes.InvocationTypeRequestResponse, Payload: payload,
	}
	// With chaos armed, SQS's at-least-once delivery: a batch held back while the other
	// pollers go on (so later messages overtake it), or handed to the function twice.
	duplicate, hold := p.m.cfg.Chaos.Delivery("queue " + p.cfg.EventSourceArn)
	// Decided when the batch goes out: a batch dispatched while chaos was armed and failed
	// after it was disarmed (a killed invocation answers late) returns quickly too.
	redeliver := p.m.cfg.Chaos.Redelivery()
	sleep(ctx, hold)
	var copies sync.WaitGroup
	if duplicate { // a copy racing this one, as another poller's receive of the same messages
		copies.Go(func() { _, _ = p.m.lambda.Invoke(ctx, invoke) })
	}
	out, err := p.m.lambda.Invoke(ctx, invoke)
	copies.Wait()
	if err != nil {
		// Not the function's answer (no runtime, throttled, shutting down): the messages
		// stay, and return when their visibility timeout expires.
		b.Err = err
		p.setResult("PROBLEM: Function call failed")
		p.hastenRedelivery(ctx, msgs, redeliver)
		return
	}
	if out.FunctionError != nil {
		b.FunctionError = aws.ToString(out.FunctionError)
		p.setResult("PROBLEM: Function call failed")
		p.hastenRedelivery(ctx, msgs, redeliver)
		return
	}
	keep := map[string]bool{}
	if reportsItemFailures(p.cfg) {
		failed, ok := itemFailures(out.Payload, b.MessageIDs)
		if !ok {
			// An unreadable partial-failure response fails the whole batch, as Lambda does.
			b.FunctionError = "InvalidBatchItemFailures"
			p.setResult("PROBLEM: Function call failed")
			return
		}
		for _, id := range failed {
			keep[id] = true
		}
	}
	var done, kept []sqstypes.Message
	for _, msg := range msgs {
		switch {
		case keep[aws.ToString(msg.MessageId)]:
			kept = append(kept, msg)
		case !contains(filteredOut, msg):
			done = append(done, msg)
		}
	}
	p.hastenRedelivery(ctx, kept, redeliver)
	b.Deleted = append(b.Deleted, p.delete(ctx, done)...)
	p.setResult("OK")
}

// hastenRedelivery shortens to d the invisibility of a failed batch's messages dispatched
// while chaos was armed (chaos.Injector.Redelivery says why; 0 leaves the queue's own).
func (p *poller) hastenRedelivery(ctx context.Context, msgs []sqstypes.Message, d time.Duration) {
	if d <= 0 || len(msgs) == 0 {
		return
	}
	entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(msgs))
	for i, msg := range msgs {
		entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: msg.ReceiptHandle, VisibilityTimeout: int32(d.Seconds())}
	}
	if _, err := p.m.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(p.url), Entries: entries}); err != nil {
		p.m.log.Warn("event source mapping: could not hasten a failed batch's redelivery", "queue", p.cfg.EventSourceArn, "error", err)
	}
}

func contains(list []sqstypes.Message, msg sqstypes.Message) bool {
	for _, m := range list {
		if aws.ToString(m.MessageId) == aws.ToString(msg.MessageId) {
			return true
		}
	}
	return false
}

func (p *poller) setResult(r string) {
	p.mp.mu.Lock()
	p.mp.result = r
	p.mp.mu.Unlock()
}

func reportsItemFailures(c Configuration) bool {
	for _, t := range c.FunctionResponseTypes {
		if t == "ReportBatchItemFailures" {
			return true
		}
	}
	return false
}

// itemFailures reads a partial batch response. Lambda's rules: an empty or null response
// or list means every message succeeded; a response that is not the documented shape, or
// an itemIdentifier that is empty or not in the batch, fails the whole batch
// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html).
func itemFailures(payload []byte, batch []string) (failed []string, ok bool) {
	if len(payload) == 0 || string(payload) == "null" {
		return nil, true
	}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, false
	}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" {
			return nil, false
		}
		found := false
		for _, id := range batch {
			found = found || id == *f.ItemIdentifier
		}
		if !found {
			return nil, false
		}
		failed = append(failed, *f.ItemIdentifier)
	}
	return failed, true
}

// delete removes messages in batches of ten and returns the ids deleted.
func (p *poller) delete(ctx context.Context, msgs []sqstypes.Message) []string {
	var deleted []string
	for start := 0; start < len(msgs); start += 10 {
		chunk := msgs[start:min(start+10, len(msgs))]
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(chunk))
		for i, msg := range chunk {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: msg.ReceiptHandle}
		}
		out, err := p.m.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.url), Entries: entries})
		if err != nil {
			p.m.log.Warn("event source mapping: delete failed", "mapping", p.cfg.UUID, "error", err)
			continue
		}
		for _, ok := range out.Successful {
			var i int
			_, _ = fmt.Sscan(aws.ToString(ok.Id), &i)
			deleted = append(deleted, aws.ToString(chunk[i].MessageId))
		}
	}
	return deleted
}

// matches applies FilterCriteria: a record passes when any filter matches it (no filters:
// every record passes). Lambda matches the body as JSON when it is JSON, else as a string.
func (p *poller) matches(rec events.SQSMessage) bool {
	if len(p.filters) == 0 {
		return true
	}
	raw, _ := json.Marshal(rec)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	var body any
	if err := json.Unmarshal([]byte(rec.Body), &body); err == nil {
		doc["body"] = body
	}
	for _, f := range p.filters {
		if f.Match(doc) {
			return true
		}
	}
	return false
}

// record turns a received message into the record Lambda puts in an SQS event. The sender
// the front door stamped (contract.LocalSenderIDAttribute) becomes the SenderId attribute,
// as SQS reports it, and is not a message attribute; a message without it has no SenderId.
// md5OfMessageAttributes is SQS's digest of the attributes left (kumo computes none).
func record(msg sqstypes.Message, queueArn, region string) events.SQSMessage {
	attrs := msg.MessageAttributes
	if sender, ok := attrs[contract.LocalSenderIDAttribute]; ok {
		attrs = maps.Clone(attrs)
		delete(attrs, contract.LocalSenderIDAttribute)
		msg.Attributes = maps.Clone(msg.Attributes)
		if msg.Attributes == nil {
			msg.Attributes = map[string]string{}
		}
		msg.Attributes[string(sqstypes.MessageSystemAttributeNameSenderId)] = aws.ToString(sender.StringValue)
	}
	rec := events.SQSMessage{
		MessageId:              aws.ToString(msg.MessageId),
		ReceiptHandle:          aws.ToString(msg.ReceiptHandle),
		Body:                   aws.ToString(msg.Body),
		Md5OfBody:              aws.ToString(msg.MD5OfBody),
		Md5OfMessageAttributes: sqsgate.MessageAttributesMD5(attrs),
		Attributes:             map[string]string{},
		MessageAttributes:      map[string]events.SQSMessageAttribute{},
		EventSourceARN:         queueArn,
		EventSource:            "aws:sqs",
		AWSRegion:              region,
	}
	for k, v := range msg.Attributes {
		rec.Attributes[k] = v
	}
	for name, a := range attrs {
		attr := events.SQSMessageAttribute{
			StringValue: a.StringValue, BinaryValue: a.BinaryValue, DataType: aws.ToString(a.DataType),
			StringListValues: a.StringListValues, BinaryListValues: a.BinaryListValues,
		}
		if attr.StringListValues == nil {
			attr.StringListValues = []string{}
		}
		if attr.BinaryListValues == nil {
			attr.BinaryListValues = [][]byte{}
		}
		rec.MessageAttributes[name] = attr
	}
	return rec
}
