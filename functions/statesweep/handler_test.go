package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

type fixture struct {
	env  *cloudtest.Env
	repo *servicestate.Repo
	now  time.Time
	bus  string
	sqs  *sqs.Client
	url  string
	h    *Handler

	deployments *store.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	ctx := context.Background()
	table := env.CreateTable(t, store.TableDefinition("x"), servicestate.TTLAttribute)
	f := &fixture{env: env, now: t0, sqs: sqs.NewFromConfig(env.Config)}
	f.repo = servicestate.New(env.DynamoDB(), table)
	f.repo.Now = func() time.Time { return f.now }
	f.deployments = store.New(env.DynamoDB(), table)
	f.deployments.Now = func() time.Time { return f.now }
	f.bus = cloudtest.UniqueName("bus")
	eb := env.EventBridge()
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(f.bus)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("s"), EventBusName: aws.String(f.bus), EventPattern: aws.String(`{"source":["byoc.state"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("s"), EventBusName: aws.String(f.bus),
		Targets: []ebtypes.Target{{Id: aws.String("t"), Arn: aws.String("arn:aws:sns:us-east-1:000000000000:alerts")}}}); err != nil {
		t.Fatal(err)
	}
	q, err := f.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(cloudtest.UniqueName("state"))})
	if err != nil {
		t.Fatal(err)
	}
	f.url = aws.ToString(q.QueueUrl)
	f.h = &Handler{
		Repo: f.repo, Publisher: servicestate.Publisher{Bus: eb, BusName: f.bus},
		SQS: f.sqs, StateQueueURL: f.url, StaleAfter: 5 * time.Minute, Deployments: f.deployments, Executions: env.StepFunctions(),
		Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	return f
}

func (f *fixture) report(t *testing.T, svc string, seq int64) servicestate.Result {
	t.Helper()
	m := statemsg.Message{
		SchemaVersion: 1, DeploymentID: "dep1", ServiceID: svc, Hostname: svc + ".example.com",
		ObservedAt: f.now, ExporterEpoch: 1, Sequence: seq, Status: statemsg.StatusHealthy,
		Versions: statemsg.Versions{ClickHouse: "24.8", Operator: "0.25", Kubernetes: "1.30"},
		Replicas: statemsg.Replicas{Ready: 1, Desired: 1},
	}
	res, err := f.repo.Apply(context.Background(), m, "m")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *fixture) detailTypes(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get(f.env.URL + "/kumo/eventbridge/delivered-events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []struct{ DetailType, Detail, EventBusName string }
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range all {
		if e.EventBusName == f.bus {
			out = append(out, e.DetailType+" "+e.Detail)
		}
	}
	return out
}

func (f *fixture) sweep(t *testing.T) Summary {
	t.Helper()
	sum, err := f.h.Handle(context.Background(), Event{})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestSilentServiceRaisesOneStaleAlert(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, svc := range []string{"svc-a", "svc-b"} {
		if err := f.repo.Deliver(ctx, f.h.Publisher, f.report(t, svc, 1).Alerts); err != nil {
			t.Fatal(err)
		}
	}
	published := len(f.detailTypes(t))
	f.now = t0.Add(4 * time.Minute)
	f.report(t, "svc-b", 2) // svc-b keeps reporting, svc-a falls silent
	f.now = t0.Add(7 * time.Minute)
	sum := f.sweep(t)
	if sum.Stale != 1 || sum.Alerts != 2 {
		t.Fatalf("summary %+v, want svc-a stale with its deployment", sum)
	}
	s, _ := f.repo.Service(ctx, "dep1", "svc-a")
	if s.Health != health.Stale {
		t.Fatalf("svc-a is %s", s.Health)
	}
	events := f.detailTypes(t)[published:]
	if len(events) != 2 || !strings.HasPrefix(events[0], contract.DetailTypeServiceHealthChanged) || !strings.Contains(events[0], `"to":"stale"`) ||
		!strings.HasPrefix(events[1], contract.DetailTypeDeploymentHealthChanged) {
		t.Fatalf("events %v", events)
	}
	// Later sweeps: still silent, but already stale: no storm.
	for i := range 3 {
		f.now = f.now.Add(2 * time.Minute)
		f.report(t, "svc-b", int64(3+i))
		if sum := f.sweep(t); sum.Stale != 0 || sum.Alerts != 0 {
			t.Fatalf("sweep %d: %+v", i, sum)
		}
	}
	if got := len(f.detailTypes(t)) - published; got != 2 {
		t.Fatalf("%d events after repeated sweeps, want 2", got)
	}
}

func TestSweepPublishesAlertsLeftInTheOutbox(t *testing.T) {
	f := newFixture(t)
	f.report(t, "svc-a", 1) // recorded, never published (the ingest stopped)
	if sum := f.sweep(t); sum.Republished != 0 {
		t.Fatalf("the sweep took over alerts younger than the grace: %+v", sum)
	}
	f.now = t0.Add(2 * time.Minute)
	if sum := f.sweep(t); sum.Republished != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if sum := f.sweep(t); sum.Republished != 0 {
		t.Fatalf("published twice: %+v", sum)
	}
	if got := len(f.detailTypes(t)); got != 2 {
		t.Fatalf("%d events", got)
	}
}

func TestSweepAdmitsRegisteredExporters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := servicestate.DataPlane{DeploymentID: "dep1", AccountID: "111111111111",
		ExporterRoleARN: "arn:aws:iam::111111111111:role/exporter", ExporterRoleID: "AROAAAAAAAAAAAAAAAAAA",
		AgentRoleARN: "arn:aws:iam::111111111111:role/agent"}
	if err := f.repo.RegisterDataPlane(ctx, d); err != nil {
		t.Fatal(err)
	}
	if sum := f.sweep(t); !sum.PolicyChanged {
		t.Fatalf("summary %+v", sum)
	}
	if sum := f.sweep(t); sum.PolicyChanged {
		t.Fatalf("an unchanged policy was rewritten: %+v", sum)
	}
	out, err := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(f.url), AttributeNames: []sqstypes.QueueAttributeName{"Policy"}})
	if err != nil || !strings.Contains(out.Attributes["Policy"], "role/exporter") {
		t.Fatalf("policy %v %v", out.Attributes, err)
	}
}

func TestSweepReportsFailuresButFinishes(t *testing.T) {
	f := newFixture(t)
	f.report(t, "svc-a", 1)
	f.h.StateQueueURL = f.url + "-missing"
	f.now = t0.Add(10 * time.Minute)
	sum, err := f.h.Handle(context.Background(), Event{})
	if err == nil || !strings.Contains(err.Error(), "state queue admission") {
		t.Fatalf("error %v", err)
	}
	if sum.Stale != 1 || sum.Republished != 2 {
		t.Fatalf("summary %+v: the other steps must still run", sum)
	}
}

func TestParseStaleAfter(t *testing.T) {
	if d, err := ParseStaleAfter(""); err != nil || d != health.DefaultStaleAfter {
		t.Fatalf("%v %v", d, err)
	}
	if d, err := ParseStaleAfter("90s"); err != nil || d != 90*time.Second {
		t.Fatalf("%v %v", d, err)
	}
	for _, bad := range []string{"5", "30s", "48h", "soon"} {
		if _, err := ParseStaleAfter(bad); err == nil || !strings.Contains(err.Error(), "STATE_STALE_AFTER") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

// invoke runs the handler the way Lambda does, from the schedule's JSON input.
func (f *fixture) invoke(t *testing.T, event string) (Summary, error) {
	t.Helper()
	raw, err := lambda.NewHandler(f.h.Handle).Invoke(context.Background(), []byte(event))
	if err != nil {
		return Summary{}, err
	}
	var sum Summary
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatalf("output %s: %v", raw, err)
	}
	return sum, nil
}

// The schedule's time, not the function's clock, decides: a run fired six minutes after a
// service's last report marks it stale even when the function's clock lags (a local cloud
// moved forward), and the transition is dated at the schedule.
func TestSweepJudgesAsOfTheScheduledTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.repo.Deliver(ctx, f.h.Publisher, f.report(t, "svc-a", 1).Alerts); err != nil {
		t.Fatal(err)
	}
	published := len(f.detailTypes(t))
	for _, event := range []string{`{}`, `{"scheduledTime":""}`, `{"version":"0","detail-type":"Scheduled Event"}`} {
		if sum, err := f.invoke(t, event); err != nil || sum.Stale != 0 {
			t.Fatalf("%s, on the clock (no silence yet): %+v %v", event, sum, err)
		}
	}
	scheduled := t0.Add(6 * time.Minute)
	sum, err := f.invoke(t, `{"scheduledTime":"`+scheduled.Format(time.RFC3339)+`"}`)
	if err != nil || sum.Stale != 1 || sum.Alerts != 2 {
		t.Fatalf("sweep as of %s: %+v %v", scheduled, sum, err)
	}
	s, _ := f.repo.Service(ctx, "dep1", "svc-a")
	if s.Health != health.Stale {
		t.Fatalf("svc-a is %s", s.Health)
	}
	events := f.detailTypes(t)[published:]
	if len(events) != 2 || !strings.Contains(events[0], `"at":"`+scheduled.Format(time.RFC3339)) || !strings.Contains(events[0], "no report for 6m0s") {
		t.Fatalf("events %v, want the stale transition dated %s", events, scheduled)
	}
}

// A scheduledTime that is not a time fails the run, naming the field, before anything is
// swept: a misconfigured schedule shows at once instead of judging by a guess.
func TestSweepRefusesAMalformedScheduledTime(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.report(t, "svc-a", 1) // recorded, its alerts left in the outbox
	if err := f.repo.RegisterDataPlane(ctx, servicestate.DataPlane{DeploymentID: "dep1", AccountID: "111111111111",
		ExporterRoleARN: "arn:aws:iam::111111111111:role/exporter", ExporterRoleID: "AROAAAAAAAAAAAAAAAAAA",
		AgentRoleARN: "arn:aws:iam::111111111111:role/agent"}); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(10 * time.Minute) // on the clock, everything would be swept
	for _, event := range []string{
		`{"scheduledTime":"soon"}`,
		`{"scheduledTime":"2026-11-25 09:10:00"}`,
		`{"scheduledTime":"<aws.scheduler.scheduled-time>"}`,
		`{"scheduledTime":1764061800}`,
	} {
		sum, err := f.invoke(t, event)
		if err == nil || !strings.Contains(err.Error(), "scheduledTime") || sum != (Summary{}) {
			t.Fatalf("%s: %+v %v, want an error naming scheduledTime", event, sum, err)
		}
	}
	if s, _ := f.repo.Service(ctx, "dep1", "svc-a"); s.Health == health.Stale {
		t.Fatal("swept despite the error")
	}
	if n := len(f.detailTypes(t)); n != 0 {
		t.Fatalf("%d events published", n)
	}
	out, err := f.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(f.url), AttributeNames: []sqstypes.QueueAttributeName{"Policy"}})
	if err != nil || out.Attributes["Policy"] != "" {
		t.Fatalf("policy written: %v %v", out.Attributes, err)
	}
}

// The sample events (events/statesweep, what `make invoke FN=statesweep` runs) behave as
// their names say; a new sample must be added here.
func TestSampleEvents(t *testing.T) {
	samples := cloudtest.SampleEvents(t, "statesweep", "malformed-time.json", "scheduled.json")
	f := newFixture(t)
	f.report(t, "svc-a", 1)
	read := func(name string) string { return string(samples[name]) }
	if sum, err := f.invoke(t, read("malformed-time.json")); err == nil || !strings.Contains(err.Error(), "scheduledTime") || sum != (Summary{}) {
		t.Errorf("malformed-time.json: %+v %v, want an error naming scheduledTime", sum, err)
	}
	// scheduled.json is 10 minutes after t0, when svc-a last reported (the fixture's clock
	// stays at t0): judged as of that time, svc-a is stale.
	sum, err := f.invoke(t, read("scheduled.json"))
	if err != nil {
		t.Fatalf("scheduled.json: %v", err)
	}
	if s, _ := f.repo.Service(context.Background(), "dep1", "svc-a"); sum.Stale != 1 || s.Health != health.Stale {
		t.Errorf("scheduled.json: %+v, svc-a %s; want it stale as of the scheduled time", sum, s.Health)
	}
}

// A sender's further rejections in a window are announced once, with their count, when the
// window has closed: not while it is open, not again on the next run.
func TestSweepAnnouncesRepeatedRejectionsOncePerClosedWindow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.now = t0.Add(time.Minute)
	for i := range 5 {
		rej := servicestate.Rejection{MessageID: fmt.Sprintf("m-%d", i), Reason: "forged-sender", Security: true,
			SenderID: "AROAFORGER:pod", ClaimedDeploymentID: "dep1", SentAt: f.now}
		if _, err := f.repo.RecordRejection(ctx, rej); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.repo.CountRejection(ctx, rej); err != nil {
			t.Fatal(err)
		}
	}
	one := servicestate.Rejection{MessageID: "single", Reason: "malformed", SenderID: "AROAONCE:pod", SentAt: f.now}
	if _, err := f.repo.RecordRejection(ctx, one); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.repo.CountRejection(ctx, one); err != nil {
		t.Fatal(err)
	}
	if sum := f.sweep(t); sum.RejectionSummaries != 0 {
		t.Fatalf("the open window was summed up: %+v", sum)
	}
	// Just closed: an ingest may still be counting into it.
	f.now = t0.Add(servicestate.RejectionWindow + 30*time.Second)
	if sum := f.sweep(t); sum.RejectionSummaries != 0 {
		t.Fatalf("a window closed 30 s ago was summed up: %+v", sum)
	}
	f.now = t0.Add(servicestate.RejectionWindow + time.Minute)
	if sum := f.sweep(t); sum.RejectionSummaries != 1 {
		t.Fatalf("summaries %d, want the flooding sender's alone (the single rejection was announced when it came)", sum.RejectionSummaries)
	}
	got := f.detailTypes(t)
	if len(got) != 1 || !strings.Contains(got[0], `"repeats":4`) || !strings.Contains(got[0], `"security":true`) || !strings.Contains(got[0], `"senderId":"AROAFORGER:pod"`) {
		t.Fatalf("events %q, want one summary of the 4 repeats", got)
	}
	f.now = t0.Add(servicestate.RejectionWindow + 2*time.Minute)
	if sum := f.sweep(t); sum.RejectionSummaries != 0 || len(f.detailTypes(t)) != 1 {
		t.Fatalf("announced again: %+v", sum)
	}
}

// A deployment invited more than StalledAfter ago whose bootstrap completion never came is
// reported once: an event on the bus and an audit entry. One invited recently, and one that
// moved on, are not.
func TestSweepReportsStalledOnboardingOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	invite := func(id, account string, at time.Time) store.Deployment {
		f.now = at
		d, err := f.deployments.Create(ctx, store.Deployment{ID: id, Status: lifecycle.Invited,
			Settings: settings.Settings{AccountID: account, Region: "us-west-2"}}, store.Audit{Actor: "test", Action: "invite"})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	invite("depstalled", "111111111111", t0.Add(-StalledAfter-time.Hour))
	invite("deprecent", "222222222222", t0.Add(-time.Hour))
	moved := invite("depmoved", "333333333333", t0.Add(-StalledAfter-time.Hour))
	next := moved
	next.Status = lifecycle.Provisioning
	if _, err := f.deployments.Update(ctx, moved, next, store.Audit{Actor: "test", Action: "provision.start"}); err != nil {
		t.Fatal(err)
	}

	f.now = t0
	if sum := f.sweep(t); sum.Stalled != 1 {
		t.Fatalf("stalled %d, want depstalled alone", sum.Stalled)
	}
	events := f.detailTypes(t)
	if len(events) != 1 || !strings.HasPrefix(events[0], contract.DetailTypeOnboardingStalled) || !strings.Contains(events[0], `"deploymentId":"depstalled"`) {
		t.Fatalf("events %q, want one stalled-onboarding event for depstalled", events)
	}
	trail, err := f.deployments.AuditTrail(ctx, "depstalled")
	if err != nil || len(trail) != 2 || trail[1].Action != "onboarding.stalled" {
		t.Fatalf("audit %+v %v", trail, err)
	}
	// Reported, it leaves the sweep's list: later sweeps do not even read it.
	if ids, err := f.deployments.InvitedBefore(ctx, t0); err != nil || slices.Contains(ids, "depstalled") {
		t.Fatalf("invited list %v %v, want depstalled off it once reported", ids, err)
	}
	f.now = t0.Add(time.Minute)
	if sum := f.sweep(t); sum.Stalled != 0 || len(f.detailTypes(t)) != 1 {
		t.Fatalf("reported again: %+v", sum)
	}
}

// A sender that opens its window with a harmless rejection cannot bury its forged messages
// under it: security rejections are counted, and summed up, in a window of their own, with
// security set, which pages the operators.
func TestAHarmlessFirstRejectionDoesNotHideForgedOnes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.now = t0.Add(time.Minute)
	count := func(rej servicestate.Rejection) int64 {
		if _, err := f.repo.RecordRejection(ctx, rej); err != nil {
			t.Fatal(err)
		}
		n, _, err := f.repo.CountRejection(ctx, rej)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(servicestate.Rejection{MessageID: "harmless", Reason: "malformed", SenderID: "AROAFORGER:pod", SentAt: f.now}); n != 1 {
		t.Fatalf("first harmless rejection counted %d", n)
	}
	for i := range 3 {
		n := count(servicestate.Rejection{MessageID: fmt.Sprintf("forged-%d", i), Reason: "forged-sender", Security: true, SenderID: "AROAFORGER:pod", SentAt: f.now})
		if i == 0 && n != 1 {
			t.Fatalf("the first forged message counted %d, want 1: it must be announced at once", n)
		}
	}
	f.now = t0.Add(servicestate.RejectionWindow + time.Minute)
	f.sweep(t)
	got := f.detailTypes(t)
	if len(got) != 1 || !strings.Contains(got[0], `"security":true`) || !strings.Contains(got[0], `"repeats":2`) {
		t.Fatalf("events %q, want the forged messages summed up as security", got)
	}
}

// A provisioning deployment whose execution ended without recording an outcome (stopped by
// an operator, or by the state machine's own timeout) is marked failed with the reason; one
// whose execution still runs is left alone, as is a recent one.
func TestSweepFailsDeploymentsWhoseExecutionEndedWithoutAnOutcome(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sf := f.env.StepFunctions()
	machine := f.env.StateMachine(t, `{"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":3600,"End":true}}}`)
	start := func(name string) string {
		out, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Name: aws.String(name), Input: aws.String(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.ExecutionArn)
	}
	provisioning := func(id, account, execution string, at time.Time) {
		f.now = at
		d, err := f.deployments.Create(ctx, store.Deployment{ID: id, Status: lifecycle.Invited,
			Settings: settings.Settings{AccountID: account, Region: "us-west-2"}}, store.Audit{Actor: "test", Action: "invite"})
		if err != nil {
			t.Fatal(err)
		}
		next := d
		next.Status, next.Execution = lifecycle.Provisioning, execution
		if _, err := f.deployments.Update(ctx, d, next, store.Audit{Actor: "test", Action: "provision.start"}); err != nil {
			t.Fatal(err)
		}
	}
	stopped := start(cloudtest.UniqueName("provision-depstopped"))
	if _, err := sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(stopped), Cause: aws.String("operator stopped it")}); err != nil {
		t.Fatal(err)
	}
	provisioning("depstopped", "111111111111", stopped, t0.Add(-2*time.Hour))
	provisioning("deprunning", "222222222222", start(cloudtest.UniqueName("provision-deprunning")), t0.Add(-2*time.Hour))
	recentStopped := start(cloudtest.UniqueName("provision-deprecent"))
	if _, err := sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(recentStopped)}); err != nil {
		t.Fatal(err)
	}
	provisioning("deprecent", "333333333333", recentStopped, t0.Add(-time.Minute))

	f.now = t0
	if sum := f.sweep(t); sum.Abandoned != 1 {
		t.Fatalf("abandoned %d, want depstopped alone", sum.Abandoned)
	}
	d, _ := f.deployments.Get(ctx, "depstopped")
	if d.Status != lifecycle.Failed || d.Failure == nil || !strings.Contains(d.Failure.Reason, "ABORTED") {
		t.Fatalf("depstopped %s with failure %+v, want failed naming the stopped execution", d.Status, d.Failure)
	}
	for _, id := range []string{"deprunning", "deprecent"} {
		if d, _ := f.deployments.Get(ctx, id); d.Status != lifecycle.Provisioning {
			t.Errorf("%s is %s, want it left provisioning", id, d.Status)
		}
	}
	if sum := f.sweep(t); sum.Abandoned != 0 {
		t.Fatalf("failed again: %+v", sum)
	}
}

// An upgrade whose execution ended without recording an outcome: the deployment goes back
// to ready with the run recorded failed (every upgrade step completes or rolls back whole),
// not to failed, so its windows go on.
func TestSweepReturnsAnAbandonedUpgradeToReady(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sf := f.env.StepFunctions()
	machine := f.env.StateMachine(t, `{"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":3600,"End":true}}}`)
	name := cloudtest.UniqueName("upgrade-depupgrade")
	out, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Name: aws.String(name), Input: aws.String(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: out.ExecutionArn}); err != nil {
		t.Fatal(err)
	}
	f.now = t0.Add(-2 * time.Hour)
	d, err := f.deployments.Create(ctx, store.Deployment{ID: "depupgrade", Status: lifecycle.Invited, Settings: settings.Settings{AccountID: "444444444444", Region: "us-west-2"},
		Maintenance: &store.Maintenance{Window: window.Default("us-west-2"), Channel: "regular"}}, store.Audit{Actor: "test", Action: "invite"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []lifecycle.Status{lifecycle.Provisioning, lifecycle.Ready, lifecycle.Updating} {
		next := d
		next.Status = s
		if s == lifecycle.Updating {
			m := *d.Maintenance
			m.Last = &store.Run{Execution: name, Outcome: "running"}
			next.Maintenance, next.Execution = &m, aws.ToString(out.ExecutionArn)
		}
		if d, err = f.deployments.Update(ctx, d, next, store.Audit{Actor: "test", Action: string(s)}); err != nil {
			t.Fatal(err)
		}
	}
	f.now = t0
	if sum := f.sweep(t); sum.Abandoned != 1 {
		t.Fatalf("abandoned %d", sum.Abandoned)
	}
	d, _ = f.deployments.Get(ctx, "depupgrade")
	if d.Status != lifecycle.Ready || d.Failure != nil || d.Maintenance.Last.Outcome != "failed" || !strings.Contains(d.Maintenance.Last.Reason, "ABORTED") {
		t.Fatalf("deployment %s, failure %+v, last %+v", d.Status, d.Failure, d.Maintenance.Last)
	}
}
