// Package eventbus delivers the events of the vendor account's EventBridge buses. kumo
// stores buses, rules and targets, but its delivery rewrites the envelope (account, id,
// region and time become its own, resources are dropped), ignores array values in patterns
// and cannot target Step Functions. The control plane's functions read exactly those
// fields, so the local cloud delivers events itself: kumo's rules are matched with byoc's
// EventBridge pattern matcher, and each target receives the event as AWS would send it.
//
// Events arrive two ways: PutEvents at the front door (ServeHTTP), and forwarding from a
// customer account's rule (Deliver, given to the stack engine), which keeps the original
// event whole: its id, account, region, time and resources.
package eventbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/infra/local/eventpattern"
)

// Config wires a Bus.
type Config struct {
	// AWS reaches kumo (rules, targets, Lambda, SQS, SNS) and the Step Functions engine: the
	// vendor's credentials and the front door's endpoint.
	AWS     aws.Config
	Account string // the vendor account, owner of the buses
	Region  string
	// CallerAccount tells which account a PutEvents request acts in (accounts.CallerAccount).
	// Nil: every caller is the vendor account.
	CallerAccount func(r *http.Request) string
	// Admits reports whether a bus's resource policy lets another account put an event of
	// a source on it (the stack engine owns bus policies; events:source is a condition key
	// of the policy). Nil: no other account may.
	Admits func(busArn, account, source string) bool
	// Observer is told of every delivery to a target, successful or not.
	Observer func(Delivery)
	Logger   *slog.Logger
	// Remember is how many recent events Redeliver can send again; 0 means 1000.
	Remember int
	// Chaos, when armed, delivers some events twice or late (nil injects nothing).
	Chaos *chaos.Injector
}

// Delivery is one event handed (or not) to one target.
type Delivery struct {
	EventID    string
	Bus        string // bus name
	Rule       string
	Target     string // target ARN
	DetailType string
	Source     string
	Event      []byte // the envelope
	Input      []byte // what the target received
	Err        error
	At         time.Time
}

// Bus delivers events. Safe for concurrent use.
type Bus struct {
	cfg    Config
	events *eventbridge.Client
	lambda *lambda.Client
	sqs    *sqs.Client
	sns    *sns.Client
	sfn    *sfn.Client
	log    *slog.Logger

	mu       sync.Mutex
	patterns map[string]*eventpattern.Pattern // pattern text -> compiled
	recent   map[string]recorded              // event id -> event, for Redeliver
	order    []string
}

type recorded struct {
	bus   string
	event []byte
}

// New returns a bus deliverer.
func New(cfg Config) *Bus {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Remember <= 0 {
		cfg.Remember = 1000
	}
	return &Bus{
		cfg:      cfg,
		events:   eventbridge.NewFromConfig(cfg.AWS),
		lambda:   lambda.NewFromConfig(cfg.AWS),
		sqs:      sqs.NewFromConfig(cfg.AWS),
		sns:      sns.NewFromConfig(cfg.AWS),
		sfn:      sfn.NewFromConfig(cfg.AWS),
		log:      cfg.Logger,
		patterns: map[string]*eventpattern.Pattern{},
		recent:   map[string]recorded{},
	}
}

// ErrNoSuchBus is returned for an event put on a bus that does not exist.
var ErrNoSuchBus = errors.New("event bus does not exist")

// Deliver matches a complete event (an EventBridge envelope) against the rules of a vendor
// bus and sends it to their targets. It is the stack engine's DeliverEvent: a customer
// account's rule forwarding CloudFormation's event, which keeps its id and account as on AWS.
// Target failures are reported to the Observer and logged, not returned: EventBridge has
// accepted the event by then.
func (b *Bus) Deliver(ctx context.Context, busArnOrName string, event []byte) error {
	env, err := parseEnvelope(event)
	if err != nil {
		return err
	}
	bus := busName(busArnOrName)
	if _, err := b.events.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String(bus)}); err != nil {
		var nf *ebtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return fmt.Errorf("deliver event %s: bus %q: %w", env.ID, bus, ErrNoSuchBus)
		}
		return fmt.Errorf("deliver event %s: bus %q: %w", env.ID, bus, err)
	}
	b.remember(env.ID, bus, event)
	return b.route(ctx, bus, env, event, 0)
}

// Redeliver sends a recent event to the bus's targets again, as EventBridge's at-least-once
// delivery sometimes does: a consumer must tolerate the duplicate.
func (b *Bus) Redeliver(ctx context.Context, eventID string) error {
	b.mu.Lock()
	rec, ok := b.recent[eventID]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("redeliver: no recent event with id %q", eventID)
	}
	env, err := parseEnvelope(rec.event)
	if err != nil {
		return err
	}
	return b.route(ctx, rec.bus, env, rec.event, 0)
}

// Recent returns the ids of the recent events, oldest first.
func (b *Bus) Recent() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.order...)
}

func (b *Bus) remember(id, bus string, event []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.recent[id]; !ok {
		b.order = append(b.order, id)
	}
	b.recent[id] = recorded{bus: bus, event: event}
	for len(b.order) > b.cfg.Remember {
		delete(b.recent, b.order[0])
		b.order = b.order[1:]
	}
}

// envelope is what the bus needs to read from an event.
type envelope struct {
	ID         string `json:"id"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
	Account    string `json:"account"`
	Time       string `json:"time"`
	doc        map[string]any
}

func parseEnvelope(event []byte) (envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return envelope{}, fmt.Errorf("event is not a JSON object: %w", err)
	}
	var env envelope
	_ = json.Unmarshal(event, &env)
	var missing []string
	for _, f := range []struct{ name, v string }{{"id", env.ID}, {"source", env.Source}, {"detail-type", env.DetailType}, {"account", env.Account}, {"time", env.Time}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if _, ok := doc["detail"].(map[string]any); !ok {
		missing = append(missing, "detail (an object)")
	}
	if len(missing) > 0 {
		return envelope{}, fmt.Errorf("event lacks %s", strings.Join(missing, ", "))
	}
	env.doc = doc
	return env, nil
}

// maxHops bounds bus-to-bus forwarding, as EventBridge refuses loops.
const maxHops = 3

func (b *Bus) route(ctx context.Context, bus string, env envelope, event []byte, hops int) error {
	rules, err := b.events.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String(bus), Limit: aws.Int32(100)})
	if err != nil {
		return fmt.Errorf("deliver event %s: list rules of %s: %w", env.ID, bus, err)
	}
	for _, rule := range rules.Rules {
		if rule.State != ebtypes.RuleStateEnabled || aws.ToString(rule.EventPattern) == "" {
			continue
		}
		pattern, err := b.compile(aws.ToString(rule.EventPattern))
		if err != nil {
			b.log.Warn("event bus: rule has a pattern EventBridge would refuse; it matches nothing", "rule", aws.ToString(rule.Name), "error", err)
			continue
		}
		if !pattern.Match(env.doc) {
			continue
		}
		targets, err := b.events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{
			Rule: rule.Name, EventBusName: aws.String(bus), Limit: aws.Int32(100),
		})
		if err != nil {
			return fmt.Errorf("deliver event %s: targets of rule %s: %w", env.ID, aws.ToString(rule.Name), err)
		}
		rc := RuleContext{RuleArn: aws.ToString(rule.Arn), RuleName: aws.ToString(rule.Name), IngestionTime: env.Time}
		for _, t := range targets.Targets {
			b.send(ctx, bus, env, event, rc, t, hops)
		}
	}
	return nil
}

func (b *Bus) compile(text string) (*eventpattern.Pattern, error) {
	b.mu.Lock()
	p, ok := b.patterns[text]
	b.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := eventpattern.Compile([]byte(text))
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.patterns[text] = p
	b.mu.Unlock()
	return p, nil
}

func targetInput(t ebtypes.Target) TargetInput {
	in := TargetInput{Input: aws.ToString(t.Input), InputPath: aws.ToString(t.InputPath)}
	if t.InputTransformer != nil {
		in.HasTransform = true
		in.InputPathsMap = t.InputTransformer.InputPathsMap
		in.InputTemplate = aws.ToString(t.InputTransformer.InputTemplate)
	}
	return in
}

// send hands the event to one target. With chaos armed, a delivery may be held back (later
// events overtake it) or made twice, as EventBridge's at-least-once delivery allows.
func (b *Bus) send(ctx context.Context, bus string, env envelope, event []byte, rc RuleContext, t ebtypes.Target, hops int) {
	arn := aws.ToString(t.Arn)
	d := Delivery{EventID: env.ID, Bus: bus, Rule: rc.RuleName, Target: arn, DetailType: env.DetailType, Source: env.Source, Event: event, At: time.Now()}
	service := arnService(arn)
	if service == "events" {
		// Bus to bus: the event travels unchanged.
		d.Input = event
		if hops >= maxHops {
			d.Err = fmt.Errorf("event crossed %d buses: EventBridge stops loops", hops)
		} else {
			d.Err = b.route(ctx, busName(arn), env, event, hops+1)
		}
		b.report(d)
		return
	}
	input, err := targetInput(t).Apply(event, rc)
	if err != nil {
		d.Err = err
		b.report(d)
		return
	}
	d.Input = input
	deliver := func(ctx context.Context, d Delivery) {
		d.At = time.Now()
		d.Err = b.invoke(ctx, service, arn, input)
		b.report(d)
	}
	duplicate, hold := b.cfg.Chaos.Delivery("rule " + rc.RuleName + " -> " + arn)
	times := 1
	if duplicate {
		times = 2
	}
	var copies sync.WaitGroup
	for i := range times {
		switch {
		case hold > 0:
			later := context.WithoutCancel(ctx)
			time.AfterFunc(hold, func() { deliver(later, d) })
		case i > 0: // the second copy races the first
			copies.Go(func() { deliver(ctx, d) })
		default:
			deliver(ctx, d)
		}
	}
	copies.Wait()
}

// report tells the observer of a delivery, and logs a failed one.
func (b *Bus) report(d Delivery) {
	if d.Err != nil {
		b.log.Error("event bus: delivery failed", "event", d.EventID, "rule", d.Rule, "target", d.Target, "error", d.Err)
	}
	if b.cfg.Observer != nil {
		b.cfg.Observer(d)
	}
}

// invoke hands an input to a target of a service other than EventBridge.
func (b *Bus) invoke(ctx context.Context, service, arn string, input []byte) error {
	switch service {
	case "lambda":
		// EventBridge invokes Lambda asynchronously; Lambda's own retries then apply.
		_, err := b.lambda.Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String(arn), InvocationType: ltypes.InvocationTypeEvent, Payload: input,
		})
		return err
	case "sqs":
		return b.sendMessage(ctx, arn, input)
	case "sns":
		// EventBridge publishes the input as the message, with no subject.
		_, err := b.sns.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(arn), Message: aws.String(string(input))})
		return err
	case "states":
		_, err := b.sfn.StartExecution(ctx, &sfn.StartExecutionInput{
			StateMachineArn: aws.String(arn), Input: aws.String(string(input)),
		})
		return err
	}
	return fmt.Errorf("target %s: the local cloud delivers to Lambda functions, SQS queues, SNS topics, state machines and event buses only", arn)
}

func (b *Bus) sendMessage(ctx context.Context, queueArn string, body []byte) error {
	parts := strings.Split(queueArn, ":")
	if len(parts) != 6 {
		return fmt.Errorf("target %s is not a queue ARN", queueArn)
	}
	url, err := b.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String(string(body))}
	if strings.HasSuffix(parts[5], ".fifo") {
		// kumo does not keep a target's SqsParameters; EventBridge requires a group id for
		// FIFO queues, so the rule's targets all use one group.
		in.MessageGroupId = aws.String("eventbridge")
		in.MessageDeduplicationId = aws.String(uuid.NewString())
	}
	_, err = b.sqs.SendMessage(ctx, in)
	return err
}

// arnService returns the service of arn:partition:service:...
func arnService(arn string) string {
	parts := strings.SplitN(arn, ":", 4)
	if len(parts) < 4 {
		return ""
	}
	return parts[2]
}

// busName accepts a bus name or ARN (arn:aws:events:region:account:event-bus/name).
func busName(nameOrArn string) string {
	if i := strings.LastIndex(nameOrArn, ":event-bus/"); i >= 0 {
		return nameOrArn[i+len(":event-bus/"):]
	}
	if nameOrArn == "" {
		return "default"
	}
	return nameOrArn
}

// busArn is the ARN of a bus of the vendor account.
func (b *Bus) busArn(name string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", b.cfg.Region, b.cfg.Account, name)
}
