package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/servicestate"
)

// flakySQS is kumo's SQS with one-shot failures: a call fails when fail holds an error for
// "<operation> <queue name or URL>", before it reaches the queue. kumo cannot throttle.
type flakySQS struct {
	*sqs.Client
	mu   sync.Mutex
	fail map[string]error
}

func (s *flakySQS) failNext(op, target string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = map[string]error{}
	}
	s.fail[op+" "+target] = err
}

func (s *flakySQS) injected(op, target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.fail[op+" "+target]
	delete(s.fail, op+" "+target)
	return err
}

func (s *flakySQS) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, o ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	if err := s.injected("CreateQueue", aws.ToString(in.QueueName)); err != nil {
		return nil, err
	}
	return s.Client.CreateQueue(ctx, in, o...)
}

func (s *flakySQS) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, o ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if err := s.injected("GetQueueAttributes", aws.ToString(in.QueueUrl)); err != nil {
		return nil, err
	}
	return s.Client.GetQueueAttributes(ctx, in, o...)
}

func (s *flakySQS) SetQueueAttributes(ctx context.Context, in *sqs.SetQueueAttributesInput, o ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error) {
	if err := s.injected("SetQueueAttributes", aws.ToString(in.QueueUrl)); err != nil {
		return nil, err
	}
	return s.Client.SetQueueAttributes(ctx, in, o...)
}

var throttled = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}

// wantDataPlane is what the settled fake stack's outputs describe.
var wantDataPlane = servicestate.DataPlane{
	DeploymentID: deploymentID, AccountID: account,
	ExporterRoleARN: "arn:aws:iam::" + account + ":role/clickhouse-cloud-state-exporter",
	ExporterRoleID:  "AROA3XFRBF23STATEXPRT",
	AgentRoleARN:    "arn:aws:iam::" + account + ":role/clickhouse-cloud-agent",
}

var commandQueueName = func() string { name, _ := channel.QueueName(deploymentID); return name }()

func (f *fixture) dataPlane(t *testing.T) (servicestate.DataPlane, error) {
	t.Helper()
	d, err := f.h.State.DataPlane(ctx, deploymentID)
	d.UpdatedAt = d.UpdatedAt.UTC()
	return d, err
}

// queue returns a queue's ARN and policy, or ok=false when it does not exist.
func (f *fixture) queue(t *testing.T, name string) (arn, policy string, ok bool) {
	t.Helper()
	u, err := f.sqs.Client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", "", false
	}
	return f.queueAt(t, aws.ToString(u.QueueUrl))
}

func (f *fixture) queueAt(t *testing.T, url string) (arn, policy string, ok bool) {
	t.Helper()
	out, err := f.sqs.Client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{"All"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(url, ".fifo") && out.Attributes["FifoQueue"] != "true" {
		t.Fatalf("%s is not FIFO: %v", url, out.Attributes)
	}
	return out.Attributes["QueueArn"], out.Attributes["Policy"], true
}

// checkConnected asserts everything record promises the data plane: the registration, the
// command channel only the agent reads, and the state queue admitting the exporter.
func (f *fixture) checkConnected(t *testing.T) servicestate.DataPlane {
	t.Helper()
	dp, err := f.dataPlane(t)
	if err != nil {
		t.Fatalf("data plane: %v", err)
	}
	got := dp
	got.UpdatedAt = wantDataPlane.UpdatedAt
	if got != wantDataPlane {
		t.Fatalf("data plane\n got %+v\nwant %+v", got, wantDataPlane)
	}
	arn, policy, ok := f.queue(t, commandQueueName)
	if !ok {
		t.Fatalf("no command queue %s", commandQueueName)
	}
	if want, _ := channel.CommandQueuePolicy(arn, wantDataPlane.AgentRoleARN); policy != want {
		t.Fatalf("command queue policy\n got %s\nwant %s", policy, want)
	}
	arn, policy, _ = f.queueAt(t, f.h.Config.StateQueueURL)
	if want, _ := channel.StateQueuePolicy(arn, []servicestate.DataPlane{wantDataPlane}); policy != want {
		t.Fatalf("state queue policy\n got %s\nwant %s", policy, want)
	}
	return dp
}

func (f *fixture) commandQueues(t *testing.T) int {
	t.Helper()
	out, err := f.sqs.Client.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(strings.TrimSuffix(commandQueueName, ".fifo"))})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.QueueUrls)
}

func TestRecordConnectsTheDataPlaneBeforeReady(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "CREATE_COMPLETE")
	if out := must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id}); out.Status != "ready" {
		t.Fatalf("record = %+v", out)
	}
	dp := f.checkConnected(t)
	d := f.deployment(t)
	if d.Status != lifecycle.Ready || d.Outputs["StateExporterRoleId"] != wantDataPlane.ExporterRoleID {
		t.Fatalf("deployment %s %v", d.Status, d.Outputs)
	}
	// Ready, the deployment's windows begin: its schedule is armed for the next one.
	armed := d.Maintenance.Armed
	if armed == nil || (armed.Purpose != maintenance.PurposeNotice && armed.Purpose != maintenance.PurposeOpen) {
		t.Fatalf("maintenance not armed: %+v", d.Maintenance)
	}
	sch, err := f.schedules.Client.(*scheduler.Client).GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(deploymentID), GroupName: aws.String(f.schedules.Group)})
	if err != nil || aws.ToString(sch.ScheduleExpression) != "at("+armed.At.Format("2006-01-02T15:04:05")+")" || aws.ToString(sch.ScheduleExpressionTimezone) != "UTC" ||
		!strings.Contains(aws.ToString(sch.Target.Input), `"scheduledTime":"<aws.scheduler.scheduled-time>"`) && !strings.Contains(aws.ToString(sch.Target.Input), `"scheduledTime":"<aws.scheduler.scheduled-time>"`) {
		t.Fatalf("schedule %v, %v: %s %s %s", err, armed, aws.ToString(sch.ScheduleExpression), aws.ToString(sch.ScheduleExpressionTimezone), aws.ToString(sch.Target.Input))
	}
	// A retried invocation changes nothing: no write, no second queue.
	must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id})
	again := f.checkConnected(t)
	if f.deployment(t).Version != d.Version || !again.UpdatedAt.Equal(dp.UpdatedAt) || f.commandQueues(t) != 1 {
		t.Fatalf("a retried record wrote again: version %d→%d, data plane %s→%s, %d queues",
			d.Version, f.deployment(t).Version, dp.UpdatedAt, again.UpdatedAt, f.commandQueues(t))
	}
}

// A transient SQS error part-way fails the step as TransientError (the workflow retries it)
// with the deployment not ready; the retried step finishes the work without duplicating it.
func TestRecordRetriedAfterATransientSQSErrorFinishes(t *testing.T) {
	cases := []struct{ op, target string }{
		{"CreateQueue", commandQueueName},
		{"GetQueueAttributes", "state"},
		{"SetQueueAttributes", "state"},
	}
	for _, c := range cases {
		t.Run(c.op+" "+c.target, func(t *testing.T) {
			f := newFixture(t)
			s := f.createdAndSettled(t, "CREATE_COMPLETE")
			target := c.target
			if target == "state" {
				target = f.h.Config.StateQueueURL
			}
			f.sqs.failNext(c.op, target, throttled)
			before := f.deployment(t)
			_, err := step[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id})
			var transient *TransientError
			if !errors.As(err, &transient) || errorType(err) != "TransientError" || !errors.Is(err, throttled) {
				t.Fatalf("err = %v (%s), want TransientError", err, errorType(err))
			}
			if d := f.deployment(t); d.Status != lifecycle.Provisioning || d.Version != before.Version {
				t.Fatalf("deployment %s v%d after a failed record", d.Status, d.Version)
			}
			if _, err := f.dataPlane(t); err != nil {
				t.Fatalf("the data plane was registered before the failure: %v", err)
			}
			if out := must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id}); out.Status != "ready" {
				t.Fatalf("retried record = %+v", out)
			}
			f.checkConnected(t)
			if n := f.commandQueues(t); n != 1 {
				t.Fatalf("%d command queues", n)
			}
		})
	}
}

// An output the data plane needs is missing or malformed: the step fails naming it, nothing
// is registered or created, the deployment is not ready, and the fail step records why and
// makes no new attempt (the template, not the cloud, is wrong).
func TestRecordWithoutTheDataPlaneOutputsFails(t *testing.T) {
	cases := []struct{ output, value, want string }{
		{"StateExporterRoleArn", "", "no StateExporterRoleArn output"},
		{"StateExporterRoleId", "", "no StateExporterRoleId output"},
		{"AgentRoleArn", "", "no AgentRoleArn output"},
		{"StateExporterRoleId", "not-a-role-id", "exporterRoleId: must be an IAM role unique id"},
		{"AgentRoleArn", "arn:aws:iam::444455556666:role/agent", "agentRoleArn: must be a role of account " + account},
	}
	for _, c := range cases {
		t.Run(c.output+" "+c.value, func(t *testing.T) {
			f := newFixture(t)
			s := f.createdAndSettled(t, "CREATE_COMPLETE")
			if c.value == "" {
				delete(s.outputs, c.output)
			} else {
				s.outputs[c.output] = c.value
			}
			before := f.deployment(t)
			_, err := step[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id})
			if errorType(err) != "InvalidOutputs" || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v (%s), want InvalidOutputs naming %q", err, errorType(err), c.want)
			}
			if d := f.deployment(t); d.Status != lifecycle.Provisioning || d.Version != before.Version {
				t.Fatalf("deployment %s v%d", d.Status, d.Version)
			}
			if _, err := f.dataPlane(t); !errors.Is(err, servicestate.ErrNotFound) {
				t.Fatalf("data plane registered: %v", err)
			}
			if _, _, ok := f.queue(t, commandQueueName); ok {
				t.Fatal("a command queue was created")
			}
			if _, policy, _ := f.queueAt(t, f.h.Config.StateQueueURL); policy != "" {
				t.Fatalf("state queue policy written: %s", policy)
			}
			caught := lambdaCatch(err)
			failed := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
			d := f.deployment(t)
			if failed.Retry || d.Status != lifecycle.Failed || d.Failure == nil || d.Failure.Status != "InvalidOutputs" || !strings.Contains(d.Failure.Reason, c.want) {
				t.Fatalf("fail = %+v, deployment %s %+v", failed, d.Status, d.Failure)
			}
		})
	}
}

// Without a state queue URL the exporter is admitted by statesweep's next run.
func TestRecordWithoutAStateQueueLeavesAdmissionToTheSweep(t *testing.T) {
	f := newFixture(t)
	stateQueue := f.h.Config.StateQueueURL
	f.h.Config.StateQueueURL = ""
	s := f.createdAndSettled(t, "CREATE_COMPLETE")
	must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id})
	if _, err := f.dataPlane(t); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.queue(t, commandQueueName); !ok {
		t.Fatal("no command queue")
	}
	if _, policy, _ := f.queueAt(t, stateQueue); policy != "" {
		t.Fatalf("state queue policy written: %s", policy)
	}
}

func TestQueueDeletedRecentlyIsTransient(t *testing.T) {
	for _, err := range []error{
		&sqstypes.QueueDeletedRecently{Message: aws.String("wait 60 seconds")},
		&smithy.GenericAPIError{Code: "AWS.SimpleQueueService.QueueDeletedRecently"},
	} {
		if got := classify(err); errorType(got) != "TransientError" {
			t.Errorf("classify(%v) = %s", err, errorType(got))
		}
	}
}
