package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/dataplane"
	"github.com/byocloud/byoc/infra/local/sqsgate"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
)

// The loop on the local cloud: the data-plane simulator sends as its exporter role through
// the local cloud's SQS front door (which stamps the sender) to kumo's SQS (a state queue
// with a DLQ after two receives), a poller plays the Lambda event source, the handler
// writes to kumo's DynamoDB and puts alerts on kumo's EventBridge.
type loop struct {
	*fixture
	sqs   *sqs.Client
	queue string
	dlq   string
	sim   *dataplane.Simulator
	clock time.Time
}

const maxReceiveCount = 2

func newLoop(t *testing.T) *loop {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	client := sqs.NewFromConfig(f.env.Config)
	dlq, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state-dlq"))})
	if err != nil {
		t.Fatal(err)
	}
	dlqAttrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: dlq.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	redrive := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, dlqAttrs.Attributes["QueueArn"], maxReceiveCount)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state")),
		Attributes: map[string]string{"RedrivePolicy": redrive}})
	if err != nil {
		t.Fatal(err)
	}
	l := &loop{fixture: f, sqs: client, queue: aws.ToString(q.QueueUrl), dlq: aws.ToString(dlq.QueueUrl), clock: time.Now().UTC()}
	now := func() time.Time { return l.clock }
	f.repo.Now, f.h.Now = now, now
	// In the local cloud a role's id is accounts.RoleID(arn): the data planes are recorded
	// with it, and both exporters are admitted to the state queue.
	planes := []servicestate.DataPlane{sampleDeployment, otherDeployment}
	for i := range planes {
		planes[i].ExporterRoleID = accounts.RoleID(planes[i].ExporterRoleARN)
		if err := f.repo.RegisterDataPlane(ctx, planes[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := channel.AdmitExporters(ctx, client, l.queue, planes); err != nil {
		t.Fatal(err)
	}
	accts := accounts.New()
	door, _, err := sqsgate.Door(f.env.Config, accts, f.h.Log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	l.sim = dataplane.New(dataplane.Config{
		AWS: aws.Config{Region: cloudtest.Region, BaseEndpoint: aws.String(srv.URL)}, StateQueueURL: l.queue,
		VendorAccount: accounts.VendorAccount, Now: now, Log: f.h.Log,
		Credentials: func(roleArn, session string) (aws.Credentials, error) {
			return accts.WorkloadCredentials(roleArn, session, time.Hour)
		},
	})
	return l
}

// round runs the simulator once and delivers everything it sent; it returns how many
// messages the handler accepted.
func (l *loop) round(t *testing.T) int {
	t.Helper()
	if _, err := l.sim.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.clock = l.clock.Add(30 * time.Second)
	return drain(t, l.sqs, l.queue, l.h)
}

// add simulates the sample deployment, its exporter running as exporter's role.
func (l *loop) add(t *testing.T, exporter servicestate.DataPlane, faults ...dataplane.Fault) {
	t.Helper()
	err := l.sim.Add(dataplane.Deployment{ID: sampleDeployment.DeploymentID, ExporterRoleARN: exporter.ExporterRoleARN,
		AgentRoleARN: sampleDeployment.AgentRoleARN, Faults: faults, Services: []dataplane.Service{{ID: "svc-a"}, {ID: "svc-b"}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (l *loop) deploymentHealth(t *testing.T) health.Health {
	t.Helper()
	dh, err := l.repo.DeploymentHealth(context.Background(), sampleDeployment.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	return dh.Health
}

func (l *loop) alerts(t *testing.T) []servicestate.AlertDetail {
	t.Helper()
	var out []servicestate.AlertDetail
	for _, e := range l.events(t) {
		if e.DetailType == contract.DetailTypeStateMessageRejected {
			continue
		}
		var a servicestate.AlertDetail
		if err := json.Unmarshal([]byte(e.Detail), &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestLoopReportsANewDeploymentHealthy(t *testing.T) {
	l := newLoop(t)
	l.add(t, sampleDeployment)
	if n := l.round(t); n != 2 {
		t.Fatalf("accepted %d", n)
	}
	if h := l.deploymentHealth(t); h != health.Healthy {
		t.Fatalf("deployment %s", h)
	}
	hist, err := l.repo.History(context.Background(), sampleDeployment.DeploymentID, 10)
	if err != nil || len(hist) != 3 || hist[0].Scope != health.ScopeDeployment || hist[0].To != health.Healthy {
		t.Fatalf("timeline %v %v", hist, err)
	}
	// Steady rounds: no new alert.
	before := len(l.alerts(t))
	for range 3 {
		l.round(t)
	}
	if got := len(l.alerts(t)); got != before {
		t.Fatalf("steady state raised %d alerts", got-before)
	}
}

func TestLoopUnhealthyFaultRaisesACriticalAlert(t *testing.T) {
	l := newLoop(t)
	l.add(t, sampleDeployment, dataplane.Unhealthy)
	l.round(t)
	if h := l.deploymentHealth(t); h != health.Healthy {
		t.Fatalf("first report: %s", h)
	}
	l.round(t)
	if h := l.deploymentHealth(t); h != health.Unhealthy {
		t.Fatalf("after the fault: %s", h)
	}
	var critical []servicestate.AlertDetail
	for _, a := range l.alerts(t) {
		if a.Severity == health.SeverityCritical {
			critical = append(critical, a)
		}
	}
	// svc-a, svc-b, and the deployment once.
	if len(critical) != 3 {
		t.Fatalf("critical alerts %+v", critical)
	}
	l.round(t)
	l.round(t)
	if got := len(l.alerts(t)); got != 3+3 {
		t.Fatalf("%d alerts after more unhealthy rounds, want no more than the 6 transitions", got)
	}
}

func TestLoopDuplicatesAndOutOfOrderKeepTheNewest(t *testing.T) {
	l := newLoop(t)
	l.add(t, sampleDeployment, dataplane.Duplicate, dataplane.OutOfOrder)
	for range 4 {
		l.round(t)
	}
	svcs, err := l.repo.Services(context.Background(), sampleDeployment.DeploymentID)
	if err != nil || len(svcs) != 2 {
		t.Fatalf("services %v %v", svcs, err)
	}
	// Each service's reports arrive twice and in swapped pairs (svc-a: 3 3 1 1 7 7 5 5);
	// the newest sent to the queue wins: svc-a 7, svc-b 8 (5 and 6 were held back).
	for _, s := range svcs {
		want := map[string]string{"svc-a": "0000000000000007", "svc-b": "0000000000000008"}[s.ServiceID]
		if !strings.HasSuffix(s.OrderKey, want) {
			t.Fatalf("%s stored %s, want sequence %s", s.ServiceID, s.OrderKey, want)
		}
	}
	// Within a batch, copies run concurrently, so which copy counts as applied varies; over
	// the run, all sixteen messages are accounted for and none failed.
	total := batchTotals(t, l.logs.String())
	if total["messages"] != 16 || total["applied"]+total["duplicate"]+total["out-of-order"] != 16 ||
		total["duplicate"] == 0 || total["out-of-order"] == 0 || total["rejected"]+total["retry"] != 0 {
		t.Fatalf("batch totals %v", total)
	}
}

func TestLoopForgedSenderEndsInTheDLQUntouched(t *testing.T) {
	l := newLoop(t)
	l.add(t, otherDeployment) // dep-9c41's exporter speaking for dep-7f3a
	l.round(t)
	if keys := l.serviceKeys(t); len(keys) != 0 {
		t.Fatalf("forged reports wrote %v", keys)
	}
	// Both messages are in the DLQ, bodies as sent.
	out, err := l.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(l.dlq), MaxNumberOfMessages: 10,
		MessageAttributeNames: []string{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 2 {
		t.Fatalf("DLQ holds %d messages", len(out.Messages))
	}
	rej, err := l.repo.Rejections(context.Background(), l.clock)
	if err != nil || len(rej) != 2 {
		t.Fatalf("rejections %v %v: one record per message despite %d receives each", rej, err, maxReceiveCount)
	}
	var ids []string
	for _, m := range out.Messages {
		ids = append(ids, aws.ToString(m.MessageId))
		if !strings.Contains(aws.ToString(m.Body), `"deploymentId":"dep-7f3a"`) {
			t.Fatalf("DLQ body changed: %s", aws.ToString(m.Body))
		}
	}
	for _, r := range rej {
		if !slices.Contains(ids, r.MessageID) || r.Reason != "forged-sender" || !r.Security {
			t.Fatalf("rejection %+v", r)
		}
	}
	var security int
	for _, e := range l.events(t) {
		if e.DetailType == contract.DetailTypeStateMessageRejected {
			security++
		}
	}
	if security != 2 {
		t.Fatalf("%d security events, want one per message", security)
	}
}

func TestLoopSilenceMakesTheServicesStaleOnce(t *testing.T) {
	l := newLoop(t)
	ctx := context.Background()
	l.add(t, sampleDeployment)
	l.round(t)
	if err := l.sim.Inject(sampleDeployment.DeploymentID, dataplane.Silence); err != nil {
		t.Fatal(err)
	}
	sweep := func() int {
		cutoff := health.StaleCutoff(l.clock, health.DefaultStaleAfter)
		keys, err := l.repo.SilentServices(ctx, cutoff)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range keys {
			alerts, err := l.repo.MarkStale(ctx, k, cutoff)
			if err != nil {
				t.Fatal(err)
			}
			n += len(alerts)
			if err := l.repo.Deliver(ctx, l.h.Publisher, alerts); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}
	for range 4 { // two minutes of silence
		l.round(t)
	}
	if n := sweep(); n != 0 {
		t.Fatalf("%d stale alerts after two minutes", n)
	}
	for range 12 { // six more
		l.round(t)
	}
	if n := sweep(); n != 3 {
		t.Fatalf("%d stale alerts, want svc-a, svc-b and the deployment", n)
	}
	if h := l.deploymentHealth(t); h != health.Stale {
		t.Fatalf("deployment %s", h)
	}
	l.round(t)
	if n := sweep(); n != 0 {
		t.Fatalf("a second sweep raised %d alerts", n)
	}
	// The exporter speaks again: the deployment recovers.
	if err := l.sim.Clear(sampleDeployment.DeploymentID, dataplane.Silence); err != nil {
		t.Fatal(err)
	}
	l.round(t)
	if h := l.deploymentHealth(t); h != health.Healthy {
		t.Fatalf("after silence: %s", h)
	}
}

func TestLoopCommandIsAcknowledgedAndResumesTheWait(t *testing.T) {
	l := newLoop(t)
	ctx := context.Background()
	dep := sampleDeployment.DeploymentID
	if _, err := channel.Open(ctx, l.sqs, dep, sampleDeployment.AgentRoleARN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = channel.Close(context.Background(), l.sqs, dep) })
	l.add(t, sampleDeployment)
	l.round(t)

	sender := &channel.Sender{SQS: l.sqs, Recorder: l.repo}
	cmd := channel.Command{ID: "cmd-upgrade-1", DeploymentID: dep, ServiceID: "svc-a", Kind: channel.ApplyRelease,
		Params: map[string]string{"clickhouseVersion": "25.1.3"}}
	if _, err := sender.Send(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	exec, token := l.env.Activity(t)
	if _, err := l.repo.RegisterWaiter(ctx, dep, servicestate.Condition{ServiceID: "svc-a", CommandID: cmd.ID, Health: health.Healthy, ClickHouseVersion: "25.1.3"}, token, time.Hour); err != nil {
		t.Fatal(err)
	}
	l.round(t)
	if rec, _ := l.repo.Command(ctx, dep, cmd.ID); rec.Status != servicestate.CommandSucceeded {
		t.Fatalf("command %s", rec.Status)
	}
	if out := l.env.WaitExecution(t, exec); out.Status != "SUCCEEDED" {
		t.Fatalf("execution %s", out.Status)
	}
}

// batchTotals sums the counters of every "state batch" log line.
func batchTotals(t *testing.T, logs string) map[string]int {
	t.Helper()
	total := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"msg":"state batch"`) {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"messages", "applied", "duplicate", "out-of-order", "rejected", "retry"} {
			n, _ := fields[k].(float64)
			total[k] += int(n)
		}
	}
	return total
}
