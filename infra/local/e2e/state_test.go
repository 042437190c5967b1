package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// The service-state tests (issue 5) run on the shared cloud and control plane: the state
// queue and its DLQ, stateingest behind its event source mapping, statesweep behind its
// schedule, statewait, all from the synthesized template. They read what the control plane
// wrote through uncounted clients (the table, a tap on the vendor bus), and act as the data
// plane with sessions of the roles the infrastructure stack created.

// Control-plane outputs the state tests read.
const (
	outStateQueueURL = "StateQueueUrl"
	outTableName     = "TableName"
	outVendorBus     = "VendorEventBusName"
)

// redeliveryAfter is the state queue's visibility timeout during the tests. The stack sets
// it to several times stateingest's timeout (minutes), so a rejected message would take
// maxReceiveCount × minutes to reach the DLQ; the tests shorten it so it takes seconds.
// What they prove is unchanged: a rejected message is received maxReceiveCount times, never
// deleted, then moved to the DLQ by SQS's redrive. Two seconds is far longer than a batch
// takes, so a good message is never redelivered.
const redeliveryAfter = 2

// stateEnv is what the service-state tests share.
type stateEnv struct {
	queueURL, queueARN string
	dlqURL             string
	maxReceiveCount    int
	visibilityTimeout  string             // the stack's
	repo               *servicestate.Repo // reads (and test-side writes) through an uncounted client
	watchSQS           *sqs.Client
	tap                *busTap
	dlq                *queueReader
}

var (
	stateOnce   sync.Once
	stateShared *stateEnv
	stateErr    error
)

// state returns the shared service-state environment, set up on first use.
func state(t testing.TB) *stateEnv {
	t.Helper()
	stateOnce.Do(func() { stateShared, stateErr = setupState() })
	if stateErr != nil {
		t.Fatal(stateErr)
	}
	return stateShared
}

func setupState() (*stateEnv, error) {
	ctx := context.Background()
	out := shared.runner.ControlPlane.Outputs
	for _, name := range []string{outStateQueueURL, outTableName, outVendorBus} {
		if out[name] == "" {
			return nil, fmt.Errorf("the control-plane stack has no output %s", name)
		}
	}
	watch := shared.cloud.WatchConfig()
	s := &stateEnv{
		queueURL: out[outStateQueueURL], watchSQS: sqs.NewFromConfig(watch),
		repo: servicestate.New(cloud.NewDynamoDB(watch), out[outTableName]),
	}
	attrs, err := s.watchSQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(s.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNameRedrivePolicy, sqstypes.QueueAttributeNameVisibilityTimeout}})
	if err != nil {
		return nil, fmt.Errorf("the state queue: %w", err)
	}
	s.queueARN, s.visibilityTimeout = attrs.Attributes["QueueArn"], attrs.Attributes["VisibilityTimeout"]
	var redrive struct {
		DeadLetterTargetArn string          `json:"deadLetterTargetArn"`
		MaxReceiveCount     json.RawMessage `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(attrs.Attributes["RedrivePolicy"]), &redrive); err != nil || redrive.DeadLetterTargetArn == "" {
		return nil, fmt.Errorf("the state queue has no redrive policy (%q): rejected messages must end in a DLQ", attrs.Attributes["RedrivePolicy"])
	}
	if _, err := fmt.Sscan(strings.Trim(string(redrive.MaxReceiveCount), `"`), &s.maxReceiveCount); err != nil {
		return nil, fmt.Errorf("the state queue's maxReceiveCount %s: %w", redrive.MaxReceiveCount, err)
	}
	if s.dlqURL, err = queueURLOf(ctx, s.watchSQS, redrive.DeadLetterTargetArn); err != nil {
		return nil, err
	}
	s.dlq = &queueReader{sqs: s.watchSQS, url: s.dlqURL}
	if s.tap, err = newBusTap(ctx, out[outVendorBus]); err != nil {
		return nil, err
	}
	return s, nil
}

// fastRedelivery shortens the state queue's visibility timeout (see redeliveryAfter) until
// the test ends; stackRedelivery restores the stack's.
func (s *stateEnv) fastRedelivery(t testing.TB) {
	s.setVisibility(t, fmt.Sprint(redeliveryAfter))
	t.Cleanup(func() { s.stackRedelivery(t) })
}

func (s *stateEnv) stackRedelivery(t testing.TB) { s.setVisibility(t, s.visibilityTimeout) }

func (s *stateEnv) setVisibility(t testing.TB, seconds string) {
	t.Helper()
	_, err := s.watchSQS.SetQueueAttributes(context.Background(), &sqs.SetQueueAttributesInput{QueueUrl: aws.String(s.queueURL),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNameVisibilityTimeout): seconds}})
	if err != nil {
		t.Fatal(err)
	}
}

// awaitEmpty waits until the state queue holds no message, visible or in flight.
func (s *stateEnv) awaitEmpty(t testing.TB, timeout time.Duration) {
	t.Helper()
	until(t, timeout, "the state queue to be empty", func() (bool, string) {
		out, err := s.watchSQS.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(s.queueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			t.Fatal(err)
		}
		visible, inFlight := out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
		return visible == "0" && inFlight == "0", visible + " visible, " + inFlight + " in flight"
	})
}

func queueURLOf(ctx context.Context, c *sqs.Client, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 {
		return "", fmt.Errorf("%q is not a queue ARN", arn)
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", arn, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// tenant is a customer onboarded on the shared cloud, with its deployment ready.
type tenant struct {
	customer     string
	dep          store.Deployment
	exporterRole string // the infrastructure stack's state exporter role
	agentRole    string // its in-cluster agent role: the command channel's reader
	epoch        int64  // the hand-played exporter's epoch
}

// onboard runs the onboarding scenario for a new customer and checks that provisioning
// registered the deployment's data plane with the roles the infrastructure stack created.
func onboard(t testing.TB) tenant {
	t.Helper()
	st := state(t)
	res, err := shared.runner.Run(context.Background(), scenario.Options{Scenario: scenario.Onboard, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("onboarding: %v", err)
	}
	d := res.Deployment
	tn := tenant{customer: res.Customer, dep: d, exporterRole: d.Outputs[contract.InfraOutputStateExporterRoleArn],
		agentRole: d.Outputs[contract.InfraOutputAgentRoleArn], epoch: time.Now().UnixMilli()}
	if d.Status != lifecycle.Ready || tn.exporterRole == "" || tn.agentRole == "" {
		t.Fatalf("deployment %+v: want ready with the exporter and agent roles in its outputs", d)
	}
	dp, err := st.repo.DataPlane(context.Background(), d.ID)
	if err != nil {
		t.Fatalf("provisioning did not register the data plane of %s: %v", d.ID, err)
	}
	// The role id recorded from the stack's StateExporterRoleId output must be the one the
	// exporter's sessions carry, or every message would be refused as forged.
	if dp.ExporterRoleARN != tn.exporterRole || dp.ExporterRoleID != accounts.RoleID(tn.exporterRole) || dp.AgentRoleARN != tn.agentRole || dp.AccountID != tn.customer {
		t.Fatalf("data plane %+v: want exporter %s (id %s), agent %s, account %s", dp, tn.exporterRole, accounts.RoleID(tn.exporterRole), tn.agentRole, tn.customer)
	}
	return tn
}

// sessionConfig is an SDK configuration acting as a session of roleArn, issued as EKS Pod
// Identity issues them to a pod.
func sessionConfig(t testing.TB, roleArn, session string) aws.Config {
	t.Helper()
	creds, err := shared.cloud.Accounts.WorkloadCredentials(roleArn, session, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := shared.cloud.Config()
	cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
	return cfg
}

// exporter is an SQS client of the exporter role, with the simulator's session name.
func (tn tenant) exporter(t testing.TB) *sqs.Client {
	return sqs.NewFromConfig(sessionConfig(t, tn.exporterRole, "state-exporter"))
}

// report is a healthy state message of svc from this tenant's hand-played exporter.
func (tn tenant) report(svc string, seq int64) statemsg.Message {
	return statemsg.Message{
		SchemaVersion: statemsg.Version1, DeploymentID: tn.dep.ID, ServiceID: svc, Hostname: svc + "." + tn.dep.ID + ".byoc.local",
		ObservedAt: time.Now().UTC(), ExporterEpoch: tn.epoch, Sequence: seq, Status: statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: "24.8.1.2684", Operator: "0.25.3", Kubernetes: "1.30"},
		Replicas: statemsg.Replicas{Ready: 3, Desired: 3}, StorageBytes: 1 << 30,
	}
}

func encode(t testing.TB, m statemsg.Message) string {
	t.Helper()
	b, err := statemsg.Encode(m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send sends bodies to the state queue with client, ten per SendMessageBatch, and returns
// their message ids in order.
func (s *stateEnv) send(t testing.TB, client *sqs.Client, bodies ...string) []string {
	t.Helper()
	ids, err := s.trySend(client, bodies...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (s *stateEnv) trySend(client *sqs.Client, bodies ...string) ([]string, error) {
	var ids []string
	for start := 0; start < len(bodies); start += 10 {
		chunk := bodies[start:min(start+10, len(bodies))]
		entries := make([]sqstypes.SendMessageBatchRequestEntry, len(chunk))
		for i, b := range chunk {
			entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), MessageBody: aws.String(b)}
		}
		out, err := client.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL), Entries: entries})
		if err != nil {
			return ids, fmt.Errorf("SendMessageBatch: %w", err)
		}
		if len(out.Failed) > 0 {
			return ids, fmt.Errorf("SendMessageBatch refused entries: %+v", out.Failed)
		}
		got := make([]string, len(chunk))
		for _, ok := range out.Successful {
			var i int
			_, _ = fmt.Sscan(aws.ToString(ok.Id), &i)
			got[i] = aws.ToString(ok.MessageId)
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// until waits for cond, checking it now and again after every batch, invocation, workflow
// event or schedule firing on the cloud's timeline (what can change service state), and
// at least every tenth of a second. cond returns whether it holds and what it saw.
func until(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poke := make(chan struct{}, 1)
	shared.subscribe(t, func(e localcloud.Event) {
		switch e.Kind {
		case localcloud.KindBatch, localcloud.KindInvoke, localcloud.KindExecution, localcloud.KindSchedule:
			select {
			case poke <- struct{}{}:
			default:
			}
		}
	})
	deadline := time.After(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		select {
		case <-poke:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after %s: %s; saw %s", timeout, what, saw)
		}
	}
}

// ingestion sums what stateingest's event source mapping did in a recording with the
// messages of one deployment (by the deployment their body names; "" for bodies naming
// none): messages handed to the function (every receive of a message counts) and messages
// deleted. Other deployments' messages sharing the queue (a late report of an earlier test's
// data plane) do not count.
func ingestion(rec *recording, deployment string) (handed, deleted int) {
	for _, e := range rec.all() {
		if e.Kind != localcloud.KindBatch || e.Subject != contract.FunctionStateIngest {
			continue
		}
		handed, deleted = handed+e.HandedBy[deployment], deleted+e.DeletedBy[deployment]
	}
	return handed, deleted
}

// awaitDeleted waits until stateingest's mapping has deleted n messages of the deployment in
// rec: they were processed and their effects (writes, events) are done.
func awaitDeleted(t testing.TB, rec *recording, deployment string, n int) {
	t.Helper()
	until(t, 30*time.Second, fmt.Sprintf("stateingest to finish %d messages of %s", n, deployment), func() (bool, string) {
		h, d := ingestion(rec, deployment)
		return d >= n, fmt.Sprintf("%d handed, %d deleted", h, d)
	})
}

// batchTotals sums the "state batch" lines stateingest logged in logs.
func batchTotals(t testing.TB, logs string) map[string]int {
	t.Helper()
	total := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		i := strings.Index(line, "{")
		if !strings.Contains(line, `"msg":"state batch"`) || i < 0 {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line[i:]), &fields); err != nil {
			t.Fatalf("batch log line %q: %v", line, err)
		}
		for _, k := range []string{"messages", "applied", "duplicate", "out-of-order", "rejected", "retry", "dynamodbWrites"} {
			n, _ := fields[k].(float64)
			total[k] += int(n)
		}
	}
	return total
}

// services returns a deployment's stored services by id.
func (s *stateEnv) services(t testing.TB, dep string) map[string]servicestate.Service {
	t.Helper()
	list, err := s.repo.Services(context.Background(), dep)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]servicestate.Service{}
	for _, svc := range list {
		out[svc.ServiceID] = svc
	}
	return out
}

func (s *stateEnv) deploymentHealth(t testing.TB, dep string) health.Health {
	t.Helper()
	dh, err := s.repo.DeploymentHealth(context.Background(), dep)
	if err != nil {
		t.Fatal(err)
	}
	return dh.Health
}

func (s *stateEnv) history(t testing.TB, dep string) []health.Transition {
	t.Helper()
	h, err := s.repo.History(context.Background(), dep, 100)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// awaitStored waits until each service of dep stores the report with its sequence.
func (s *stateEnv) awaitStored(t testing.TB, tn tenant, seqs map[string]int64) {
	t.Helper()
	until(t, 30*time.Second, fmt.Sprintf("deployment %s to store %v", tn.dep.ID, seqs), func() (bool, string) {
		got := s.services(t, tn.dep.ID)
		for svc, seq := range seqs {
			if got[svc].OrderKey != statemsg.OrderKey(tn.epoch, seq) {
				return false, fmt.Sprintf("%s at %q", svc, got[svc].OrderKey)
			}
		}
		return true, ""
	})
}

// busEvent is an event of source byoc.state seen on the vendor bus: a health alert or a
// rejected message, read with the contract's own types.
type busEvent struct {
	ID, DetailType string
	Alert          servicestate.AlertDetail     // the health-changed detail-types
	Rejection      servicestate.RejectionDetail // DetailTypeStateMessageRejected
}

func (e busEvent) String() string {
	if e.DetailType == contract.DetailTypeStateMessageRejected {
		return fmt.Sprintf("rejected %s (%s, security %v)", e.Rejection.MessageID, e.Rejection.Reason, e.Rejection.Security)
	}
	return e.Alert.String()
}

// busTap collects the byoc.state events the cloud's state watch (a rule on the vendor bus
// with a queue target, localcloud.WatchStateEvents) receives: what an alert consumer would
// receive. PutEvents delivers before it answers, so once stateingest (or statesweep) has
// finished, its events are here. It also counts stateingest's completed invocations, each
// of which logs one "state batch" line (logsSettled).
type busTap struct {
	mu      sync.Mutex
	seen    []busEvent
	batches int
}

func newBusTap(ctx context.Context, bus string) (*busTap, error) {
	tap := &busTap{}
	shared.mu.Lock()
	shared.observers[-1] = tap.observe // for the whole run
	shared.mu.Unlock()
	if err := shared.cloud.WatchStateEvents(ctx, bus); err != nil {
		return nil, err
	}
	return tap, nil
}

func (b *busTap) observe(e localcloud.Event) {
	switch {
	case e.Kind == localcloud.KindHealth:
		ev := busEvent{ID: e.EventID, DetailType: e.DetailType}
		if e.DetailType == contract.DetailTypeStateMessageRejected {
			_ = json.Unmarshal(e.Data, &ev.Rejection)
		} else {
			_ = json.Unmarshal(e.Data, &ev.Alert)
		}
		b.mu.Lock()
		b.seen = append(b.seen, ev)
		b.mu.Unlock()
	case e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionStateIngest && !e.Failed:
		b.mu.Lock()
		b.batches++
		b.mu.Unlock()
	}
}

// logsSettled waits until every stateingest invocation that finished has its batch line in
// the function logs (they travel through the process's output, a little behind).
func (s *stateEnv) logsSettled(t testing.TB) {
	t.Helper()
	until(t, 30*time.Second, "stateingest's batch lines to reach the logs", func() (bool, string) {
		s.tap.mu.Lock()
		want := s.tap.batches
		s.tap.mu.Unlock()
		got := strings.Count(shared.logs.since(0), `"msg":"state batch"`)
		return got >= want, fmt.Sprintf("%d lines for %d invocations", got, want)
	})
}

// all returns every byoc.state event delivered so far.
func (b *busTap) all(t testing.TB) []busEvent {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]busEvent(nil), b.seen...)
}

// events returns the byoc.state events about dep delivered so far (alerts naming it,
// rejections of messages claiming it).
func (b *busTap) events(t testing.TB, dep string) []busEvent {
	t.Helper()
	var out []busEvent
	for _, e := range b.all(t) {
		if e.Alert.DeploymentID == dep || e.Rejection.ClaimedDeploymentID == dep {
			out = append(out, e)
		}
	}
	return out
}

// rejections returns the rejection events of one message.
func (b *busTap) rejections(t testing.TB, messageID string) []busEvent {
	t.Helper()
	var out []busEvent
	for _, e := range b.all(t) {
		if e.DetailType == contract.DetailTypeStateMessageRejected && e.Rejection.MessageID == messageID {
			out = append(out, e)
		}
	}
	return out
}

// alerts are the health alerts among events.
func alerts(events []busEvent) []busEvent {
	var out []busEvent
	for _, e := range events {
		if e.DetailType != contract.DetailTypeStateMessageRejected {
			out = append(out, e)
		}
	}
	return out
}

// queueReader reads a queue to the end; what it read is deleted.
type queueReader struct {
	sqs *sqs.Client
	url string
}

func (q *queueReader) receive(t testing.TB, wait int32) []sqstypes.Message {
	t.Helper()
	out, err := q.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(q.url), MaxNumberOfMessages: 10,
		WaitTimeSeconds: wait, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.Messages {
		if _, err := q.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(q.url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	return out.Messages
}

// deadLetters waits (long polls) until the DLQ holds a message with each of bodies, and
// returns them in that order. Other tests' dead letters are kept for them.
func (s *stateEnv) deadLetters(t testing.TB, timeout time.Duration, bodies ...string) []sqstypes.Message {
	t.Helper()
	found := make([]sqstypes.Message, len(bodies))
	missing := len(bodies)
	deadline := time.Now().Add(timeout)
	for missing > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d messages are not in the state DLQ", timeout, missing, len(bodies))
		}
		for _, m := range s.dlqSeen(t) {
			for i, b := range bodies {
				if found[i].Body == nil && aws.ToString(m.Body) == b {
					found[i] = m
					missing--
				}
			}
		}
	}
	return found
}

var (
	dlqMu   sync.Mutex
	dlqSeen []sqstypes.Message
)

// dlqSeen long-polls the DLQ once and returns every dead letter read so far.
func (s *stateEnv) dlqSeen(t testing.TB) []sqstypes.Message {
	t.Helper()
	got := s.dlq.receive(t, 1)
	dlqMu.Lock()
	defer dlqMu.Unlock()
	dlqSeen = append(dlqSeen, got...)
	return append([]sqstypes.Message(nil), dlqSeen...)
}

// isAccessDenied reports whether err is AWS's refusal of an unauthorized call.
func isAccessDenied(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && strings.Contains(api.ErrorCode(), "AccessDenied")
}
