package channel

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

type fixture struct {
	env  *cloudtest.Env
	sqs  *sqs.Client
	repo *servicestate.Repo
	dep  string
}

const agent = "arn:aws:iam::111111111111:role/agent"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	f := &fixture{env: env, sqs: sqs.NewFromConfig(env.Config), repo: servicestate.New(env.DynamoDB(), table), dep: cloudtest.UniqueDeploymentID()}
	t.Cleanup(func() { _ = Close(context.Background(), f.sqs, f.dep) })
	return f
}

func (f *fixture) policy(t *testing.T, url string) string {
	t.Helper()
	out, err := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attributes["FifoQueue"] != "true" {
		t.Fatalf("queue attributes %v: not FIFO", out.Attributes)
	}
	return out.Attributes["Policy"]
}

func TestOpenCreatesAFifoQueueOnlyTheAgentReads(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(url, "byoc-commands-"+f.dep+".fifo") {
		t.Fatalf("url %s", url)
	}
	policy := f.policy(t, url)
	if !strings.Contains(policy, agent) || !strings.Contains(policy, "OnlyTheAgentReads") {
		t.Fatalf("policy %s", policy)
	}
	again, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil || again != url {
		t.Fatalf("reopen: %s %v", again, err)
	}
	// The agent role was replaced (stack update): the policy follows.
	newAgent := "arn:aws:iam::111111111111:role/agent-2"
	if _, err := Open(ctx, f.sqs, f.dep, newAgent); err != nil {
		t.Fatal(err)
	}
	if p := f.policy(t, url); !strings.Contains(p, newAgent) || strings.Contains(p, agent+`"`) {
		t.Fatalf("policy after the role changed: %s", p)
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := Open(ctx, f.sqs, f.dep, "arn:aws:iam::111111111111:user/bob"); err == nil || !strings.Contains(err.Error(), "agentRoleArn") {
		t.Fatalf("a user as agent: %v", err)
	}
	if _, err := Open(ctx, f.sqs, strings.Repeat("d", 62), agent); err == nil || !strings.Contains(err.Error(), "deploymentId") {
		t.Fatalf("a long deployment id: %v", err)
	}
	if _, err := queueURL(ctx, f.sqs, f.dep); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("refused opens created a queue: %v", err)
	}
}

func TestSendRecordsAndDeliversOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{SQS: f.sqs, Recorder: f.repo, Now: func() time.Time { return t0 }}
	c := Command{ID: "cmd-1", DeploymentID: f.dep, ServiceID: "svc-a", Kind: Scale, Params: map[string]string{"replicas": "5"}}
	rec, err := s.Send(ctx, c)
	if err != nil || rec.Status != servicestate.CommandSent {
		t.Fatalf("send: %+v %v", rec, err)
	}
	// A retried step sends the same command again: nothing new goes out.
	if rec, err := s.Send(ctx, c); err != nil || rec.Status != servicestate.CommandSent {
		t.Fatalf("resend: %+v %v", rec, err)
	}
	got, bad, err := Receive(ctx, f.sqs, url, 10, time.Second)
	if err != nil || len(bad) != 0 || len(got) != 1 {
		t.Fatalf("received %+v bad %v err %v", got, bad, err)
	}
	if cmd := got[0].Command; cmd.ID != "cmd-1" || cmd.Kind != Scale || cmd.Params["replicas"] != "5" || !cmd.IssuedAt.Equal(t0) {
		t.Fatalf("command %+v", cmd)
	}
	if err := Delete(ctx, f.sqs, url, got[0].ReceiptHandle); err != nil {
		t.Fatal(err)
	}
	if more, _, _ := Receive(ctx, f.sqs, url, 10, 0); len(more) != 0 {
		t.Fatalf("after delete: %+v", more)
	}
	stored, _ := f.repo.Command(ctx, f.dep, "cmd-1")
	if stored.Status != servicestate.CommandSent || stored.Kind != string(Scale) {
		t.Fatalf("record %+v", stored)
	}
}

func TestSendRefusesInvalidOrConflictingCommands(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{SQS: f.sqs, Recorder: f.repo}
	if _, err := s.Send(ctx, Command{ID: "cmd-1", DeploymentID: f.dep, Kind: Stop}); err == nil || !strings.Contains(err.Error(), "serviceId: required for stop") {
		t.Fatalf("invalid: %v", err)
	}
	if _, err := s.Send(ctx, Command{ID: "cmd-2", DeploymentID: f.dep, ServiceID: "a", Kind: Start}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, Command{ID: "cmd-2", DeploymentID: f.dep, ServiceID: "a", Kind: Stop}); !errors.Is(err, servicestate.ErrConflict) {
		t.Fatalf("reused id: %v", err)
	}
	got, _, err := Receive(ctx, f.sqs, url, 10, time.Second)
	if err != nil || len(got) != 1 || got[0].Command.Kind != Start {
		t.Fatalf("queue holds %+v %v, want only the valid start", got, err)
	}
	if _, err := f.repo.Command(ctx, f.dep, "cmd-1"); !servicestate.IsNotFound(err) {
		t.Fatalf("the invalid command was recorded: %v", err)
	}
}

func TestSendWithoutChannelRecordsNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := &Sender{SQS: f.sqs, Recorder: f.repo}
	c := Command{ID: "cmd-1", DeploymentID: f.dep, ServiceID: "a", Kind: Start}
	if _, err := s.Send(ctx, c); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("error %v", err)
	}
	if rec, err := f.repo.Command(ctx, f.dep, "cmd-1"); !servicestate.IsNotFound(err) {
		t.Fatalf("a command to a deployment without a channel was recorded: %+v %v", rec, err)
	}
	// Once the channel exists, the retried step sends it.
	url, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := s.Send(ctx, c); err != nil || rec.Status != servicestate.CommandSent {
		t.Fatalf("retry: %+v %v", rec, err)
	}
	if got, _, _ := Receive(ctx, f.sqs, url, 10, time.Second); len(got) != 1 {
		t.Fatalf("received %d commands", len(got))
	}
}

// A sender that cached a channel's URL before the channel was closed (teardown) does not
// fail with a plain error on the next command: it forgets the URL, ends the command as failed
// (no agent will ever receive it), says ErrNoChannel, and the next command is refused before
// anything is recorded.
func TestSendAfterTheChannelClosedIsNoChannel(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := Open(ctx, f.sqs, f.dep, agent); err != nil {
		t.Fatal(err)
	}
	s := &Sender{SQS: f.sqs, Recorder: f.repo}
	if _, err := s.Send(ctx, Command{ID: "cmd-1", DeploymentID: f.dep, ServiceID: "a", Kind: Start}); err != nil {
		t.Fatal(err)
	}
	if err := Close(ctx, f.sqs, f.dep); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(ctx, Command{ID: "cmd-2", DeploymentID: f.dep, ServiceID: "a", Kind: Stop})
	if !errors.Is(err, ErrNoChannel) {
		t.Fatalf("send on a closed channel through a cached URL: %v, want ErrNoChannel", err)
	}
	if rec, err := f.repo.Command(ctx, f.dep, "cmd-2"); err != nil || rec.Status != servicestate.CommandFailed {
		t.Fatalf("command sent to a closed channel: %+v %v, want it failed", rec, err)
	}
	if _, err := s.Send(ctx, Command{ID: "cmd-3", DeploymentID: f.dep, ServiceID: "a", Kind: Start}); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("the next send: %v, want ErrNoChannel", err)
	}
	if rec, err := f.repo.Command(ctx, f.dep, "cmd-3"); !servicestate.IsNotFound(err) {
		t.Fatalf("the next command was recorded: %+v %v", rec, err)
	}
}

func TestReceiveSetsAsideGarbage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	url, err := Open(ctx, f.sqs, f.dep, agent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("not a command"),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	good, bad, err := Receive(ctx, f.sqs, url, 10, time.Second)
	if err != nil || len(good) != 0 || len(bad) != 1 {
		t.Fatalf("good %v bad %v err %v", good, bad, err)
	}
}

func TestCloseDeletesTheQueue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := Open(ctx, f.sqs, f.dep, agent); err != nil {
		t.Fatal(err)
	}
	if err := Close(ctx, f.sqs, f.dep); err != nil {
		t.Fatal(err)
	}
	if _, err := queueURL(ctx, f.sqs, f.dep); !errors.Is(err, ErrNoChannel) {
		t.Fatalf("after close: %v", err)
	}
	if err := Close(ctx, f.sqs, f.dep); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestAdmitExportersWritesOnlyOnChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state"))})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(q.QueueUrl)
	planes := []servicestate.DataPlane{plane("depa", "111111111111")}
	changed, err := AdmitExporters(ctx, f.sqs, url, planes)
	if err != nil || !changed {
		t.Fatalf("first admit: %v %v", changed, err)
	}
	if changed, err := AdmitExporters(ctx, f.sqs, url, planes); err != nil || changed {
		t.Fatalf("unchanged admit wrote: %v %v", changed, err)
	}
	planes = append(planes, plane("depb", "222222222222"))
	if changed, err := AdmitExporters(ctx, f.sqs, url, planes); err != nil || !changed {
		t.Fatalf("new exporter: %v %v", changed, err)
	}
	out, _ := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"Policy"}})
	if p := out.Attributes["Policy"]; !strings.Contains(p, "depa-state-exporter") || !strings.Contains(p, "depb-state-exporter") {
		t.Fatalf("policy %s", p)
	}
}
