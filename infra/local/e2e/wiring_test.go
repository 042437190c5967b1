package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
)

// queue creates a queue at the front door and returns its URL and ARN.
func queue(t *testing.T, name string) (string, string) {
	t.Helper()
	c := sqs.NewFromConfig(shared.cloud.Config())
	out, err := c.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name + "-" + scenario.RandomAccount())})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	if err != nil {
		t.Fatal(err)
	}
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

// A schedule created through the cloud's Scheduler API fires on the cloud's clock, and one
// that could never fire is refused at the door.
func TestSchedulesCreatedAtTheDoorFire(t *testing.T) {
	ctx := context.Background()
	url, arn := queue(t, "schedule-target")
	sched := scheduler.NewFromConfig(shared.cloud.Config())
	name := "e2e-" + scenario.RandomAccount()
	_, err := sched.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name: aws.String(name), ScheduleExpression: aws.String("rate(1 hour)"),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target: &schtypes.Target{Arn: aws.String(arn), RoleArn: aws.String("arn:aws:iam::000000000000:role/scheduler"),
			Input: aws.String(`{"schedule":"<aws.scheduler.schedule-arn>"}`)},
		ActionAfterCompletion: schtypes.ActionAfterCompletionNone,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sched.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(name)}) })
	// A rate schedule without a start date fires at once.
	c := sqs.NewFromConfig(shared.cloud.Config())
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 1 {
			if body := aws.ToString(out.Messages[0].Body); !strings.Contains(body, ":schedule/default/"+name) {
				t.Errorf("the target received %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the schedule did not fire")
		}
	}

	_, err = sched.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name: aws.String(name + "-bad"), ScheduleExpression: aws.String("cron(0 9 * * * *)"),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target:             &schtypes.Target{Arn: aws.String(arn), RoleArn: aws.String("arn:aws:iam::000000000000:role/scheduler")},
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" || !strings.Contains(apiErr.ErrorMessage(), "exactly one of day-of-month and day-of-week must be ?") {
		t.Errorf("an invalid cron: %v", err)
	}
	if _, err := sched.GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(name + "-bad")}); err == nil {
		t.Error("the refused schedule was stored")
	}
}

// Event source mappings go to the local cloud's own implementation, which keeps what kumo
// drops (FunctionResponseTypes) and polls.
func TestEventSourceMappingsAreServedByTheCloud(t *testing.T) {
	ctx := context.Background()
	_, arn := queue(t, "mapped")
	fn, ok := shared.cloud.FunctionName(contract.FunctionStackEvents)
	if !ok {
		t.Fatal("stackevents is not running")
	}
	lc := lambda.NewFromConfig(shared.cloud.Config())
	out, err := lc.CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{
		FunctionName: aws.String(fn), EventSourceArn: aws.String(arn), Enabled: aws.Bool(false),
		FunctionResponseTypes: []ltypes.FunctionResponseType{ltypes.FunctionResponseTypeReportBatchItemFailures},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = lc.DeleteEventSourceMapping(ctx, &lambda.DeleteEventSourceMappingInput{UUID: out.UUID}) })
	got, err := lc.GetEventSourceMapping(ctx, &lambda.GetEventSourceMappingInput{UUID: out.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.State) != "Disabled" || len(got.FunctionResponseTypes) != 1 || got.FunctionResponseTypes[0] != ltypes.FunctionResponseTypeReportBatchItemFailures {
		t.Errorf("mapping %+v: want it disabled with ReportBatchItemFailures kept", got)
	}
}

// The cloud's controls fire a schedule now and deliver an event again, over plain HTTP.
func TestLocalControls(t *testing.T) {
	ctx := context.Background()
	url, arn := queue(t, "controls")
	sched := scheduler.NewFromConfig(shared.cloud.Config())
	name := "e2e-far-" + scenario.RandomAccount()
	if _, err := sched.CreateSchedule(ctx, &scheduler.CreateScheduleInput{
		Name: aws.String(name), ScheduleExpression: aws.String("cron(0 0 1 1 ? 2199)"),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target:             &schtypes.Target{Arn: aws.String(arn), RoleArn: aws.String("arn:aws:iam::000000000000:role/scheduler"), Input: aws.String(`"now"`)},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sched.DeleteSchedule(ctx, &scheduler.DeleteScheduleInput{Name: aws.String(name)}) })
	post := func(path string) (int, string) {
		resp, err := http.Post(shared.cloud.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/_byoc/schedules/default/" + name + "/fire"); code != 200 || !strings.Contains(body, `"attempt":1`) {
		t.Fatalf("fire: %d %s", code, body)
	}
	out, err := sqs.NewFromConfig(shared.cloud.Config()).ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), WaitTimeSeconds: 2})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != `"now"` {
		t.Errorf("the fired schedule's target received %+v (%v)", out, err)
	}
	if code, body := post("/_byoc/schedules/default/no-such-schedule/fire"); code != http.StatusNotFound || !strings.Contains(body, "no-such-schedule") {
		t.Errorf("fire of a missing schedule: %d %s", code, body)
	}
	if code, body := post("/_byoc/events/no-such-event/redeliver"); code != http.StatusNotFound || !strings.Contains(body, "no recent event") {
		t.Errorf("redeliver of an unknown event: %d %s", code, body)
	}
}
