package eventbus

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

const vendor = "000000000000"

// stackEvent is a CloudFormation Stack Status Change as a customer account emits it.
const stackEvent = `{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"CloudFormation Stack Status Change","source":"aws.cloudformation","account":"111122223333","time":"2025-11-12T09:41:27Z","region":"us-west-2","resources":["arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-byoc-bootstrap/0c8b6f20"],"detail":{"stack-id":"arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-byoc-bootstrap/0c8b6f20","status-details":{"status":"CREATE_COMPLETE","status-reason":""},"client-request-token":"tok"}}`

type fixture struct {
	env      *cloudtest.Env
	bus      *Bus
	events   *eventbridge.Client
	sqs      *sqs.Client
	busName  string
	mu       sync.Mutex
	delivery []Delivery
}

func newFixture(t *testing.T, admits func(busArn, account, source string) bool) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	f := &fixture{env: env, events: env.EventBridge(), sqs: sqs.NewFromConfig(env.Config)}
	f.bus = New(Config{
		AWS: env.Config, Account: vendor, Region: "us-east-1", Admits: admits,
		CallerAccount: func(r *http.Request) string {
			if key, _, _ := frontdoor.CredentialScope(r); len(key) == 12 {
				return key // the tests sign as another account with its id as the key
			}
			return vendor
		},
		Observer: func(d Delivery) {
			f.mu.Lock()
			f.delivery = append(f.delivery, d)
			f.mu.Unlock()
		},
	})
	f.busName = cloudtest.UniqueName("vendor-bus")
	if _, err := f.events.CreateEventBus(context.Background(), &eventbridge.CreateEventBusInput{Name: aws.String(f.busName)}); err != nil {
		t.Fatal(err)
	}
	return f
}

// queue creates a queue and returns its URL and ARN.
func (f *fixture) queue(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	out, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("q"))})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	return *out.QueueUrl, attrs.Attributes["QueueArn"]
}

// rule puts a rule with one target on the fixture's bus.
func (f *fixture) rule(t *testing.T, pattern string, target ebtypes.Target) string {
	t.Helper()
	ctx := context.Background()
	name := cloudtest.UniqueName("rule")
	if _, err := f.events.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventBusName: aws.String(f.busName), EventPattern: aws.String(pattern)}); err != nil {
		t.Fatal(err)
	}
	target.Id = aws.String("t1")
	if _, err := f.events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name), EventBusName: aws.String(f.busName), Targets: []ebtypes.Target{target}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// messages drains a queue for a moment and returns the bodies.
func (f *fixture) messages(t *testing.T, url string, want int) []string {
	t.Helper()
	var bodies []string
	deadline := time.Now().Add(30 * time.Second)
	for len(bodies) < want && time.Now().Before(deadline) {
		out, err := f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
			_, _ = f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
	// Anything beyond what was expected is a bug too: look once more.
	out, err := f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 0})
	if err == nil {
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
		}
	}
	return bodies
}

func TestForwardedEventReachesMatchingTargetsUnchanged(t *testing.T) {
	f := newFixture(t, nil)
	url, arn := f.queue(t)
	otherURL, otherArn := f.queue(t)
	// Array matching (resources) with a prefix: kumo's own matcher cannot do this.
	f.rule(t, `{"source":["aws.cloudformation"],"resources":[{"prefix":"arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-byoc-"}],"detail":{"status-details":{"status":["CREATE_COMPLETE"]}}}`, ebtypes.Target{Arn: aws.String(arn)})
	f.rule(t, `{"source":["aws.cloudformation"],"detail":{"status-details":{"status":["CREATE_FAILED"]}}}`, ebtypes.Target{Arn: aws.String(otherArn)})

	if err := f.bus.Deliver(context.Background(), "arn:aws:events:us-east-1:"+vendor+":event-bus/"+f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	got := f.messages(t, url, 1)
	if len(got) != 1 || got[0] != stackEvent {
		t.Fatalf("the matching rule's queue received %q, want the event byte for byte:\n%s", got, stackEvent)
	}
	if other := f.messages(t, otherURL, 0); len(other) != 0 {
		t.Errorf("a rule that does not match received %q", other)
	}
}

func TestTargetInputPathAndTransformer(t *testing.T) {
	f := newFixture(t, nil)
	pathURL, pathArn := f.queue(t)
	tmplURL, tmplArn := f.queue(t)
	constURL, constArn := f.queue(t)
	pattern := `{"source":["aws.cloudformation"]}`
	f.rule(t, pattern, ebtypes.Target{Arn: aws.String(pathArn), InputPath: aws.String("$.detail.status-details")})
	rule := f.rule(t, pattern, ebtypes.Target{Arn: aws.String(tmplArn), InputTransformer: &ebtypes.InputTransformer{
		InputPathsMap: map[string]string{"status": "$.detail.status-details.status", "stack": "$.resources[0]"},
		InputTemplate: aws.String(`{"status": <status>, "text": "stack <stack> is <status>", "rule": "<aws.events.rule-name>"}`),
	}})
	f.rule(t, pattern, ebtypes.Target{Arn: aws.String(constArn), Input: aws.String(`{"fixed":true}`)})

	if err := f.bus.Deliver(context.Background(), f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	if got := f.messages(t, pathURL, 1); len(got) != 1 || got[0] != `{"status":"CREATE_COMPLETE","status-reason":""}` {
		t.Errorf("InputPath target received %q", got)
	}
	want := `{"status": "CREATE_COMPLETE", "text": "stack arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-byoc-bootstrap/0c8b6f20 is CREATE_COMPLETE", "rule": "` + rule + `"}`
	if got := f.messages(t, tmplURL, 1); len(got) != 1 || got[0] != want {
		t.Errorf("InputTransformer target received %q\nwant %q", got, want)
	}
	if got := f.messages(t, constURL, 1); len(got) != 1 || got[0] != `{"fixed":true}` {
		t.Errorf("Input target received %q", got)
	}
}

func TestLambdaAndStateMachineTargets(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	lc := lambda.NewFromConfig(f.env.Config)
	fn := cloudtest.UniqueName("fn")
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("bootstrap")
	_, _ = w.Write([]byte("x"))
	_ = zw.Close()
	created, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(fn), Runtime: ltypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::" + vendor + ":role/r"), Code: &ltypes.FunctionCode{ZipFile: zipped.Bytes()},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The function: one Runtime API poll, answered, exactly what lambda.Start does.
	f.env.ReadyRuntime(t, fn)
	received := make(chan []byte, 1)
	go func() {
		resp, err := http.Get(f.env.URL + "/_runtime/" + fn + "/2018-06-01/runtime/invocation/next")
		if err != nil {
			return
		}
		payload, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		r, err := http.Post(f.env.URL+"/_runtime/"+fn+"/2018-06-01/runtime/invocation/"+id+"/response", "application/json", strings.NewReader(`null`))
		if err == nil {
			_ = r.Body.Close()
		}
		received <- payload
	}()
	sfc := sfn.NewFromConfig(f.env.Config)
	sm, err := sfc.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name: aws.String(cloudtest.UniqueName("sm")), RoleArn: aws.String("arn:aws:iam::" + vendor + ":role/r"),
		Definition: aws.String(`{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	pattern := `{"detail-type":["CloudFormation Stack Status Change"]}`
	f.rule(t, pattern, ebtypes.Target{Arn: created.FunctionArn})
	f.rule(t, pattern, ebtypes.Target{Arn: sm.StateMachineArn})

	if err := f.bus.Deliver(ctx, f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	select {
	case payload := <-received:
		if string(payload) != stackEvent {
			t.Errorf("the function received %s", payload)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the Lambda target was not invoked")
	}
	execs, err := sfc.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: sm.StateMachineArn})
	if err != nil {
		t.Fatal(err)
	}
	if len(execs.Executions) != 1 {
		t.Fatalf("state machine target: %d executions, want 1", len(execs.Executions))
	}
	desc, err := sfc.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: execs.Executions[0].ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(desc.Input) != stackEvent {
		t.Errorf("execution input = %s", aws.ToString(desc.Input))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.delivery) != 2 {
		t.Fatalf("observed %d deliveries, want 2", len(f.delivery))
	}
	for _, d := range f.delivery {
		if d.Err != nil || d.EventID != "6a7e8feb-b491-4cf7-a9f1-bf3703467718" || d.DetailType != "CloudFormation Stack Status Change" {
			t.Errorf("delivery %+v", d)
		}
	}
}

func TestRedeliverSendsTheSameEventAgain(t *testing.T) {
	f := newFixture(t, nil)
	url, arn := f.queue(t)
	f.rule(t, `{"source":["aws.cloudformation"]}`, ebtypes.Target{Arn: aws.String(arn)})
	ctx := context.Background()
	if err := f.bus.Deliver(ctx, f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	if err := f.bus.Redeliver(ctx, "6a7e8feb-b491-4cf7-a9f1-bf3703467718"); err != nil {
		t.Fatal(err)
	}
	got := f.messages(t, url, 2)
	if len(got) != 2 || got[0] != stackEvent || got[1] != stackEvent {
		t.Errorf("received %q, want the same event twice", got)
	}
	if err := f.bus.Redeliver(ctx, "no-such-event"); err == nil || !strings.Contains(err.Error(), `no recent event with id "no-such-event"`) {
		t.Errorf("redeliver of an unknown id: %v", err)
	}
}

func TestDeliverRefusesMissingBusMalformedEventsAndSkipsDisabledRules(t *testing.T) {
	f := newFixture(t, nil)
	url, arn := f.queue(t)
	rule := f.rule(t, `{"source":["aws.cloudformation"]}`, ebtypes.Target{Arn: aws.String(arn)})
	ctx := context.Background()
	if err := f.bus.Deliver(ctx, "no-such-bus", []byte(stackEvent)); !errors.Is(err, ErrNoSuchBus) {
		t.Errorf("missing bus: error = %v, want ErrNoSuchBus", err)
	}
	for _, c := range []struct{ event, want string }{
		{`not json`, "event is not a JSON object"},
		{`{"id":"x","source":"s","detail-type":"d","account":"1","time":"t","detail":"text"}`, "event lacks detail (an object)"},
		{`{"detail":{}}`, "event lacks id, source, detail-type, account, time"},
	} {
		if err := f.bus.Deliver(ctx, f.busName, []byte(c.event)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Deliver(%s) error = %v, want %q", c.event, err, c.want)
		}
	}
	// kumo has no DisableRule; PutRule with State DISABLED is the same change.
	if _, err := f.events.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(rule), EventBusName: aws.String(f.busName),
		EventPattern: aws.String(`{"source":["aws.cloudformation"]}`), State: ebtypes.RuleStateDisabled}); err != nil {
		t.Fatal(err)
	}
	if err := f.bus.Deliver(ctx, f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	if got := f.messages(t, url, 0); len(got) != 0 {
		t.Errorf("refused events or a disabled rule delivered %q", got)
	}
}

// door is a front door with the bus mounted for PutEvents, kumo behind it.
func (f *fixture) door(t *testing.T) string {
	t.Helper()
	proxy, err := frontdoor.Proxy(f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := frontdoor.New(proxy)
	d.HandleIf("events", IsPutEvents, f.bus)
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return srv.URL
}

func clientAs(url, accessKey, region string) *eventbridge.Client {
	return eventbridge.NewFromConfig(aws.Config{
		Region: region, BaseEndpoint: aws.String(url), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(accessKey, "secret", ""),
	})
}

func TestPutEventsBuildsAWSsEnvelopeAndRefusesBadEntries(t *testing.T) {
	f := newFixture(t, nil)
	url, arn := f.queue(t)
	f.rule(t, `{"source":["byoc.test"]}`, ebtypes.Target{Arn: aws.String(arn)})
	client := clientAs(f.door(t), "AKIDVENDOR", "eu-central-1")
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	entry := func(mod func(*ebtypes.PutEventsRequestEntry)) ebtypes.PutEventsRequestEntry {
		e := ebtypes.PutEventsRequestEntry{
			EventBusName: aws.String(f.busName), Source: aws.String("byoc.test"), DetailType: aws.String("Test"),
			Detail: aws.String(`{"a": [1, 2]}`), Time: aws.Time(at),
		}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	out, err := client.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		entry(nil),
		entry(func(e *ebtypes.PutEventsRequestEntry) { e.Detail = nil }),
		entry(func(e *ebtypes.PutEventsRequestEntry) { e.Detail = aws.String(`[1,2]`) }),
		entry(func(e *ebtypes.PutEventsRequestEntry) { e.Source = aws.String("aws.cloudformation") }),
		entry(func(e *ebtypes.PutEventsRequestEntry) { e.EventBusName = aws.String("missing-bus") }),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 4 {
		t.Errorf("FailedEntryCount = %d, want 4", out.FailedEntryCount)
	}
	wantCodes := []string{"", "InvalidArgument", "MalformedDetail", "NotAuthorizedForSourceException", "ResourceNotFoundException"}
	for i, e := range out.Entries {
		if aws.ToString(e.ErrorCode) != wantCodes[i] {
			t.Errorf("entry %d: ErrorCode %q (%s), want %q", i, aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage), wantCodes[i])
		}
	}
	if msg := aws.ToString(out.Entries[1].ErrorMessage); msg != "Parameter Detail is not valid. Reason: Detail is a required argument." {
		t.Errorf("missing Detail message = %q", msg)
	}
	got := f.messages(t, url, 1)
	if len(got) != 1 {
		t.Fatalf("received %d events, want only the valid one: %q", len(got), got)
	}
	want := `{"version":"0","id":"` + aws.ToString(out.Entries[0].EventId) + `","detail-type":"Test","source":"byoc.test","account":"000000000000","time":"2025-03-04T05:06:07Z","region":"eu-central-1","resources":[],"detail":{"a":[1,2]}}`
	if got[0] != want {
		t.Errorf("delivered\n%s\nwant\n%s", got[0], want)
	}

	_, err = client.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, 11)})
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" {
		t.Errorf("11 entries: error = %v, want ValidationException", err)
	}
}

func TestPutEventsFromAnotherAccountNeedsTheBusPolicy(t *testing.T) {
	admitted := map[string]bool{}
	var asked []string // the policy is asked about each entry's source (events:source)
	f := newFixture(t, func(busArn, account, source string) bool {
		asked = append(asked, source)
		return admitted[account]
	})
	url, arn := f.queue(t)
	f.rule(t, `{"source":["byoc.test"]}`, ebtypes.Target{Arn: aws.String(arn)})
	client := clientAs(f.door(t), "111122223333", "us-east-1")
	put := func() *eventbridge.PutEventsOutput {
		out, err := client.PutEvents(context.Background(), &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			EventBusName: aws.String("arn:aws:events:us-east-1:" + vendor + ":event-bus/" + f.busName),
			Source:       aws.String("byoc.test"), DetailType: aws.String("T"), Detail: aws.String(`{}`),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := put()
	if code := aws.ToString(out.Entries[0].ErrorCode); code != "AccessDeniedException" {
		t.Errorf("not admitted: ErrorCode %q, want AccessDeniedException", code)
	}
	if got := f.messages(t, url, 0); len(got) != 0 {
		t.Fatalf("a refused event was delivered: %q", got)
	}
	admitted["111122223333"] = true
	out = put()
	if out.FailedEntryCount != 0 {
		t.Fatalf("admitted account refused: %s", aws.ToString(out.Entries[0].ErrorMessage))
	}
	got := f.messages(t, url, 1)
	if len(got) != 1 || !strings.Contains(got[0], `"account":"111122223333"`) {
		t.Errorf("the event must carry the sender's account: %q", got)
	}
	if strings.Join(asked, ",") != "byoc.test,byoc.test" {
		t.Errorf("the policy was asked about sources %q, want the entry's source each time", asked)
	}
}

// TestSNSTargetPublishesTheEvent: a rule targeting an SNS topic (the control plane's
// operator rules) publishes the event as the message; the topic's SQS subscriber receives
// it. A topic that does not exist is a failed delivery, as in EventBridge.
func TestSNSTargetPublishesTheEvent(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	topics := sns.NewFromConfig(f.env.Config)
	topic, err := topics.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(cloudtest.UniqueName("topic"))})
	if err != nil {
		t.Fatal(err)
	}
	url, queueArn := f.queue(t)
	if _, err := topics.Subscribe(ctx, &sns.SubscribeInput{TopicArn: topic.TopicArn, Protocol: aws.String("sqs"), Endpoint: aws.String(queueArn),
		Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatal(err)
	}
	rule := f.rule(t, `{"source":["aws.cloudformation"]}`, ebtypes.Target{Arn: topic.TopicArn})
	missing := aws.ToString(topic.TopicArn) + "-missing"
	missingRule := f.rule(t, `{"source":["aws.cloudformation"]}`, ebtypes.Target{Arn: aws.String(missing)})

	if err := f.bus.Deliver(ctx, "arn:aws:events:us-east-1:"+vendor+":event-bus/"+f.busName, []byte(stackEvent)); err != nil {
		t.Fatal(err)
	}
	if got := f.messages(t, url, 1); len(got) != 1 || got[0] != stackEvent {
		t.Fatalf("the topic's subscriber received %q, want the event byte for byte:\n%s", got, stackEvent)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	byRule := map[string]Delivery{}
	for _, d := range f.delivery {
		byRule[d.Rule] = d
	}
	if d := byRule[rule]; d.Err != nil || d.Target != aws.ToString(topic.TopicArn) {
		t.Errorf("delivery to the topic = %+v, want success", d)
	}
	if d := byRule[missingRule]; d.Err == nil || d.Target != missing {
		t.Errorf("delivery to a missing topic = %+v, want an error", d)
	}
}
