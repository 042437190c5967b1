package schedules

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	schtypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/eventsources/clock"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

type fixture struct {
	env    *cloudtest.Env
	cfg    aws.Config // through a front door validating schedule writes
	store  *scheduler.Client
	sqs    *sqs.Client
	clock  *clock.Manual
	firer  *Firer
	mu     sync.Mutex
	firing []Firing
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureAt(t, time.Now())
}

// newFixtureAt runs the firer on a manual clock stopped at start, which may be far from
// the machine's clock that the store stamps schedules with.
func newFixtureAt(t *testing.T, start time.Time) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	proxy, err := frontdoor.Proxy(env.URL)
	if err != nil {
		t.Fatal(err)
	}
	door := frontdoor.New(proxy)
	door.HandleIf("scheduler", IsScheduleWrite, Validate(proxy))
	srv := httptest.NewServer(door)
	t.Cleanup(srv.Close)
	cfg := env.Config
	cfg.BaseEndpoint = aws.String(srv.URL)
	f := &fixture{env: env, cfg: cfg, store: scheduler.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), clock: clock.NewManual(start)}
	f.firer = New(Config{AWS: cfg, Clock: f.clock, Sync: 20 * time.Millisecond, Observer: func(fr Firing) {
		f.mu.Lock()
		f.firing = append(f.firing, fr)
		f.mu.Unlock()
	}})
	f.firer.Start()
	t.Cleanup(f.firer.Close)
	return f
}

func (f *fixture) queue(t *testing.T) (string, string) {
	t.Helper()
	out, err := f.sqs.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("q"))})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{"QueueArn"}})
	return *out.QueueUrl, a.Attributes["QueueArn"]
}

func (f *fixture) schedule(t *testing.T, expr, zone, targetArn, input string, mod func(*scheduler.CreateScheduleInput)) string {
	t.Helper()
	name := cloudtest.UniqueName("sched")
	in := &scheduler.CreateScheduleInput{
		Name: aws.String(name), ScheduleExpression: aws.String(expr),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target:             &schtypes.Target{Arn: aws.String(targetArn), RoleArn: aws.String("arn:aws:iam::000000000000:role/scheduler"), Input: aws.String(input)},
	}
	if zone != "" {
		in.ScheduleExpressionTimezone = aws.String(zone)
	}
	if mod != nil {
		mod(in)
	}
	if _, err := f.store.CreateSchedule(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	// kumo's store outlives the test: remove the schedule so no later firer runs it.
	t.Cleanup(func() {
		_, _ = f.store.DeleteSchedule(context.Background(), &scheduler.DeleteScheduleInput{Name: aws.String(name)})
	})
	if err := f.firer.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return name
}

func (f *fixture) receive(t *testing.T, url string, want int) []string {
	t.Helper()
	var bodies []string
	deadline := time.Now().Add(30 * time.Second)
	for len(bodies) < want && time.Now().Before(deadline) {
		out, err := f.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 0,
			MessageAttributeNames: []string{"All"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			bodies = append(bodies, *m.Body)
			for k, v := range m.MessageAttributes {
				bodies = append(bodies, k+"="+aws.ToString(v.StringValue))
			}
			_, _ = f.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
		time.Sleep(10 * time.Millisecond)
	}
	return bodies
}

func TestCronScheduleFiresAtItsLocalTimeWithContextAttributes(t *testing.T) {
	f := newFixture(t)
	url, arn := f.queue(t)
	name := f.schedule(t, "cron(0 9 * * ? *)", "Asia/Tokyo", arn,
		`{"arn":"<aws.scheduler.schedule-arn>","at":"<aws.scheduler.scheduled-time>","id":"<aws.scheduler.execution-id>","try":<aws.scheduler.attempt-number>}`, nil)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	next, ok := f.firer.Next("default", name)
	if !ok || next.In(tokyo).Hour() != 9 || next.In(tokyo).Minute() != 0 || !next.After(f.clock.Now()) || next.Sub(f.clock.Now()) > 24*time.Hour {
		t.Fatalf("next occurrence %s (%v), want the coming 09:00 in Tokyo", next.In(tokyo), ok)
	}
	if got := f.receive(t, url, 0); len(got) != 0 {
		t.Fatalf("fired before its time: %q", got)
	}
	f.clock.Set(next)
	got := f.receive(t, url, 1)
	if len(got) != 1 {
		t.Fatalf("received %q, want one firing", got)
	}
	re := regexp.MustCompile(`^\{"arn":"arn:aws:scheduler:[^"]+:schedule/default/` + name + `","at":"` + regexp.QuoteMeta(next.UTC().Format(time.RFC3339)) + `","id":"[0-9a-f-]{36}","try":1\}$`)
	if !re.MatchString(got[0]) {
		t.Errorf("input %s: context attributes not substituted as expected", got[0])
	}
	after, _ := f.firer.Next("default", name)
	if after.Sub(next) != 24*time.Hour {
		t.Errorf("after firing, next = %s; want the following day", after)
	}
}

func TestAtScheduleFiresOnceAndDeletesItself(t *testing.T) {
	f := newFixture(t)
	url, arn := f.queue(t)
	when := f.clock.Now().Add(2 * time.Hour).UTC()
	name := f.schedule(t, "at("+when.Format("2006-01-02T15:04:05")+")", "", arn, `{"once":true}`, func(in *scheduler.CreateScheduleInput) {
		in.ActionAfterCompletion = schtypes.ActionAfterCompletionDelete
	})
	f.clock.Advance(3 * time.Hour)
	if got := f.receive(t, url, 1); len(got) != 1 || got[0] != `{"once":true}` {
		t.Fatalf("received %q", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := f.store.GetSchedule(context.Background(), &scheduler.GetScheduleInput{Name: aws.String(name)})
		var nf *schtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the completed at() schedule was not deleted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.clock.Advance(24 * time.Hour)
	if got := f.receive(t, url, 0); len(got) != 0 {
		t.Errorf("an at() schedule fired again: %q", got)
	}
}

func TestRateStartsAtCreationAndDisabledNeverFires(t *testing.T) {
	f := newFixture(t)
	url, arn := f.queue(t)
	f.schedule(t, "rate(5 minutes)", "", arn, `"tick"`, nil)
	if got := f.receive(t, url, 1); len(got) != 1 {
		t.Fatalf("a rate schedule without StartDate must fire at once, got %q", got)
	}
	f.clock.Advance(5 * time.Minute)
	if got := f.receive(t, url, 1); len(got) != 1 {
		t.Fatalf("five minutes later: %q", got)
	}
	offURL, offArn := f.queue(t)
	f.schedule(t, "rate(1 minute)", "", offArn, `"off"`, func(in *scheduler.CreateScheduleInput) { in.State = schtypes.ScheduleStateDisabled })
	f.clock.Advance(10 * time.Minute)
	if got := f.receive(t, offURL, 0); len(got) != 0 {
		t.Errorf("a disabled schedule fired: %q", got)
	}
}

// The store's CreationDate is wall-clock time, the firer's clock is the cloud's: a new
// rate schedule starts now in the cloud's time whichever way the two differ, so a clock
// behind the machine's still fires it at once, and one ahead does not replay the hour.
func TestRateStartsAtCreationOnTheCloudsClock(t *testing.T) {
	for _, offset := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(offset.String(), func(t *testing.T) {
			f := newFixtureAt(t, time.Now().Add(offset))
			url, arn := f.queue(t)
			name := f.schedule(t, "rate(5 minutes)", "", arn, `"tick"`, nil)
			if got := f.receive(t, url, 1); len(got) != 1 {
				t.Fatalf("first firing: got %q, want exactly one", got)
			}
			// Give a replaying firer time to fire what it would: nothing more may come.
			time.Sleep(100 * time.Millisecond)
			f.mu.Lock()
			fired := len(f.firing)
			f.mu.Unlock()
			if fired != 1 {
				t.Fatalf("%d firings, want 1: past occurrences were replayed", fired)
			}
			next, ok := f.firer.Next("default", name)
			if ahead := next.Sub(f.clock.Now()); !ok || ahead <= 3*time.Minute || ahead > 5*time.Minute {
				t.Errorf("next occurrence %s is %s ahead of the cloud's clock; want about 5m", next, ahead)
			}
		})
	}
}

func TestFireNowAndStepFunctionsTarget(t *testing.T) {
	f := newFixture(t)
	sfc := sfn.NewFromConfig(f.env.Config)
	sm, err := sfc.CreateStateMachine(context.Background(), &sfn.CreateStateMachineInput{
		Name: aws.String(cloudtest.UniqueName("sm")), RoleArn: aws.String("arn:aws:iam::000000000000:role/r"),
		Definition: aws.String(`{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	name := f.schedule(t, "cron(0 3 1 1 ? 2199)", "", aws.ToString(sm.StateMachineArn), `{"window":"<aws.scheduler.execution-id>"}`, nil)
	fired, err := f.firer.FireNow(context.Background(), "", name)
	if err != nil {
		t.Fatal(err)
	}
	execs, err := sfc.ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: sm.StateMachineArn})
	if err != nil || len(execs.Executions) != 1 {
		t.Fatalf("executions %v, %v; want one", execs, err)
	}
	d, _ := sfc.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: execs.Executions[0].ExecutionArn})
	if aws.ToString(d.Input) != `{"window":"`+fired.ExecutionID+`"}` {
		t.Errorf("execution input %s, firing %+v", aws.ToString(d.Input), fired)
	}
	if _, err := f.firer.FireNow(context.Background(), "default", "no-such-schedule"); err == nil || !strings.Contains(err.Error(), "fire schedule default/no-such-schedule") {
		t.Errorf("FireNow of a missing schedule: %v", err)
	}
}

func TestFailingTargetIsRetriedThenDeadLettered(t *testing.T) {
	f := newFixture(t)
	dlqURL, dlqArn := f.queue(t)
	name := f.schedule(t, "cron(0 0 1 1 ? 2199)", "", "arn:aws:sqs:us-east-1:000000000000:missing-queue", `{"n":1}`, func(in *scheduler.CreateScheduleInput) {
		in.Target.DeadLetterConfig = &schtypes.DeadLetterConfig{Arn: aws.String(dlqArn)}
	})
	fired, err := f.firer.FireNow(context.Background(), "default", name)
	if err == nil || fired.Attempt != 3 {
		t.Fatalf("firing %+v, error %v: want the third attempt to fail too", fired, err)
	}
	f.mu.Lock()
	attempts := 0
	for _, fr := range f.firing {
		if fr.Name == name {
			attempts++
		}
	}
	f.mu.Unlock()
	if attempts != 3 {
		t.Errorf("observed %d attempts, want 3 (one try and two retries)", attempts)
	}
	got := f.receive(t, dlqURL, 1)
	joined := strings.Join(got, "\n")
	if !strings.Contains(joined, `{"n":1}`) || !strings.Contains(joined, "TARGET_ARN=arn:aws:sqs:us-east-1:000000000000:missing-queue") || !strings.Contains(joined, "ERROR_MESSAGE=") {
		t.Errorf("dead-letter queue received %q", got)
	}
}

func TestInvalidSchedulesAreRefusedAndNotStored(t *testing.T) {
	f := newFixture(t)
	_, arn := f.queue(t)
	for _, c := range []struct{ expr, zone, want string }{
		{"cron(99 99 * * * *)", "", `Invalid Schedule Expression: ScheduleExpression "cron(99 99 * * * *)": minutes "99": values must be 0 to 59`},
		{"rate(5 minutes)", "Mars/Olympus", `ScheduleExpressionTimezone "Mars/Olympus": must be an IANA time zone name`},
	} {
		name := cloudtest.UniqueName("bad")
		_, err := f.store.CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{
			Name: aws.String(name), ScheduleExpression: aws.String(c.expr), ScheduleExpressionTimezone: aws.String(c.zone),
			FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
			Target:             &schtypes.Target{Arn: aws.String(arn), RoleArn: aws.String("arn:aws:iam::000000000000:role/r")},
		})
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" || !strings.Contains(apiErr.ErrorMessage(), c.want) {
			t.Errorf("CreateSchedule(%s, %s) error = %v, want ValidationException %q", c.expr, c.zone, err, c.want)
		}
		if _, err := f.store.GetSchedule(context.Background(), &scheduler.GetScheduleInput{Name: aws.String(name)}); err == nil {
			t.Errorf("the refused schedule %s was stored", name)
		}
	}
	// Fields the SDK itself requires are checked too, for clients that do not.
	reached := false
	h := Validate(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	for body, want := range map[string]string{
		`{"ScheduleExpression":"rate(1 day)","Target":{"Arn":"a","RoleArn":"r"}}`:                                                  "FlexibleTimeWindow is required",
		`{"ScheduleExpression":"rate(1 day)","FlexibleTimeWindow":{"Mode":"SOMETIMES"},"Target":{"Arn":"a","RoleArn":"r"}}`:        "FlexibleTimeWindow.Mode must be OFF or FLEXIBLE",
		`{"ScheduleExpression":"rate(1 day)","FlexibleTimeWindow":{"Mode":"FLEXIBLE"},"Target":{"Arn":"a","RoleArn":"r"}}`:         "MaximumWindowInMinutes must be 1 to 1440",
		`{"ScheduleExpression":"rate(1 day)","FlexibleTimeWindow":{"Mode":"OFF"}}`:                                                 "Target.Arn and Target.RoleArn are required",
		`{"FlexibleTimeWindow":{"Mode":"OFF"},"Target":{"Arn":"a","RoleArn":"r"}}`:                                                 "ScheduleExpression is required",
		`{"ScheduleExpression":"rate(1 day)","FlexibleTimeWindow":{"Mode":"OFF"},"Target":{"Arn":"a","RoleArn":"r"},"State":"ON"}`: "State must be ENABLED or DISABLED",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/schedules/x", strings.NewReader(body)))
		if rec.Code != http.StatusBadRequest || rec.Header().Get("X-Amzn-Errortype") != "ValidationException" || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: %d %s, want ValidationException %q", body, rec.Code, rec.Body.String(), want)
		}
	}
	if reached {
		t.Error("an invalid schedule reached the store")
	}
}

// A one-time schedule created just before the clock jumps past its time fires once the hold
// is released: the hold reads the store first, so the schedule is known with its occurrence
// before the jump (read after it, it was anchored past its own time and never fired, which
// made the security-fix scenario wait for a firing that could not come).
func TestAtScheduleCreatedJustBeforeAJumpFires(t *testing.T) {
	f := newFixture(t)
	url, arn := f.queue(t)
	name := cloudtest.UniqueName("sched")
	when := f.clock.Now().Add(time.Hour).UTC()
	if _, err := f.store.CreateSchedule(context.Background(), &scheduler.CreateScheduleInput{
		Name: aws.String(name), ScheduleExpression: aws.String("at(" + when.Format("2006-01-02T15:04:05") + ")"),
		FlexibleTimeWindow: &schtypes.FlexibleTimeWindow{Mode: schtypes.FlexibleTimeWindowModeOff},
		Target:             &schtypes.Target{Arn: aws.String(arn), RoleArn: aws.String("arn:aws:iam::000000000000:role/scheduler"), Input: aws.String(`"armed"`)},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = f.store.DeleteSchedule(context.Background(), &scheduler.DeleteScheduleInput{Name: aws.String(name)})
	})
	release := f.firer.Hold()
	f.clock.Advance(2 * time.Hour)
	release()
	if got := f.receive(t, url, 1); len(got) != 1 || got[0] != `"armed"` {
		t.Fatalf("received %q, want the one firing", got)
	}
}
