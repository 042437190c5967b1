// Package awstasks lets the asl engine's Task states call real AWS APIs: it implements
// asl.Tasks with aws-sdk-go-v2's Lambda, SQS and EventBridge clients. The local cloud points
// those clients at kumo; nothing here is specific to kumo. Error answers become
// *asl.ServiceError (so the engine names them "Lambda.<Code>" and so on, as AWS does); failures
// to reach the service stay plain errors (the engine's "*.SdkClientException").
package awstasks

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/byocloud/byoc/infra/local/asl"
)

// LambdaAPI is the part of the Lambda client the engine uses.
type LambdaAPI interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// SQSAPI is the part of the SQS client the engine uses.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// EventBridgeAPI is the part of the EventBridge client the engine uses.
type EventBridgeAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Tasks implements asl.Tasks. A nil client makes its tasks fail as unreachable.
type Tasks struct {
	Lambda      LambdaAPI
	SQS         SQSAPI
	EventBridge EventBridgeAPI
}

var _ asl.Tasks = (*Tasks)(nil)

// New builds the three clients from one configuration (endpoint, region, credentials).
func New(cfg aws.Config) *Tasks {
	return &Tasks{
		Lambda:      lambda.NewFromConfig(cfg),
		SQS:         sqs.NewFromConfig(cfg),
		EventBridge: eventbridge.NewFromConfig(cfg),
	}
}

// Invoke calls Lambda's Invoke.
func (t *Tasks) Invoke(ctx context.Context, in *asl.InvokeInput) (*asl.InvokeOutput, error) {
	if t.Lambda == nil {
		return nil, errors.New("no Lambda client is configured")
	}
	req := &lambda.InvokeInput{FunctionName: aws.String(in.FunctionName), Payload: in.Payload}
	if in.Qualifier != "" {
		req.Qualifier = aws.String(in.Qualifier)
	}
	if in.InvocationType != "" {
		req.InvocationType = lambdatypes.InvocationType(in.InvocationType)
	}
	if in.ClientContext != "" {
		req.ClientContext = aws.String(in.ClientContext)
	}
	if in.LogType != "" {
		req.LogType = lambdatypes.LogType(in.LogType)
	}
	out, err := t.Lambda.Invoke(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	return &asl.InvokeOutput{
		StatusCode:      int(out.StatusCode),
		FunctionError:   aws.ToString(out.FunctionError),
		Payload:         out.Payload,
		ExecutedVersion: aws.ToString(out.ExecutedVersion),
		LogResult:       aws.ToString(out.LogResult),
		RequestID:       requestID(out.ResultMetadata),
	}, nil
}

// SendMessage calls SQS's SendMessage.
func (t *Tasks) SendMessage(ctx context.Context, in *asl.SendMessageInput) (*asl.SendMessageOutput, error) {
	if t.SQS == nil {
		return nil, errors.New("no SQS client is configured")
	}
	req := &sqs.SendMessageInput{QueueUrl: aws.String(in.QueueURL), MessageBody: aws.String(in.MessageBody)}
	if in.DelaySeconds != nil {
		req.DelaySeconds = *in.DelaySeconds
	}
	if in.MessageDeduplicationID != "" {
		req.MessageDeduplicationId = aws.String(in.MessageDeduplicationID)
	}
	if in.MessageGroupID != "" {
		req.MessageGroupId = aws.String(in.MessageGroupID)
	}
	if len(in.MessageAttributes) > 0 {
		req.MessageAttributes = map[string]sqstypes.MessageAttributeValue{}
		for name, a := range in.MessageAttributes {
			v := sqstypes.MessageAttributeValue{DataType: aws.String(a.DataType), BinaryValue: a.BinaryValue}
			if a.StringValue != "" {
				v.StringValue = aws.String(a.StringValue)
			}
			req.MessageAttributes[name] = v
		}
	}
	out, err := t.SQS.SendMessage(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	return &asl.SendMessageOutput{
		MessageID:              aws.ToString(out.MessageId),
		MD5OfMessageBody:       aws.ToString(out.MD5OfMessageBody),
		MD5OfMessageAttributes: aws.ToString(out.MD5OfMessageAttributes),
		SequenceNumber:         aws.ToString(out.SequenceNumber),
		RequestID:              requestID(out.ResultMetadata),
	}, nil
}

// PutEvents calls EventBridge's PutEvents.
func (t *Tasks) PutEvents(ctx context.Context, entries []asl.EventEntry) (*asl.PutEventsOutput, error) {
	if t.EventBridge == nil {
		return nil, errors.New("no EventBridge client is configured")
	}
	req := &eventbridge.PutEventsInput{}
	for _, e := range entries {
		r := ebtypes.PutEventsRequestEntry{Resources: e.Resources, Time: e.Time}
		for dst, v := range map[**string]string{&r.Source: e.Source, &r.DetailType: e.DetailType, &r.Detail: e.Detail, &r.EventBusName: e.EventBusName, &r.TraceHeader: e.TraceHeader} {
			if v != "" {
				*dst = aws.String(v)
			}
		}
		req.Entries = append(req.Entries, r)
	}
	out, err := t.EventBridge.PutEvents(ctx, req)
	if err != nil {
		return nil, serviceError(err)
	}
	res := &asl.PutEventsOutput{FailedEntryCount: int(out.FailedEntryCount), RequestID: requestID(out.ResultMetadata)}
	for _, e := range out.Entries {
		res.Entries = append(res.Entries, asl.PutEventsResultEntry{
			EventID: aws.ToString(e.EventId), ErrorCode: aws.ToString(e.ErrorCode), ErrorMessage: aws.ToString(e.ErrorMessage)})
	}
	return res, nil
}

// serviceError turns an error answer into *asl.ServiceError and leaves anything else (no
// connection, cancelled context) as it is.
func serviceError(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	se := &asl.ServiceError{Code: api.ErrorCode(), Message: api.ErrorMessage()}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		se.StatusCode = re.HTTPStatusCode()
		se.RequestID = re.ServiceRequestID()
	}
	if se.Message == "" {
		se.Message = fmt.Sprint(err)
	}
	return se
}

func requestID(md middleware.Metadata) string {
	id, _ := awsmiddleware.GetRequestIDMetadata(md)
	return id
}
