package sqsgate

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// A message received from SQS (published in a project's test data, with SQS's digest).
func TestMessageAttributesMD5MatchesSQS(t *testing.T) {
	attrs := map[string]sqstypes.MessageAttributeValue{
		"AtTimestamp": {DataType: aws.String("String"), StringValue: aws.String("2021-02-15T12:00:33+09:00")},
	}
	if got := MessageAttributesMD5(attrs); got != "9fd5e217089075be61cd1d67e35e5117" {
		t.Errorf("MessageAttributesMD5 = %s, want SQS's 9fd5e217089075be61cd1d67e35e5117", got)
	}
	if got := MessageAttributesMD5(nil); got != "" {
		t.Errorf("no attributes: %q, want no digest", got)
	}
}
