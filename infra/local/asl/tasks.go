package asl

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Tasks is how Task states reach the world: the local cloud implements it with its Lambda,
// SQS and EventBridge (see sfnservice/awstasks), unit tests with plain Go functions (TaskFuncs).
// Nested executions (states:startExecution) need no method: they run in this engine.
type Tasks interface {
	Invoke(ctx context.Context, in *InvokeInput) (*InvokeOutput, error)
	SendMessage(ctx context.Context, in *SendMessageInput) (*SendMessageOutput, error)
	PutEvents(ctx context.Context, entries []EventEntry) (*PutEventsOutput, error)
}

// InvokeInput is a Lambda Invoke request.
type InvokeInput struct {
	FunctionName   string
	Qualifier      string
	InvocationType string // RequestResponse (default), Event or DryRun
	ClientContext  string
	LogType        string
	Payload        []byte
}

// InvokeOutput is Lambda's answer. FunctionError is set ("Unhandled") when the function itself
// failed; Payload then holds {"errorType": ..., "errorMessage": ...}.
type InvokeOutput struct {
	StatusCode      int
	FunctionError   string
	Payload         []byte
	ExecutedVersion string
	LogResult       string
	RequestID       string
}

// MessageAttribute is one SQS message attribute.
type MessageAttribute struct {
	DataType    string
	StringValue string
	BinaryValue []byte
}

// SendMessageInput is an SQS SendMessage request.
type SendMessageInput struct {
	QueueURL               string
	MessageBody            string
	DelaySeconds           *int32
	MessageAttributes      map[string]MessageAttribute
	MessageDeduplicationID string
	MessageGroupID         string
}

// SendMessageOutput is SQS's answer.
type SendMessageOutput struct {
	MessageID              string
	MD5OfMessageBody       string
	MD5OfMessageAttributes string
	SequenceNumber         string
	RequestID              string
}

// EventEntry is one EventBridge PutEvents entry.
type EventEntry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         *time.Time
	TraceHeader  string
}

// PutEventsResultEntry is EventBridge's answer for one entry.
type PutEventsResultEntry struct {
	EventID      string
	ErrorCode    string
	ErrorMessage string
}

// PutEventsOutput is EventBridge's answer.
type PutEventsOutput struct {
	Entries          []PutEventsResultEntry
	FailedEntryCount int
	RequestID        string
}

// ServiceError is an error answer from a service, as opposed to failing to reach it. The
// engine names the task error after its Code ("Lambda.ServiceException",
// "Lambda.TooManyRequestsException", ...), as AWS does; any other error from a Tasks method is
// a client-side failure ("Lambda.SdkClientException").
type ServiceError struct {
	Code       string
	Message    string
	StatusCode int
	RequestID  string
}

func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s: %s (status %d)", e.Code, e.Message, e.StatusCode)
}

// TaskFuncs implements Tasks with plain functions, for tests and small embeddings. A nil
// function answers with a client-side error naming the missing capability.
type TaskFuncs struct {
	InvokeFunc      func(ctx context.Context, in *InvokeInput) (*InvokeOutput, error)
	SendMessageFunc func(ctx context.Context, in *SendMessageInput) (*SendMessageOutput, error)
	PutEventsFunc   func(ctx context.Context, entries []EventEntry) (*PutEventsOutput, error)
}

func (t TaskFuncs) Invoke(ctx context.Context, in *InvokeInput) (*InvokeOutput, error) {
	if t.InvokeFunc == nil {
		return nil, fmt.Errorf("no Lambda is configured for this engine")
	}
	return t.InvokeFunc(ctx, in)
}

func (t TaskFuncs) SendMessage(ctx context.Context, in *SendMessageInput) (*SendMessageOutput, error) {
	if t.SendMessageFunc == nil {
		return nil, fmt.Errorf("no SQS is configured for this engine")
	}
	return t.SendMessageFunc(ctx, in)
}

func (t TaskFuncs) PutEvents(ctx context.Context, entries []EventEntry) (*PutEventsOutput, error) {
	if t.PutEventsFunc == nil {
		return nil, fmt.Errorf("no EventBridge is configured for this engine")
	}
	return t.PutEventsFunc(ctx, entries)
}

type resourceKind uint8

const (
	resLambdaInvoke resourceKind = iota
	resLambdaFunction
	resStartExecution
	resSendMessage
	resPutEvents
)

const (
	patternToken = "waitForTaskToken"
	patternSync  = "sync"
	patternSync2 = "sync:2"
)

type resource struct {
	arn     string
	kind    resourceKind
	pattern string
	service string // history resourceType: lambda, states, sqs, events
	action  string // history resource: invoke, startExecution.sync:2, ...
}

type integrationSpec struct {
	kind     resourceKind
	service  string
	action   string
	patterns []string
	allowed  []string
	required []string
}

var integrations = map[string]integrationSpec{
	"lambda:invoke": {resLambdaInvoke, "lambda", "invoke", []string{patternToken},
		[]string{"FunctionName", "Payload", "InvocationType", "Qualifier", "ClientContext", "LogType"}, []string{"FunctionName"}},
	"states:startExecution": {resStartExecution, "states", "startExecution", []string{patternToken, patternSync, patternSync2},
		[]string{"StateMachineArn", "Input", "Name"}, []string{"StateMachineArn"}},
	"sqs:sendMessage": {resSendMessage, "sqs", "sendMessage", []string{patternToken},
		[]string{"QueueUrl", "MessageBody", "DelaySeconds", "MessageAttributes", "MessageDeduplicationId", "MessageGroupId"}, []string{"QueueUrl", "MessageBody"}},
	"events:putEvents": {resPutEvents, "events", "putEvents", []string{patternToken},
		[]string{"Entries"}, []string{"Entries"}},
}

var (
	optimizedARN = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:states:::([a-zA-Z0-9-]+:[a-zA-Z0-9]+)(?:\.([a-zA-Z0-9:]+))?$`)
	functionARN  = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$`)
	activityARN  = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:states:[a-z0-9-]+:\d{12}:activity:`)
)

func (c *compiler) resource(arn, at string) *resource {
	if strings.Contains(arn, "${") {
		c.schema(at, "The resource %q still contains a ${...} placeholder: render the definition with its substitutions first", arn)
		return nil
	}
	if functionARN.MatchString(arn) {
		return &resource{arn: arn, kind: resLambdaFunction, service: "lambda"}
	}
	if activityARN.MatchString(arn) {
		c.unsupported(at, "Activities are not implemented by the local engine")
		return nil
	}
	if strings.Contains(arn, ":states:::aws-sdk:") {
		c.unsupported(at, "AWS SDK integrations (%s) are not implemented by the local engine", arn)
		return nil
	}
	m := optimizedARN.FindStringSubmatch(arn)
	if m == nil {
		c.schema(at, "The resource %q is not a valid Lambda function ARN or service integration ARN", arn)
		return nil
	}
	spec, known := integrations[m[2]]
	if !known {
		c.unsupported(at, "The service integration %q is not implemented by the local engine; it runs lambda:invoke, states:startExecution, sqs:sendMessage and events:putEvents", m[2])
		return nil
	}
	pattern := m[3]
	if pattern != "" && !slices.Contains(spec.patterns, pattern) {
		c.schema(at, "The integration pattern .%s is not available for %s", pattern, m[2])
		return nil
	}
	r := &resource{arn: arn, kind: spec.kind, pattern: pattern, service: spec.service, action: spec.action}
	if pattern != "" {
		r.action += "." + pattern
	}
	return r
}

// taskParameters checks an integration's Parameters against the API it calls.
func (c *compiler) taskParameters(st *state, o *Object, at string) {
	r := st.resource
	pat := ptr(at, "Parameters")
	if r.kind == resLambdaFunction {
		return
	}
	var spec integrationSpec
	for _, s := range integrations {
		if s.kind == r.kind {
			spec = s
		}
	}
	if st.parameters == nil {
		c.schema(pat, "The field \"Parameters\" is required for %s", r.arn)
		return
	}
	keys := st.parameters.topKeys()
	if keys == nil {
		c.schema(pat, "The field \"Parameters\" must be a JSON object for %s", r.arn)
		return
	}
	for _, k := range keys {
		if !slices.Contains(spec.allowed, k) {
			c.schema(pat, "The field %q is not supported by %s (supported: %s)", k, r.arn, strings.Join(spec.allowed, ", "))
		}
	}
	for _, k := range spec.required {
		if !slices.Contains(keys, k) {
			c.schema(pat, "The field %q is required by %s", k, r.arn)
		}
	}
	if r.pattern == patternToken && !st.parameters.refersToTaskToken() {
		c.schema(pat, "A .waitForTaskToken task must pass the task token ($$.Task.Token) in \"Parameters\"")
	}
	if r.kind == resLambdaInvoke {
		if t := st.parameters.member("InvocationType"); t != nil && t.kind == tmplLiteral {
			if s, _ := t.lit.(string); s != "RequestResponse" && s != "Event" && s != "DryRun" {
				c.schema(pat, "\"InvocationType\" must be RequestResponse, Event or DryRun")
			}
		}
	}
	if r.kind == resPutEvents {
		if t := st.parameters.member("Entries"); t != nil && t.kind == tmplLiteral {
			if arr, ok := t.lit.([]any); !ok || len(arr) == 0 || len(arr) > 10 {
				c.schema(pat, "\"Entries\" must be an array of 1 to 10 entries")
			}
		}
	}
}
