package stacks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/eventpattern"
)

// BusDelivery delivers an event to the rules of a bus the way EventBridge does, for buses
// whose rules live in kumo: the rules and targets are read through the EventBridge API,
// patterns are matched with eventpattern, and each matching rule's targets receive the
// event unchanged (or as the target's Input, InputPath or InputTransformer says): Lambda
// functions asynchronously, SQS queues as a message, state machines as an execution. A
// target that cannot be reached gets the event in its dead-letter queue, if it has one.
//
// It exists because kumo's own delivery cannot carry CloudFormation's events faithfully:
// PutEvents sets kumo's account in the envelope and drops resources, and kumo's matcher
// has no wildcard operator, which the control plane's onboard rule uses.
type BusDelivery struct {
	events *eventbridge.Client
	lambda *lambda.Client
	sqs    *sqs.Client
	sfn    *sfn.Client
	logger *slog.Logger

	mu       sync.Mutex
	patterns map[string]*eventpattern.Pattern // compiled per pattern text
}

// NewBusDelivery returns a delivery that reads rules and invokes targets with cfg (the
// vendor's credentials and the front door's endpoint).
func NewBusDelivery(cfg aws.Config, logger *slog.Logger) *BusDelivery {
	if logger == nil {
		logger = slog.Default()
	}
	return &BusDelivery{
		events: eventbridge.NewFromConfig(cfg), lambda: lambda.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), sfn: sfn.NewFromConfig(cfg),
		logger: logger, patterns: map[string]*eventpattern.Pattern{},
	}
}

// Deliver sends event (a complete EventBridge envelope) to the targets of the rules of the
// bus that match it. It fails only when the bus's rules cannot be read; a failed target is
// logged (and dead-lettered when configured), as EventBridge does not fail the put.
func (d *BusDelivery) Deliver(ctx context.Context, busArn string, event []byte) error {
	var decoded map[string]any
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if err := dec.Decode(&decoded); err != nil {
		return fmt.Errorf("event is not a JSON object: %w", err)
	}
	bus := busName(busArn)
	var next *string
	for {
		out, err := d.events.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: aws.String(bus), NextToken: next})
		if err != nil {
			return fmt.Errorf("rules of bus %s: %w", bus, err)
		}
		for _, rule := range out.Rules {
			if rule.State == ebtypes.RuleStateDisabled || aws.ToString(rule.EventPattern) == "" {
				continue
			}
			p, err := d.pattern(aws.ToString(rule.EventPattern))
			if err != nil {
				d.logger.Warn("local EventBridge: rule has an invalid pattern", "rule", aws.ToString(rule.Name), "error", err)
				continue
			}
			if p.Match(decoded) {
				d.deliverToRule(ctx, bus, aws.ToString(rule.Name), event)
			}
		}
		if out.NextToken == nil {
			return nil
		}
		next = out.NextToken
	}
}

func (d *BusDelivery) pattern(text string) (*eventpattern.Pattern, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.patterns[text]; ok {
		return p, nil
	}
	p, err := eventpattern.Compile([]byte(text))
	if err != nil {
		return nil, err
	}
	d.patterns[text] = p
	return p, nil
}

func (d *BusDelivery) deliverToRule(ctx context.Context, bus, rule string, event []byte) {
	out, err := d.events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{EventBusName: aws.String(bus), Rule: aws.String(rule)})
	if err != nil {
		d.logger.Error("local EventBridge: cannot read the rule's targets", "rule", rule, "error", err)
		return
	}
	for _, target := range out.Targets {
		payload, err := targetInput(target, event)
		if err == nil {
			err = d.invoke(ctx, aws.ToString(target.Arn), target, payload)
		}
		log := d.logger.With("rule", rule, "target", aws.ToString(target.Arn))
		if err == nil {
			log.Debug("local EventBridge: delivered")
			continue
		}
		log.Error("local EventBridge: delivery failed", "error", err)
		if target.DeadLetterConfig != nil && aws.ToString(target.DeadLetterConfig.Arn) != "" {
			if dlqErr := d.sendToQueue(ctx, aws.ToString(target.DeadLetterConfig.Arn), nil, event); dlqErr != nil {
				log.Error("local EventBridge: dead-lettering failed", "error", dlqErr)
			}
		}
	}
}

func (d *BusDelivery) invoke(ctx context.Context, arn string, target ebtypes.Target, payload []byte) error {
	switch service := arnService(arn); service {
	case "lambda":
		out, err := d.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(arn), InvocationType: lambdatypes.InvocationTypeEvent, Payload: payload})
		if err != nil {
			return err
		}
		if out.FunctionError != nil {
			return fmt.Errorf("function error %s", aws.ToString(out.FunctionError))
		}
		return nil
	case "sqs":
		return d.sendToQueue(ctx, arn, target.SqsParameters, payload)
	case "states":
		_, err := d.sfn.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(string(payload))})
		return err
	default:
		return fmt.Errorf("targets of service %q are not delivered by the local cloud", service)
	}
}

func (d *BusDelivery) sendToQueue(ctx context.Context, queueArn string, params *ebtypes.SqsParameters, body []byte) error {
	parts := strings.Split(queueArn, ":")
	if len(parts) != 6 {
		return fmt.Errorf("%q is not a queue ARN", queueArn)
	}
	u, err := d.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return err
	}
	in := &sqs.SendMessageInput{QueueUrl: u.QueueUrl, MessageBody: aws.String(string(body))}
	if params != nil && params.MessageGroupId != nil {
		in.MessageGroupId = params.MessageGroupId
	}
	_, err = d.sqs.SendMessage(ctx, in)
	return err
}

func arnService(arn string) string {
	parts := strings.SplitN(arn, ":", 4)
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

// targetInput is what a target receives: the event, or its Input, InputPath or
// InputTransformer rendering.
func targetInput(target ebtypes.Target, event []byte) ([]byte, error) {
	switch {
	case target.Input != nil:
		return []byte(aws.ToString(target.Input)), nil
	case target.InputPath != nil && aws.ToString(target.InputPath) == "$":
		return event, nil
	case target.InputPath != nil:
		v, ok, err := jsonPath(event, aws.ToString(target.InputPath))
		if err != nil || !ok {
			return nil, fmt.Errorf("InputPath %s: %v", aws.ToString(target.InputPath), errOr(err, "no such field"))
		}
		return json.Marshal(v)
	case target.InputTransformer != nil:
		return transform(target.InputTransformer, event)
	}
	return event, nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// jsonPath resolves the dotted JSONPath subset EventBridge targets use ($, $.a.b).
func jsonPath(event []byte, path string) (any, bool, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, false, err
	}
	if path == "$" {
		return v, true, nil
	}
	rest, ok := strings.CutPrefix(path, "$.")
	if !ok {
		return nil, false, fmt.Errorf("path %q must start with $", path)
	}
	for _, key := range strings.Split(rest, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		if v, ok = obj[key]; !ok {
			return nil, false, nil
		}
	}
	return v, true, nil
}

// transform renders an InputTransformer: each <name> of the template is replaced by the
// value at its path; inside quotes a string is inserted without its own quotes.
func transform(it *ebtypes.InputTransformer, event []byte) ([]byte, error) {
	out := aws.ToString(it.InputTemplate)
	for name, path := range it.InputPathsMap {
		v, ok, err := jsonPath(event, path)
		if err != nil {
			return nil, fmt.Errorf("InputPathsMap %s: %w", name, err)
		}
		raw := []byte("null")
		if ok {
			raw, _ = json.Marshal(v)
		}
		quoted := `"<` + name + `>"`
		if s, isString := v.(string); isString && strings.Contains(out, quoted) {
			escaped, _ := json.Marshal(s)
			out = strings.ReplaceAll(out, quoted, string(escaped))
		}
		out = strings.ReplaceAll(out, "<"+name+">", string(raw))
	}
	return []byte(out), nil
}
