package cloud

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/byocloud/byoc/infra/local/asl"
	"github.com/byocloud/byoc/infra/local/eventsources/clock"
	"github.com/byocloud/byoc/infra/local/sfnservice"
)

// States is the cloud's Step Functions: byoc's ASL engine behind the Step Functions API.
type States struct {
	Engine  *asl.Engine
	service *sfnservice.Service
}

func newStates(c *Cloud, internal aws.Config) (*States, error) {
	engine := asl.NewEngine(asl.Options{
		Tasks:     newSDKTasks(internal),
		Clock:     aslClock{c.Clock},
		Region:    c.Region,
		AccountID: VendorAccount,
		Observer:  c.onHistory,
	})
	return &States{Engine: engine, service: sfnservice.New(engine, c.logger)}, nil
}

// Handler serves the Step Functions API.
func (s *States) Handler() http.Handler { return s.service }

// Close lets running executions be: they end with the process.
func (s *States) Close() {}

func (c *Cloud) onHistory(ev asl.HistoryEvent) {
	machine, execution := executionNames(ev.ExecutionArn)
	switch {
	case ev.StateEnteredEventDetails != nil:
		c.transitions.Add(1)
		c.emit(Event{At: ev.Timestamp, Kind: KindState, Subject: machine + " " + ev.StateEnteredEventDetails.Name, Detail: execution})
	case ev.Type == asl.EventExecutionStarted:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "RUNNING", Detail: execution})
	case ev.Type == asl.EventExecutionSucceeded:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "SUCCEEDED", Detail: execution})
	case ev.ExecutionFailedEventDetails != nil:
		d := ev.ExecutionFailedEventDetails
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: "FAILED", Detail: execution + ": " + d.Error + " " + d.Cause, Failed: true})
	case ev.ExecutionAbortedEventDetails != nil, ev.ExecutionTimedOutEventDetails != nil:
		c.emit(Event{At: ev.Timestamp, Kind: KindExecution, Subject: machine, Status: strings.TrimPrefix(ev.Type, "Execution"), Detail: execution, Failed: true})
	}
}

// executionNames splits arn:aws:states:<region>:<account>:execution:<machine>:<name>.
func executionNames(arn string) (machine, execution string) {
	parts := strings.Split(arn, ":")
	if len(parts) >= 8 {
		return parts[6], parts[7]
	}
	return arn, ""
}

// aslClock gives the engine the cloud's clock.
type aslClock struct{ c clock.Clock }

func (a aslClock) Now() time.Time { return a.c.Now() }

func (a aslClock) NewTimer(d time.Duration) asl.Timer {
	t := &clockTimer{c: make(chan time.Time, 1), stop: make(chan struct{})}
	fired := a.c.After(d)
	go func() {
		select {
		case at := <-fired:
			if t.stopped.CompareAndSwap(false, true) { // fired: Stop now reports false
				t.c <- at
			}
		case <-t.stop:
		}
	}()
	return t
}

type clockTimer struct {
	c       chan time.Time
	stop    chan struct{}
	stopped atomic.Bool
}

func (t *clockTimer) C() <-chan time.Time { return t.c }

func (t *clockTimer) Stop() bool {
	if !t.stopped.CompareAndSwap(false, true) {
		return false
	}
	close(t.stop)
	return true
}

// sdkTasks lets Task states call Lambda, SQS and EventBridge through the front door, as the
// Step Functions service calls them on AWS.
type sdkTasks struct {
	lambda *lambda.Client
	sqs    *sqs.Client
	events *eventbridge.Client
}

func newSDKTasks(cfg aws.Config) *sdkTasks {
	// The engine owns retries (the state's Retry): one SDK attempt per task call.
	cfg.RetryMaxAttempts = 1
	return &sdkTasks{lambda: lambda.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), events: eventbridge.NewFromConfig(cfg)}
}

// serviceError turns an error answer into the engine's ServiceError, so Retry and Catch
// see "Lambda.ServiceException" and the like, as on AWS.
func serviceError(err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	se := &asl.ServiceError{Code: apiErr.ErrorCode(), Message: apiErr.ErrorMessage()}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		se.StatusCode = re.HTTPStatusCode()
	}
	return se
}

func (t *sdkTasks) Invoke(ctx context.Context, in *asl.InvokeInput) (*asl.InvokeOutput, error) {
	req := &lambda.InvokeInput{FunctionName: aws.String(in.FunctionName), Payload: in.Payload}
	if in.Qualifier != "" {
		req.Qualifier = aws.String(in.Qualifier)
	}
	if in.InvocationType != "" {
		req.InvocationType = ltypes.InvocationType(in.InvocationType)
	}
	if in.ClientContext != "" {
		req.ClientContext = aws.String(in.ClientContext)
	}
	out, err := t.lambda.Invoke(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	return &asl.InvokeOutput{
		StatusCode: int(out.StatusCode), FunctionError: aws.ToString(out.FunctionError), Payload: out.Payload,
		ExecutedVersion: aws.ToString(out.ExecutedVersion), LogResult: aws.ToString(out.LogResult),
	}, nil
}

func (t *sdkTasks) SendMessage(ctx context.Context, in *asl.SendMessageInput) (*asl.SendMessageOutput, error) {
	req := &sqs.SendMessageInput{QueueUrl: aws.String(in.QueueURL), MessageBody: aws.String(in.MessageBody), DelaySeconds: aws.ToInt32(in.DelaySeconds)}
	if in.MessageGroupID != "" {
		req.MessageGroupId = aws.String(in.MessageGroupID)
	}
	if in.MessageDeduplicationID != "" {
		req.MessageDeduplicationId = aws.String(in.MessageDeduplicationID)
	}
	if len(in.MessageAttributes) > 0 {
		req.MessageAttributes = map[string]sqstypes.MessageAttributeValue{}
		for k, v := range in.MessageAttributes {
			a := sqstypes.MessageAttributeValue{DataType: aws.String(v.DataType), BinaryValue: v.BinaryValue}
			if v.StringValue != "" {
				a.StringValue = aws.String(v.StringValue)
			}
			req.MessageAttributes[k] = a
		}
	}
	out, err := t.sqs.SendMessage(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	return &asl.SendMessageOutput{
		MessageID: aws.ToString(out.MessageId), MD5OfMessageBody: aws.ToString(out.MD5OfMessageBody),
		MD5OfMessageAttributes: aws.ToString(out.MD5OfMessageAttributes), SequenceNumber: aws.ToString(out.SequenceNumber),
	}, nil
}

func (t *sdkTasks) PutEvents(ctx context.Context, entries []asl.EventEntry) (*asl.PutEventsOutput, error) {
	req := &eventbridge.PutEventsInput{}
	for _, e := range entries {
		entry := ebtypes.PutEventsRequestEntry{
			Source: aws.String(e.Source), DetailType: aws.String(e.DetailType), Detail: aws.String(e.Detail),
			Resources: e.Resources, Time: e.Time,
		}
		if e.EventBusName != "" {
			entry.EventBusName = aws.String(e.EventBusName)
		}
		if e.TraceHeader != "" {
			entry.TraceHeader = aws.String(e.TraceHeader)
		}
		req.Entries = append(req.Entries, entry)
	}
	out, err := t.events.PutEvents(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	res := &asl.PutEventsOutput{FailedEntryCount: int(out.FailedEntryCount)}
	for _, e := range out.Entries {
		res.Entries = append(res.Entries, asl.PutEventsResultEntry{EventID: aws.ToString(e.EventId), ErrorCode: aws.ToString(e.ErrorCode), ErrorMessage: aws.ToString(e.ErrorMessage)})
	}
	return res, nil
}
