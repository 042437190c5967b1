package channel

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

// refusingReader answers the first receive as SQS answers an attempt id it no longer
// honours (after a throttled attempt), then serves one command. The local cloud cannot
// produce that refusal, so this is the one fake of SQS here.
type refusingReader struct {
	attempts []string
}

func (r *refusingReader) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	r.attempts = append(r.attempts, aws.ToString(in.ReceiveRequestAttemptId))
	if len(r.attempts) == 1 {
		return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "The receiveRequestAttemptId is not valid anymore since the receive call is not retryable."}
	}
	body, _ := Encode(release("cmd-1"))
	return &sqs.ReceiveMessageOutput{Messages: []sqstypes.Message{{Body: aws.String(string(body)), ReceiptHandle: aws.String("rh")}}}, nil
}

func (r *refusingReader) DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return &sqs.DeleteMessageOutput{}, nil
}

// Every receive carries an attempt id (the SDK's retries keep it, so a lost answer's
// messages come back); an id SQS refuses is replaced once by a fresh one.
func TestReceiveCarriesAnAttemptIDAndReplacesARefusedOne(t *testing.T) {
	r := &refusingReader{}
	good, bad, err := Receive(context.Background(), r, "https://sqs/q.fifo", 10, 0)
	if err != nil || len(good) != 1 || len(bad) != 0 || good[0].Command.ID != "cmd-1" {
		t.Fatalf("receive: %+v %v %v", good, bad, err)
	}
	if len(r.attempts) != 2 || r.attempts[0] == "" || r.attempts[1] == "" || r.attempts[0] == r.attempts[1] {
		t.Fatalf("attempt ids %q, want two different ones", r.attempts)
	}
}
