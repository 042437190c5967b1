package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/cloud"
)

// A seed replays: the same seed decides the same faults at the same points, whatever order
// the points interleave in; another seed decides otherwise; the rate holds.
func TestDecisionsReplayBySeed(t *testing.T) {
	p := Profile{Name: "t", Rates: map[Fault]float64{Throttle: 0.1}}
	decisions := func(seed uint64, points []string) string {
		in := New(nil)
		in.Arm(seed, p)
		var b strings.Builder
		for _, pt := range points {
			fmt.Fprint(&b, in.decide(Throttle, pt, ""), " ")
		}
		return b.String()
	}
	a := []string{"dynamodb GetItem", "sqs SendMessage"}
	var forward, backward []string
	for range 500 {
		forward = append(forward, a[0], a[1])
	}
	backward = append(backward, forward...)
	if decisions(7, forward) != decisions(7, forward) {
		t.Fatal("the same seed decided differently")
	}
	if decisions(7, forward) == decisions(8, forward) {
		t.Fatal("two seeds decided the same 1000 times")
	}
	// Per point, the n-th occurrence decides the same however the points interleave.
	in1, in2 := New(nil), New(nil)
	in1.Arm(3, p)
	in2.Arm(3, p)
	var x, y []bool
	for range 300 {
		x = append(x, in1.decide(Throttle, "dynamodb GetItem", ""))
		in2.decide(Throttle, "sqs SendMessage", "")
		y = append(y, in2.decide(Throttle, "dynamodb GetItem", ""))
	}
	if fmt.Sprint(x) != fmt.Sprint(y) {
		t.Fatal("another point's calls shifted this point's decisions")
	}
	in := New(nil)
	in.Arm(11, p)
	hits := 0
	for i := range 20000 {
		if in.decide(Throttle, fmt.Sprint("p", i%7), "") {
			hits++
		}
	}
	if rate := float64(hits) / 20000; rate < 0.09 || rate > 0.11 {
		t.Fatalf("rate %.3f, want 0.1", rate)
	}
	if in.Report().Injected[Throttle] != hits {
		t.Fatalf("counted %d, injected %d", in.Report().Injected[Throttle], hits)
	}
}

// Only and FirstOnly target one point once; a disarmed injector injects nothing; names
// CloudFormation generated and account ids do not change a point.
func TestTargetedAndDisarmed(t *testing.T) {
	in := New(nil)
	in.Arm(1, Profile{Name: "t", Rates: map[Fault]float64{LostAnswer: 1}, Only: []string{"cloudformation CreateStack"}, FirstOnly: true})
	if in.decide(LostAnswer, "dynamodb GetItem by fn", "") {
		t.Fatal("a point outside Only got a fault")
	}
	if !in.decide(LostAnswer, "cloudformation CreateStack by ByocControlPlane-ProvisionFunction7B70E23B-C3BJZHME7VWA", "") {
		t.Fatal("the targeted point got no fault")
	}
	if in.decide(LostAnswer, "cloudformation CreateStack by ByocControlPlane-ProvisionFunction7B70E23B-QQQQQQQQQQQQ", "") {
		t.Fatal("FirstOnly: the same point (another generated suffix) got a second fault")
	}
	in.Disarm()
	if in.Armed() || in.decide(LostAnswer, "cloudformation CreateStack x", "") {
		t.Fatal("a disarmed injector injected")
	}
	var nilInjector *Injector
	if d, h := nilInjector.Delivery("x"); d || h != 0 || nilInjector.Invocation("f", Received) != "" {
		t.Fatal("a nil injector injected")
	}
}

// door serves backend behind an injector armed with p, calling every request eligible.
func door(t *testing.T, p Profile, backend http.Handler) (*Injector, string) {
	t.Helper()
	in := New(nil)
	in.Arm(1, p)
	srv := httptest.NewServer(in.Door(backend, DoorConfig{
		Caller:     func(*http.Request) (bool, string) { return true, "fn" },
		IsFunction: func(string) bool { return false },
		Kill:       func(string) bool { return false },
	}))
	t.Cleanup(srv.Close)
	return in, srv.URL
}

func sdkConfig(url string, attempts int) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url), RetryMaxAttempts: attempts,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", "")}
}

// calls is one call of each protocol: awsJson 1.0 and 1.1, SQS's JSON with its query error
// header, restJson (Lambda, Scheduler) and query XML (CloudFormation, STS).
func calls(cfg aws.Config) map[string]func() error {
	ctx := context.Background()
	return map[string]func() error{
		"dynamodb": func() error {
			_, err := dynamodb.NewFromConfig(cfg).GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"),
				Key: map[string]ddbtypes.AttributeValue{"PK": &ddbtypes.AttributeValueMemberS{Value: "k"}}})
			return err
		},
		"sqs": func() error {
			_, err := sqs.NewFromConfig(cfg).SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(*cfg.BaseEndpoint + "/000000000000/q"), MessageBody: aws.String("x")})
			return err
		},
		"states": func() error {
			_, err := sfn.NewFromConfig(cfg).StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:m")})
			return err
		},
		"events": func() error {
			_, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{Source: aws.String("s"), DetailType: aws.String("d"), Detail: aws.String("{}")}}})
			return err
		},
		"lambda": func() error {
			_, err := lambda.NewFromConfig(cfg).Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("f")})
			return err
		},
		"scheduler": func() error {
			_, err := scheduler.NewFromConfig(cfg).GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String("s")})
			return err
		},
		"cloudformation": func() error {
			_, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{})
			return err
		},
		"sts": func() error {
			_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		},
	}
}

// The SDK itself (written by AWS) reads each injected error as the service's own: its code,
// its HTTP status, and a retryable error (a throttle for throttling).
func TestInjectedErrorsAreTheServicesOwn(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a faulted request reached the backend: %s", r.URL)
	})
	throttles := map[string]struct {
		code   string
		status int
	}{
		"dynamodb": {"ProvisionedThroughputExceededException", 400}, "sqs": {"RequestThrottled", 403},
		"states": {"ThrottlingException", 400}, "events": {"ThrottlingException", 400},
		"lambda": {"TooManyRequestsException", 429}, "scheduler": {"ThrottlingException", 429},
		"cloudformation": {"Throttling", 400}, "sts": {"Throttling", 400},
	}
	_, url := door(t, Profile{Name: "t", Rates: map[Fault]float64{Throttle: 1}}, backend)
	standard := retry.NewStandard()
	for service, call := range calls(sdkConfig(url, 1)) {
		err := call()
		var api smithy.APIError
		var resp *awshttp.ResponseError
		want := throttles[service]
		if !errors.As(err, &api) || api.ErrorCode() != want.code || !errors.As(err, &resp) || resp.HTTPStatusCode() != want.status {
			t.Errorf("%s throttled: %v, want %s with status %d", service, err, want.code, want.status)
			continue
		}
		if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary || !standard.IsErrorRetryable(err) {
			t.Errorf("%s: the SDK does not take %s for a retryable throttle", service, want.code)
		}
	}
	_, url = door(t, Profile{Name: "t", Rates: map[Fault]float64{ServerError: 1}}, backend)
	for service, call := range calls(sdkConfig(url, 1)) {
		seen := map[int]bool{}
		for range 16 { // a seeded coin picks 500 or 503 (Lambda: 500 always)
			err := call()
			var resp *awshttp.ResponseError
			if !errors.As(err, &resp) || (resp.HTTPStatusCode() != 500 && resp.HTTPStatusCode() != 503) || !standard.IsErrorRetryable(err) {
				t.Fatalf("%s server error: %v, want a retryable 500 or 503", service, err)
			}
			seen[resp.HTTPStatusCode()] = true
		}
		if want := map[int]bool{500: true, 503: service != "lambda"}; seen[503] != want[503] || !seen[500] {
			t.Errorf("%s answered %v over 16 server errors, want 500 and (but for Lambda) 503", service, seen)
		}
	}
}

// A lost answer is applied, then the connection drops: the SDK sees a retryable connection
// error and sends the request again, which the backend applies a second time.
func TestLostAnswerIsAppliedAndRetried(t *testing.T) {
	var applied atomic.Int32
	backend := emptyJSON(&applied)
	in, url := door(t, Profile{Name: "t", Rates: map[Fault]float64{LostAnswer: 1}, FirstOnly: true}, backend)
	if err := calls(sdkConfig(url, 3))["dynamodb"](); err != nil {
		t.Fatalf("the retry after a lost answer failed: %v", err)
	}
	if applied.Load() != 2 || in.Report().Injected[LostAnswer] != 1 || in.Report().Retries != 1 {
		t.Fatalf("applied %d times, report %+v; want 2 applications, 1 lost answer, 1 retry seen", applied.Load(), in.Report())
	}
}

// emptyJSON answers every request with an empty awsJson document, counting them.
func emptyJSON(applied *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		applied.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte("{}"))
	})
}

// Requests the faults may not hit pass untouched, armed or not.
func TestIneligibleRequestsPass(t *testing.T) {
	var applied atomic.Int32
	backend := emptyJSON(&applied)
	in := New(nil)
	in.Arm(1, Profile{Name: "t", Rates: map[Fault]float64{Throttle: 1}})
	srv := httptest.NewServer(in.Door(backend, DoorConfig{Caller: func(*http.Request) (bool, string) { return false, "" }}))
	defer srv.Close()
	if err := calls(sdkConfig(srv.URL, 1))["dynamodb"](); err != nil || applied.Load() != 1 || in.Report().Total() != 0 {
		t.Fatalf("an ineligible request: %v, applied %d, %s", err, applied.Load(), in.Report())
	}
}

// EC2's faults are EC2's own: its query XML with RequestLimitExceeded (503) when throttled,
// which byoc's EC2 client reads as a transient error.
func TestInjectedEC2ErrorsAreEC2s(t *testing.T) {
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a faulted request reached the backend: %s", r.URL)
	})
	for fault, want := range map[Fault]string{Throttle: "RequestLimitExceeded", ServerError: "InternalError"} {
		_, url := door(t, Profile{Name: "t", Rates: map[Fault]float64{fault: 1}}, backend)
		cfg := sdkConfig(url, 1)
		cfg.Credentials = credentials.NewStaticCredentialsProvider("111111111111", "local", "")
		_, err := cloud.NewEC2(cfg).DescribePeerings(context.Background(), []string{"pcx-0123456789abcdef0"}, nil)
		var e *cloud.EC2Error
		if !errors.As(err, &e) || (e.Code != want && e.Code != "Unavailable" && e.Code != "ServiceUnavailable") || !cloud.IsTransient(err) {
			t.Errorf("%s: %v, want EC2's %s, transient", fault, err, want)
		}
	}
}
