package datasim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/sqsgate"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

const customer = "111111111111"

type fixture struct {
	accounts *accounts.Accounts
	vendor   *sqs.Client // the control plane, through the front door
	kumo     *sqs.Client // straight to kumo: reads what was sent
	state    string
	dep      string
	exporter string // the deployment's exporter role, admitted to the state queue
	agent    string // its agent role, the only reader of its channel
	sender   *channel.Sender
	sim      *Simulator
	door     aws.Config // the front door, as the simulator's data planes reach it
}

func roles(dep string) (exporter, agent string) {
	return "arn:aws:iam::" + customer + ":role/" + dep + "-state-exporter", "arn:aws:iam::" + customer + ":role/" + dep + "-agent"
}

// newFixture serves kumo behind the local cloud's SQS front door (sender stamps, queue
// policies), with a state queue that admits the deployment's exporter and its command
// channel opened for its agent, as provisioning leaves them.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	ctx := context.Background()
	f := &fixture{accounts: accounts.New(), kumo: sqs.NewFromConfig(env.Config), dep: cloudtest.UniqueDeploymentID()}
	door, _, err := sqsgate.Door(env.Config, f.accounts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	f.door = aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1}
	vendorCfg := f.door.Copy()
	vendorCfg.Credentials = credentials.NewStaticCredentialsProvider("test", "test", "")
	f.vendor = sqs.NewFromConfig(vendorCfg)

	q, err := f.vendor.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state"))})
	if err != nil {
		t.Fatal(err)
	}
	f.state = aws.ToString(q.QueueUrl)
	f.exporter, f.agent = roles(f.dep)
	if _, err := channel.AdmitExporters(ctx, f.vendor, f.state, []servicestate.DataPlane{{ExporterRoleARN: f.exporter}}); err != nil {
		t.Fatal(err)
	}
	if _, err := channel.Open(ctx, f.vendor, f.dep, f.agent); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = channel.Close(context.Background(), f.vendor, f.dep) })
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	f.sim = New(f.config())
	f.sender = &channel.Sender{SQS: f.vendor, Recorder: servicestate.New(env.DynamoDB(), table)}
	return f
}

// config is the simulator's configuration in the local cloud: pod sessions from accounts.
func (f *fixture) config() Config {
	return Config{
		AWS: f.door, StateQueueURL: f.state, VendorAccount: accounts.VendorAccount,
		Credentials: func(roleArn, session string) (aws.Credentials, error) {
			return f.accounts.WorkloadCredentials(roleArn, session, time.Hour)
		},
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
}

func (f *fixture) add(t *testing.T, faults ...Fault) {
	t.Helper()
	err := f.sim.Add(Deployment{ID: f.dep, ExporterRoleARN: f.exporter, AgentRoleARN: f.agent, Faults: faults,
		Services: []Service{{ID: "svc-a"}, {ID: "svc-b", Replicas: 2, Versions: statemsg.Versions{ClickHouse: "24.3", Operator: "0.24", Kubernetes: "1.29"}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) step(t *testing.T) StepReport {
	t.Helper()
	r, err := f.sim.Step(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r[f.dep]
}

func (f *fixture) send(t *testing.T, c channel.Command) {
	t.Helper()
	c.DeploymentID = f.dep
	if c.ID == "" {
		c.ID = channel.NewID()
	}
	if _, err := f.sender.Send(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// received drains the state queue, checking that each message was stamped with the
// exporter role's session (the SenderId SQS would report).
func (f *fixture) received(t *testing.T) []statemsg.Message {
	t.Helper()
	return f.receivedFrom(t, accounts.RoleID(f.exporter)+":"+ExporterSession)
}

func (f *fixture) receivedFrom(t *testing.T, sender string) []statemsg.Message {
	t.Helper()
	var out []statemsg.Message
	for {
		r, err := f.kumo.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(f.state), MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Messages) == 0 {
			return out
		}
		for _, m := range r.Messages {
			if got := aws.ToString(m.MessageAttributes[contract.LocalSenderIDAttribute].StringValue); got != sender {
				t.Fatalf("sent by %q, want %q", got, sender)
			}
			msg, err := statemsg.Parse([]byte(aws.ToString(m.Body)), time.Now())
			if err != nil {
				t.Fatalf("the simulator sent an invalid message: %v", err)
			}
			out = append(out, msg)
			if _, err := f.kumo.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(f.state), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func byService(msgs []statemsg.Message) map[string]statemsg.Message {
	out := map[string]statemsg.Message{}
	for _, m := range msgs {
		out[m.ServiceID] = m
	}
	return out
}

func TestReportsEveryServiceHealthy(t *testing.T) {
	f := newFixture(t)
	f.add(t)
	if r := f.step(t); r.Sent != 2 || r.Commands != 0 {
		t.Fatalf("step %+v", r)
	}
	msgs := f.received(t)
	if len(msgs) != 2 || msgs[0].Sequence != 1 || msgs[1].Sequence != 2 || msgs[0].ExporterEpoch != msgs[1].ExporterEpoch {
		t.Fatalf("messages %+v", msgs)
	}
	a, b := byService(msgs)["svc-a"], byService(msgs)["svc-b"]
	if a.Status != statemsg.StatusHealthy || a.Replicas != (statemsg.Replicas{Ready: 3, Desired: 3}) || a.Versions != DefaultVersions ||
		a.Hostname != "svc-a."+f.dep+".byoc.local" || b.Versions.ClickHouse != "24.3" || b.Replicas.Desired != 2 {
		t.Fatalf("svc-a %+v svc-b %+v", a, b)
	}
	f.step(t)
	if again := f.received(t); len(again) != 2 || again[0].Sequence != 3 {
		t.Fatalf("second step %+v", again)
	}
}

func TestCommandsAreAppliedAndAcknowledged(t *testing.T) {
	f := newFixture(t)
	f.add(t)
	f.send(t, channel.Command{ID: "cmd-release", ServiceID: "svc-a", Kind: channel.ApplyRelease, Params: map[string]string{"clickhouseVersion": "25.1"}})
	f.send(t, channel.Command{ID: "cmd-scale", ServiceID: "svc-b", Kind: channel.Scale, Params: map[string]string{"replicas": "5"}})
	f.send(t, channel.Command{ID: "cmd-new", ServiceID: "svc-c", Kind: channel.ApplyRelease, Params: map[string]string{"clickhouseVersion": "25.1"}})
	f.send(t, channel.Command{ID: "cmd-ghost", ServiceID: "svc-x", Kind: channel.Stop})
	if r := f.step(t); r.Commands != 4 || r.Sent != 3 {
		t.Fatalf("step %+v: four handled (the ghost refused), three services reported", r)
	}
	got := byService(f.received(t))
	if a := got["svc-a"]; a.Versions.ClickHouse != "25.1" || len(a.Commands) != 2 ||
		a.Commands[0] != (statemsg.CommandAck{ID: "cmd-release", Status: statemsg.AckSucceeded}) ||
		a.Commands[1].ID != "cmd-ghost" || a.Commands[1].Status != statemsg.AckFailed {
		t.Fatalf("svc-a %+v", a)
	}
	if b := got["svc-b"]; b.Replicas != (statemsg.Replicas{Ready: 5, Desired: 5}) || len(b.Commands) != 1 || b.Commands[0].ID != "cmd-scale" {
		t.Fatalf("svc-b %+v", b)
	}
	if c, ok := got["svc-c"]; !ok || c.Versions.ClickHouse != "25.1" || c.Commands[0].ID != "cmd-new" {
		t.Fatalf("svc-c %+v", c)
	}
	// Acknowledgements are sent once.
	f.step(t)
	for _, m := range f.received(t) {
		if len(m.Commands) != 0 {
			t.Fatalf("acks repeated: %+v", m)
		}
	}
}

func TestStopStartAndDeploymentWideRelease(t *testing.T) {
	f := newFixture(t)
	f.add(t)
	f.send(t, channel.Command{ServiceID: "svc-b", Kind: channel.Stop})
	f.step(t)
	if b := byService(f.received(t))["svc-b"]; b.Status != statemsg.StatusStopped || b.Replicas != (statemsg.Replicas{}) {
		t.Fatalf("stopped %+v", b)
	}
	f.send(t, channel.Command{ServiceID: "svc-b", Kind: channel.Start})
	f.send(t, channel.Command{Kind: channel.ApplyRelease, Params: map[string]string{"operatorVersion": "0.26.0"}})
	f.step(t)
	got := byService(f.received(t))
	if b := got["svc-b"]; b.Status != statemsg.StatusHealthy || b.Replicas != (statemsg.Replicas{Ready: 2, Desired: 2}) || b.Versions.Operator != "0.26.0" {
		t.Fatalf("restarted %+v", b)
	}
	if a := got["svc-a"]; a.Versions.Operator != "0.26.0" || len(a.Commands) != 1 {
		t.Fatalf("svc-a %+v: the deployment-wide release is acknowledged once, on the first service", a)
	}
}

func TestACommandIsAppliedOncePerID(t *testing.T) {
	f := newFixture(t)
	f.add(t)
	body, err := channel.Encode(channel.Command{SchemaVersion: 1, ID: "cmd-1", DeploymentID: f.dep, ServiceID: "svc-a", Kind: channel.Scale,
		Params: map[string]string{"replicas": "4"}, IssuedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := channel.QueueName(f.dep)
	url, err := f.vendor.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, dedup := range []string{"a", "b"} { // two copies past SQS's deduplication
		if _, err := f.vendor.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: url.QueueUrl, MessageBody: aws.String(string(body)),
			MessageGroupId: aws.String("svc-a"), MessageDeduplicationId: aws.String(dedup)}); err != nil {
			t.Fatal(err)
		}
	}
	if r := f.step(t); r.Commands != 1 {
		t.Fatalf("applied %d", r.Commands)
	}
}

func TestDuplicateFaultSendsEveryMessageTwice(t *testing.T) {
	f := newFixture(t)
	f.add(t, Duplicate)
	if r := f.step(t); r.Sent != 4 {
		t.Fatalf("sent %d", r.Sent)
	}
	msgs := f.received(t)
	if len(msgs) != 4 || msgs[0].OrderKey() != msgs[1].OrderKey() || msgs[2].OrderKey() != msgs[3].OrderKey() {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestOutOfOrderFaultSwapsEachServicesPairs(t *testing.T) {
	f := newFixture(t)
	f.add(t, OutOfOrder)
	order := func() map[string][]int64 {
		out := map[string][]int64{}
		for _, m := range f.received(t) {
			out[m.ServiceID] = append(out[m.ServiceID], m.Sequence)
		}
		return out
	}
	if r := f.step(t); r.Sent != 0 {
		t.Fatalf("the first step sent %d: each service's first message waits for its successor", r.Sent)
	}
	f.step(t)
	got := order()
	if !slices.Equal(got["svc-a"], []int64{3, 1}) || !slices.Equal(got["svc-b"], []int64{4, 2}) {
		t.Fatalf("order %v, want svc-a 3 1 and svc-b 4 2", got)
	}
	// Clearing the fault releases a held message, in order.
	f.step(t) // 5 and 6 are held
	if err := f.sim.Clear(f.dep, OutOfOrder); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	got = order()
	if !slices.Equal(got["svc-a"], []int64{5, 7}) || !slices.Equal(got["svc-b"], []int64{6, 8}) {
		t.Fatalf("order after clearing %v", got)
	}
}

func TestSilenceSendsNothingButKeepsAcks(t *testing.T) {
	f := newFixture(t)
	f.add(t, Silence)
	f.send(t, channel.Command{ID: "cmd-1", ServiceID: "svc-a", Kind: channel.Backup})
	if r := f.step(t); r.Sent != 0 || r.Commands != 1 {
		t.Fatalf("step %+v", r)
	}
	if msgs := f.received(t); len(msgs) != 0 {
		t.Fatalf("a silent exporter sent %v", msgs)
	}
	if err := f.sim.Clear(f.dep, Silence); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	if a := byService(f.received(t))["svc-a"]; len(a.Commands) != 1 || a.Commands[0].ID != "cmd-1" {
		t.Fatalf("after silence %+v", a)
	}
}

func TestUnhealthyFaultAtAddBreaksAfterTheFirstReport(t *testing.T) {
	f := newFixture(t)
	f.add(t, Unhealthy)
	f.step(t)
	for _, m := range f.received(t) {
		if m.Status != statemsg.StatusHealthy {
			t.Fatalf("first report %+v", m)
		}
	}
	f.step(t)
	for _, m := range f.received(t) {
		if m.Status != statemsg.StatusUnhealthy || m.Replicas.Ready != 0 {
			t.Fatalf("second report %+v", m)
		}
	}
	if err := f.sim.Clear(f.dep, Unhealthy); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	for _, m := range f.received(t) {
		if m.Status != statemsg.StatusHealthy {
			t.Fatalf("after repair %+v", m)
		}
	}
}

func TestUnhealthyFaultBreaksOnlyWhatChanges(t *testing.T) {
	f := newFixture(t)
	f.add(t)
	f.step(t)
	f.received(t)
	if err := f.sim.Inject(f.dep, Unhealthy); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	for _, m := range f.received(t) {
		if m.Status != statemsg.StatusHealthy {
			t.Fatalf("no change yet, but %+v", m)
		}
	}
	f.send(t, channel.Command{ServiceID: "svc-a", Kind: channel.ApplyRelease, Params: map[string]string{"clickhouseVersion": "25.1"}})
	f.step(t)
	got := byService(f.received(t))
	if got["svc-a"].Status != statemsg.StatusUnhealthy || got["svc-a"].Versions.ClickHouse != "25.1" || got["svc-b"].Status != statemsg.StatusHealthy {
		t.Fatalf("after the change: %+v", got)
	}
}

func TestBadInputIsRefusedAndNothingIsSimulated(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		d    Deployment
		says string
	}{
		{Deployment{ID: "a b", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent}, "id must be"},
		{Deployment{ID: "dep", AgentRoleARN: f.agent}, `exporterRoleArn: must be an IAM role ARN, got ""`},
		{Deployment{ID: "dep", ExporterRoleARN: "arn:aws:iam::111111111111:user/x", AgentRoleARN: f.agent}, "exporterRoleArn: must be an IAM role ARN"},
		{Deployment{ID: "dep", ExporterRoleARN: f.exporter}, "agentRoleArn: must be an IAM role ARN"},
		{Deployment{ID: "dep", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent, Faults: []Fault{"flaky"}}, `unknown fault "flaky"`},
		{Deployment{ID: "dep", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent, Services: []Service{{ID: ""}}}, "service id"},
	}
	for _, c := range cases {
		if err := f.sim.Add(c.d); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want %q", c.d, err, c.says)
		}
	}
	// No way to obtain a session: refused at Add.
	noCreds := f.config()
	noCreds.Credentials = nil
	if err := New(noCreds).Add(Deployment{ID: "dep", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent}); err == nil || !strings.Contains(err.Error(), "Config.Credentials") {
		t.Errorf("without Credentials: %v", err)
	}
	failing := f.config()
	failing.Credentials = func(string, string) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no pod identity association")
	}
	if err := New(failing).Add(Deployment{ID: "dep", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent}); err == nil || !strings.Contains(err.Error(), "no pod identity association") {
		t.Errorf("failing Credentials: %v", err)
	}
	if r, _ := f.sim.Step(context.Background()); len(r) != 0 {
		t.Fatalf("refused deployments are simulated: %v", r)
	}
	if msgs := f.received(t); len(msgs) != 0 {
		t.Fatalf("refused deployments sent %v", msgs)
	}
	if err := f.sim.Inject("nobody", Silence); err == nil {
		t.Fatal("a fault was injected into an unknown deployment")
	}
	if _, err := ParseFault("unhealthy"); err != nil {
		t.Fatal(err)
	}
	noQueue := f.config()
	noQueue.StateQueueURL = ""
	sim := New(noQueue)
	if err := sim.Add(Deployment{ID: "dep", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent, Services: []Service{{ID: "s"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Step(context.Background()); err == nil || !strings.Contains(err.Error(), "no state queue") {
		t.Errorf("step without a state queue: %v", err)
	}
}

func TestDeploymentWithoutChannelStillReports(t *testing.T) {
	f := newFixture(t)
	if err := f.sim.Add(Deployment{ID: "nochannelyet", ExporterRoleARN: f.exporter, AgentRoleARN: f.agent, Services: []Service{{ID: "svc-a"}}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.sim.Step(context.Background())
	if err != nil || r["nochannelyet"].Sent != 1 {
		t.Fatalf("step %v %v", r, err)
	}
	f.sim.Remove("nochannelyet")
	if r, _ := f.sim.Step(context.Background()); len(r) != 0 {
		t.Fatalf("a removed deployment is simulated: %v", r)
	}
}

// A deployment whose exporter runs as another deployment's exporter role speaks with that
// role's identity: the front door stamps the session, whatever the message claims.
func TestAnotherDeploymentsExporterRoleSendsAsThatRole(t *testing.T) {
	f := newFixture(t)
	other, _ := roles(cloudtest.UniqueName("other"))
	if _, err := channel.AdmitExporters(context.Background(), f.vendor, f.state, []servicestate.DataPlane{{ExporterRoleARN: f.exporter}, {ExporterRoleARN: other}}); err != nil {
		t.Fatal(err)
	}
	if err := f.sim.Add(Deployment{ID: f.dep, ExporterRoleARN: other, AgentRoleARN: f.agent, Services: []Service{{ID: "svc-a"}}}); err != nil {
		t.Fatal(err)
	}
	f.step(t)
	msgs := f.receivedFrom(t, accounts.RoleID(other)+":"+ExporterSession)
	if len(msgs) != 1 || msgs[0].DeploymentID != f.dep {
		t.Fatalf("messages %+v", msgs)
	}
}

// The queues' policies hold for the simulated components as for real ones.
func TestQueuePoliciesRefuseRolesTheyDoNotAdmit(t *testing.T) {
	f := newFixture(t)
	stranger, strangerAgent := roles(cloudtest.UniqueName("stranger"))
	// An exporter the state queue does not admit.
	if err := f.sim.Add(Deployment{ID: f.dep, ExporterRoleARN: stranger, AgentRoleARN: f.agent, Services: []Service{{ID: "svc-a"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := f.sim.Step(context.Background())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" || !strings.Contains(err.Error(), "send state of svc-a") {
		t.Fatalf("step with an exporter not admitted: %v, want AccessDenied on send", err)
	}
	if msgs := f.received(t); len(msgs) != 0 {
		t.Fatalf("a refused exporter's messages arrived: %v", msgs)
	}
	// An agent that is not the channel's.
	f.send(t, channel.Command{ID: "cmd-1", ServiceID: "svc-a", Kind: channel.Backup})
	if err := f.sim.Add(Deployment{ID: f.dep, ExporterRoleARN: f.exporter, AgentRoleARN: strangerAgent, Services: []Service{{ID: "svc-a"}}}); err != nil {
		t.Fatal(err)
	}
	r, err := f.sim.Step(context.Background())
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" || r[f.dep].Commands != 0 {
		t.Fatalf("step with another agent role: %v %+v, want AccessDenied and nothing applied", err, r)
	}
	// The right agent still finds the command.
	f.add(t)
	if r := f.step(t); r.Commands != 1 {
		t.Fatalf("the channel's agent applied %d commands, want the one a refused agent could not take", r.Commands)
	}
}
