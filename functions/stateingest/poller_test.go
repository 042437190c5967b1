package main

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/shared/contract"
)

// drain plays the SQS event source with benchPollers concurrent pollers until the queue is
// empty, and returns how many messages the handler accepted (and were deleted). Messages
// the handler reports as failed are made visible again at once (visibility timeout 0), so
// a queue with a redrive policy moves them to its DLQ after maxReceiveCount receives.
func drain(b testing.TB, client *sqs.Client, url string, h *Handler) int {
	ctx := context.Background()
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range benchPollers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
					QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 0,
					MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
					MessageAttributeNames:       []string{"All"},
				})
				if err != nil {
					b.Error(err)
					return
				}
				if len(out.Messages) == 0 {
					return
				}
				ev := toEvent(out.Messages, url)
				resp, err := h.Handle(ctx, ev)
				if err != nil {
					b.Error(err)
					return
				}
				failed := map[string]bool{}
				for _, x := range resp.BatchItemFailures {
					failed[x.ItemIdentifier] = true
				}
				var del []sqstypes.DeleteMessageBatchRequestEntry
				for i, m := range out.Messages {
					if !failed[aws.ToString(m.MessageId)] {
						del = append(del, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle})
					}
				}
				for _, m := range out.Messages {
					if failed[aws.ToString(m.MessageId)] {
						if _, err := client.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
							QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
						}); err != nil {
							b.Error(err)
							return
						}
					}
				}
				if len(del) > 0 {
					if _, err := client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: del}); err != nil {
						b.Error(err)
						return
					}
				}
				mu.Lock()
				total += len(del)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total
}

// toEvent builds the event the SQS event source gives Lambda.
func toEvent(msgs []sqstypes.Message, url string) events.SQSEvent {
	var ev events.SQSEvent
	for _, m := range msgs {
		attrs := map[string]string{}
		for k, v := range m.Attributes {
			attrs[k] = v
		}
		if a, ok := m.MessageAttributes[contract.LocalSenderIDAttribute]; ok {
			attrs["SenderId"] = aws.ToString(a.StringValue)
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: attrs, EventSource: "aws:sqs", EventSourceARN: stateQueueARN, AWSRegion: "us-east-1",
		})
	}
	return ev
}
