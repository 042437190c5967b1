package sqsgate

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

const (
	customer      = "111111111111"
	otherCustomer = "222222222222"
)

func exporterRole(account, dep string) string {
	return "arn:aws:iam::" + account + ":role/clickhouse-cloud-" + dep + "-state-exporter"
}

func agentRole(account, dep string) string {
	return "arn:aws:iam::" + account + ":role/clickhouse-cloud-" + dep + "-agent"
}

// fixture is a front door over kumo with the gate on SQS, as the local cloud mounts it.
type fixture struct {
	env      *cloudtest.Env
	accounts *accounts.Accounts
	gate     *Gate
	url      string
	kumo     *sqs.Client // straight to kumo: what the local cloud's own components see
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	f := &fixture{env: env, accounts: accounts.New(), kumo: sqs.NewFromConfig(env.Config)}
	door, gate, err := Door(env.Config, f.accounts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.gate = gate
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fixture) client(creds aws.Credentials) *sqs.Client {
	return sqs.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.url),
		Credentials: credentials.StaticCredentialsProvider{Value: creds}, RetryMaxAttempts: 1})
}

// session is a pod's session of a role, as EKS Pod Identity gives it.
func (f *fixture) session(t *testing.T, roleArn, name string) *sqs.Client {
	t.Helper()
	creds, err := f.accounts.WorkloadCredentials(roleArn, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return f.client(creds)
}

// vendor is the control plane (the vendor account's root user).
func (f *fixture) vendor() *sqs.Client {
	return f.client(aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"})
}

func (f *fixture) queue(t testing.TB, name string) string {
	t.Helper()
	out, err := f.vendor().CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName(name))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

// drain receives everything visible, straight from kumo, with every attribute.
func (f *fixture) drain(t *testing.T, url string) []sqstypes.Message {
	t.Helper()
	var all []sqstypes.Message
	for {
		out, err := f.kumo.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			MessageAttributeNames: []string{"All"}, VisibilityTimeout: 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return all
		}
		all = append(all, out.Messages...)
	}
}

func (f *fixture) depth(t *testing.T, url string) int {
	t.Helper()
	a, err := f.kumo.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"}})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(a.Attributes["ApproximateNumberOfMessages"])
	m, _ := strconv.Atoi(a.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return n + m
}

// admit writes the state queue policy the sweep writes for these data planes.
func (f *fixture) admit(t testing.TB, url string, exporters ...string) {
	t.Helper()
	var planes []servicestate.DataPlane
	for _, arn := range exporters {
		planes = append(planes, servicestate.DataPlane{ExporterRoleARN: arn})
	}
	if _, err := channel.AdmitExporters(context.Background(), f.vendor(), url, planes); err != nil {
		t.Fatal(err)
	}
}

func str(s string) sqstypes.MessageAttributeValue {
	return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

func senderOf(m sqstypes.Message) string {
	return aws.ToString(m.MessageAttributes[contract.LocalSenderIDAttribute].StringValue)
}

// wantDenied checks that err is SQS's answer to a refused call.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" || apiErr.ErrorFault() != smithy.FaultClient {
		t.Fatalf("%s: error = %v, want AccessDenied (client fault)", what, err)
	}
	var httpErr *smithyhttp.ResponseError
	if !errors.As(err, &httpErr) || httpErr.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("%s: want HTTP 403, got %v", what, err)
	}
	if !strings.HasPrefix(apiErr.ErrorMessage(), "Access to the resource https://sqs.us-east-1.amazonaws.com/ is denied") {
		t.Errorf("%s: message %q", what, apiErr.ErrorMessage())
	}
}

func TestSendIsStampedWithTheCallersIdentityAndAForgedSenderDoesNotSurvive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url := f.queue(t, "state")
	exporter := exporterRole(customer, "d1")
	f.admit(t, url, exporter)
	client := f.session(t, exporter, "state-exporter")

	forged := "AROAFORGEDFORGEDFORGE:state-exporter"
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"n":1}`),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{contract.LocalSenderIDAttribute: str(forged), "kind": str("report")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String(`{"n":2}`)},
		{Id: aws.String("b"), MessageBody: aws.String(`{"n":3}`), MessageAttributes: map[string]sqstypes.MessageAttributeValue{contract.LocalSenderIDAttribute: str(forged)}},
	}}); err != nil {
		t.Fatal(err)
	}
	// The vendor's own root user is stamped with its account id, as SQS reports root senders.
	if _, err := f.vendor().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"n":4}`)}); err != nil {
		t.Fatal(err)
	}
	msgs := f.drain(t, url)
	if len(msgs) != 4 {
		t.Fatalf("queue holds %d messages, want 4", len(msgs))
	}
	want := accounts.RoleID(exporter) + ":state-exporter"
	for _, m := range msgs {
		body := aws.ToString(m.Body)
		wantSender := want
		if body == `{"n":4}` {
			wantSender = accounts.VendorAccount
		}
		if got := senderOf(m); got != wantSender {
			t.Errorf("message %s: sender %q, want %q", body, got, wantSender)
		}
		if body == `{"n":1}` && aws.ToString(m.MessageAttributes["kind"].StringValue) != "report" {
			t.Errorf("the caller's own attribute was lost: %+v", m.MessageAttributes)
		}
	}
}

func TestTooManyAttributesAreRefusedAsSQSRefusesThem(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url := f.queue(t, "attrs")
	attrs := func(n int) map[string]sqstypes.MessageAttributeValue {
		m := map[string]sqstypes.MessageAttributeValue{}
		for i := range n {
			m["a"+strconv.Itoa(i)] = str("v")
		}
		return m
	}
	// Ten of its own (SQS's limit) is accepted, a forged sender attribute is not counted.
	ten := attrs(10)
	ten[contract.LocalSenderIDAttribute] = str("forged")
	if _, err := f.vendor().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("ten"), MessageAttributes: ten}); err != nil {
		t.Fatalf("ten attributes: %v", err)
	}
	_, err := f.vendor().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("eleven"), MessageAttributes: attrs(11)})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" ||
		apiErr.ErrorMessage() != "Number of message attributes [11] exceeds the allowed maximum [10]." {
		t.Fatalf("eleven attributes: error %v, want InvalidParameterValue naming the limit", err)
	}
	_, err = f.vendor().SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: []sqstypes.SendMessageBatchRequestEntry{
		{Id: aws.String("ok"), MessageBody: aws.String("ok")},
		{Id: aws.String("bad"), MessageBody: aws.String("bad"), MessageAttributes: attrs(11)},
	}})
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "InvalidParameterValue" || !strings.HasPrefix(apiErr.ErrorMessage(), "entry 2: ") {
		t.Fatalf("batch with an entry of eleven attributes: error %v", err)
	}
	msgs := f.drain(t, url)
	if len(msgs) != 1 || aws.ToString(msgs[0].Body) != "ten" || senderOf(msgs[0]) != accounts.VendorAccount {
		t.Fatalf("queue holds %+v, want only the message of ten attributes, stamped", msgs)
	}
}

func TestStateQueuePolicyAdmitsOnlyRegisteredExporters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url := f.queue(t, "state")
	admitted := exporterRole(customer, "d1")
	f.admit(t, url, admitted)

	if _, err := f.session(t, admitted, "state-exporter").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("ok")}); err != nil {
		t.Fatalf("admitted exporter: %v", err)
	}
	before := f.depth(t, url)
	refused := map[string]*sqs.Client{
		"an exporter not registered":              f.session(t, exporterRole(otherCustomer, "d2"), "state-exporter"),
		"another role of the admitted account":    f.session(t, agentRole(customer, "d1"), "agent"),
		"the admitted account's root user":        f.client(accounts.AdminCredentials(customer)),
		"an exporter of a deployment not present": f.session(t, exporterRole(customer, "d9"), "state-exporter"),
	}
	for what, client := range refused {
		_, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("no")})
		wantDenied(t, what, err)
	}
	// The admitted exporter may only send.
	_, err := f.session(t, admitted, "state-exporter").ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
	wantDenied(t, "the exporter receiving", err)
	if got := f.depth(t, url); got != before {
		t.Fatalf("refused calls changed the queue: %d messages, want %d", got, before)
	}

	// A new admission takes effect at once (the cache is cleared by the policy write).
	f.admit(t, url, admitted, exporterRole(otherCustomer, "d2"))
	if _, err := f.session(t, exporterRole(otherCustomer, "d2"), "state-exporter").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("now")}); err != nil {
		t.Fatalf("exporter admitted just now: %v", err)
	}
	// A queue without a policy admits no other account.
	bare := f.queue(t, "bare")
	_, err = f.session(t, admitted, "state-exporter").SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(bare), MessageBody: aws.String("no")})
	wantDenied(t, "cross-account send to a queue without policy", err)
}

func TestCommandQueueIsReadOnlyByTheAgent(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := cloudtest.UniqueDeploymentID()
	agent := agentRole(customer, dep)
	url, err := channel.Open(ctx, f.vendor(), dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := channel.QueueName(dep)
	t.Cleanup(func() { _ = channel.Close(context.Background(), f.vendor(), dep) })
	// The control plane sends (its own account: no Allow needed).
	if _, err := f.vendor().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(`{"cmd":1}`),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("1")}); err != nil {
		t.Fatal(err)
	}

	// Everyone else is refused, the vendor's own root user included (explicit Deny).
	for what, client := range map[string]*sqs.Client{
		"another role in the same customer account": f.session(t, exporterRole(customer, dep), "state-exporter"),
		"the customer's root user":                  f.client(accounts.AdminCredentials(customer)),
		"another customer's agent":                  f.session(t, agentRole(otherCustomer, dep), "agent"),
		"the vendor account's root user":            f.vendor(),
	} {
		_, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url)})
		wantDenied(t, what+" receiving", err)
	}
	if got := f.depth(t, url); got != 1 {
		t.Fatalf("the command was taken by a refused caller: depth %d", got)
	}

	// The agent finds the queue in the vendor account and reads it.
	client := f.session(t, agent, "agent")
	got, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name), QueueOwnerAWSAccountId: aws.String(accounts.VendorAccount)})
	if err != nil {
		t.Fatalf("agent GetQueueUrl: %v", err)
	}
	if !strings.HasSuffix(aws.ToString(got.QueueUrl), "/"+accounts.VendorAccount+"/"+name) {
		t.Errorf("QueueUrl = %s", aws.ToString(got.QueueUrl))
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: got.QueueUrl, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{"All"},
		MessageAttributeNames: []string{"All"}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("agent receive: %v %+v", err, out)
	}
	m := out.Messages[0]
	// As on SQS: the sender is a system attribute, not a message attribute.
	if m.Attributes["SenderId"] != accounts.VendorAccount || len(m.MessageAttributes) != 0 {
		t.Errorf("received attributes %v, message attributes %v: want SenderId %s only", m.Attributes, m.MessageAttributes, accounts.VendorAccount)
	}
	if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: got.QueueUrl, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatalf("agent delete: %v", err)
	}
	// Without the owner, a GetQueueUrl looks in the caller's own account, which has no queues.
	_, err = client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	var dne *sqstypes.QueueDoesNotExist
	if !errors.As(err, &dne) {
		t.Errorf("GetQueueUrl without owner: %v, want QueueDoesNotExist", err)
	}
	// The agent may not manage the queue, whatever a policy said.
	_, err = client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: got.QueueUrl, Attributes: map[string]string{"VisibilityTimeout": "1"}})
	wantDenied(t, "agent SetQueueAttributes", err)
	_, err = client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: got.QueueUrl})
	wantDenied(t, "agent DeleteQueue", err)
	if _, err := f.kumo.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: got.QueueUrl}); err != nil {
		t.Fatalf("the queue is gone after a refused delete: %v", err)
	}
}

func TestInternalCallsAreNotGated(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dep := cloudtest.UniqueDeploymentID()
	url, err := channel.Open(ctx, f.vendor(), dep, agentRole(customer, dep))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = channel.Close(context.Background(), f.vendor(), dep) })
	internal := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(f.url), HTTPClient: frontdoor.InternalClient(),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	if _, err := sqs.NewFromConfig(internal).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatalf("an internal receive (an event source poller) was gated: %v", err)
	}
}

func TestDeniedAnswerIsSQSJSONProtocol(t *testing.T) {
	f := newFixture(t)
	url := f.queue(t, "raw")
	req, _ := http.NewRequest(http.MethodPost, f.url+"/", strings.NewReader(`{"QueueUrl":"`+url+`","MessageBody":"x"}`))
	req.Header.Set("X-Amz-Target", "AmazonSQS.SendMessage")
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+otherCustomer+"/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-amzn-query-error") != "AccessDenied;Sender" ||
		resp.Header.Get("Content-Type") != "application/x-amz-json-1.0" || resp.Header.Get("x-amzn-RequestId") == "" ||
		!strings.Contains(string(body), `"__type":"com.amazon.coral.service#AccessDeniedException"`) {
		t.Fatalf("answer %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if f.depth(t, url) != 0 {
		t.Fatal("a refused send was enqueued")
	}
}

// A FIFO receive retried with its ReceiveRequestAttemptId (its answer was lost) gets the same
// messages and receipt handles, as SQS answers within five minutes; without the id, or with
// another one, the messages are in flight and the group is locked.
func TestReceiveRequestAttemptIdReplaysAFIFOReceive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created, err := f.vendor().CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("cmd") + ".fifo"),
		Attributes: map[string]string{"FifoQueue": "true", "VisibilityTimeout": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(created.QueueUrl)
	for _, body := range []string{"first", "second"} {
		if _, err := f.vendor().SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
			MessageGroupId: aws.String("deployment"), MessageDeduplicationId: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(attempt string) []sqstypes.Message {
		in := &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 1}
		if attempt != "" {
			in.ReceiveRequestAttemptId = aws.String(attempt)
		}
		out, err := f.vendor().ReceiveMessage(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	first := receive("attempt-1")
	if len(first) != 1 || aws.ToString(first[0].Body) != "first" {
		t.Fatalf("first receive: %+v", first)
	}
	again := receive("attempt-1")
	if len(again) != 1 || aws.ToString(again[0].MessageId) != aws.ToString(first[0].MessageId) || aws.ToString(again[0].ReceiptHandle) != aws.ToString(first[0].ReceiptHandle) {
		t.Fatalf("the retried attempt got %+v, want the first answer again", again)
	}
	if other := receive("attempt-2"); len(other) != 0 {
		t.Fatalf("another attempt got %+v while the group's first message is in flight", other)
	}
	if _, err := f.vendor().DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: again[0].ReceiptHandle}); err != nil {
		t.Fatalf("the replayed receipt handle does not delete: %v", err)
	}
	if next := receive("attempt-3"); len(next) != 1 || aws.ToString(next[0].Body) != "second" {
		t.Fatalf("after the delete: %+v, want the second message", next)
	}
}
