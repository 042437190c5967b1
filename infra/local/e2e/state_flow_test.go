package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/health"
	"github.com/byocloud/byoc/shared/servicestate"
)

// simulate starts simulating tn's data plane with services: its exporter sends as the
// exporter role, its agent reads the command channel as the agent role.
func simulate(t testing.TB, tn tenant, services ...string) *datasim.Simulator {
	t.Helper()
	sim := shared.cloud.DataPlane()
	d := datasim.Deployment{ID: tn.dep.ID, ExporterRoleARN: tn.exporterRole, AgentRoleARN: tn.agentRole}
	for _, s := range services {
		d.Services = append(d.Services, datasim.Service{ID: s})
	}
	if err := sim.Add(d); err != nil {
		t.Fatal(err)
	}
	return sim
}

func tick(t testing.TB, sim *datasim.Simulator) {
	t.Helper()
	if _, err := sim.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A new deployment reported healthy by the simulator: the services' and the deployment's
// state and history in the table, one alert per transition on the vendor bus, and steady
// reports afterwards write no history and raise no alert.
func TestStateNewDeploymentReportedHealthy(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	sim := simulate(t, tn, "svc-a", "svc-b")
	rec := shared.record(t)
	tick(t, sim)
	awaitDeleted(t, rec, tn.dep.ID, 2)

	svcs := st.services(t, tn.dep.ID)
	for _, id := range []string{"svc-a", "svc-b"} {
		s := svcs[id]
		if s.Health != health.Healthy || s.Status != "healthy" || s.Replicas.Ready == 0 || s.Versions.ClickHouse == "" || s.LastSeenAt.IsZero() {
			t.Errorf("service %s stored as %+v, want healthy with its report", id, s)
		}
	}
	if h := st.deploymentHealth(t, tn.dep.ID); h != health.Healthy {
		t.Fatalf("deployment %s", h)
	}
	hist := st.history(t, tn.dep.ID)
	scopes := map[string]int{}
	for _, h := range hist {
		if h.From == health.Unknown && h.To == health.Healthy {
			scopes[string(h.Scope)+" "+h.ServiceID]++
		}
	}
	if len(hist) != 3 || scopes["service svc-a"] != 1 || scopes["service svc-b"] != 1 || scopes["deployment "] != 1 {
		t.Fatalf("history %v: want svc-a, svc-b and the deployment unknown -> healthy, once each", hist)
	}
	events := alerts(st.tap.events(t, tn.dep.ID))
	want := map[string]bool{"service svc-a": true, "service svc-b": true, "deployment ": true}
	ids := map[string]bool{}
	for _, e := range events {
		a := e.Alert
		key := string(a.Scope) + " " + a.ServiceID
		if !want[key] || a.To != health.Healthy || a.Severity != health.SeverityInfo || ids[a.AlertID] {
			t.Errorf("unexpected alert %s (%+v)", e, a)
		}
		delete(want, key)
		ids[a.AlertID] = true
	}
	if len(want) != 0 || len(events) != 3 {
		t.Errorf("alerts %v: want one per transition", events)
	}

	// Steady: two more rounds, nothing new.
	tick(t, sim)
	tick(t, sim)
	awaitDeleted(t, rec, tn.dep.ID, 6)
	if n := len(st.history(t, tn.dep.ID)); n != 3 {
		t.Errorf("steady reports wrote %d history entries", n-3)
	}
	if got := alerts(st.tap.events(t, tn.dep.ID)); len(got) != 3 {
		t.Errorf("steady reports raised alerts: %v", got[3:])
	}
}

// statesweep runs from its Scheduler schedule with {"scheduledTime": ...} as input.
func sweepSchedule(t testing.TB) (group, name string) {
	t.Helper()
	fn, ok := shared.cloud.FunctionName(contract.FunctionStateSweep)
	if !ok {
		t.Fatal("statesweep is not running")
	}
	c := scheduler.NewFromConfig(shared.cloud.WatchConfig())
	list, err := c.ListSchedules(context.Background(), &scheduler.ListSchedulesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Schedules {
		got, err := c.GetSchedule(context.Background(), &scheduler.GetScheduleInput{GroupName: s.GroupName, Name: s.Name})
		if err != nil || got.Target == nil || !strings.HasSuffix(aws.ToString(got.Target.Arn), ":function:"+fn) {
			continue
		}
		if in := aws.ToString(got.Target.Input); in != `{"scheduledTime":"<aws.scheduler.scheduled-time>"}` {
			t.Errorf("the sweep schedule's input is %s", in)
		}
		if e := aws.ToString(got.ScheduleExpression); e != "rate(1 minute)" {
			t.Errorf("the sweep schedule is %s, want rate(1 minute)", e)
		}
		return aws.ToString(got.GroupName), aws.ToString(got.Name)
	}
	t.Fatalf("no schedule targets statesweep (%s)", fn)
	return "", ""
}

// A service silent past STATE_STALE_AFTER becomes stale through the real path: the
// cloud's clock moves on, the schedule fires statesweep with its scheduledTime, statesweep
// queries the sweep index and marks it; one alert per scope, however many sweeps run. Its
// next report brings it back.
func TestStateSilentServiceTurnsStaleOnceAndRecovers(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	group, name := sweepSchedule(t)
	silence := shared.runner.StaleAfter(context.Background()) + 2*time.Minute
	exporter := tn.exporter(t)
	setup := shared.record(t)
	st.send(t, exporter, encode(t, tn.report("svc-a", 1)))
	awaitDeleted(t, setup, tn.dep.ID, 1) // processed, its alerts published
	if h := st.deploymentHealth(t, tn.dep.ID); h != health.Healthy {
		t.Fatalf("deployment %s after its first report", h)
	}
	before := len(alerts(st.tap.events(t, tn.dep.ID)))

	rec := shared.record(t)
	// The silence: the cloud's clock jumps; the schedule fires once for the minutes it skipped. An
	// earlier run of this test in the process (go test -count) left the schedule's next
	// occurrence ahead of the clock; the jump goes that much further, so the minutes it
	// skips are as many as in a first run.
	lead := time.Duration(0)
	if next, ok := shared.cloud.Firer.Next(group, name); ok && next.After(shared.clock.Now()) {
		lead = next.Sub(shared.clock.Now())
	}
	shared.clock.Jump(silence + lead)
	t.Cleanup(func() { shared.clock.Jump(-shared.clock.Offset()) })
	until(t, 30*time.Second, "svc-a and the deployment to turn stale", func() (bool, string) {
		s, d := st.services(t, tn.dep.ID)["svc-a"].Health, st.deploymentHealth(t, tn.dep.ID)
		return s == health.Stale && d == health.Stale, fmt.Sprintf("svc-a %s, deployment %s", s, d)
	})
	// Every sweep the schedule fired has finished.
	until(t, 30*time.Second, "the sweeps to finish", func() (bool, string) {
		fired, done := 0, 0
		for _, e := range rec.all() {
			if e.Kind == localcloud.KindSchedule && e.Subject == group+"/"+name && !e.Failed {
				fired++
			}
			if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionStateSweep {
				done++
			}
		}
		next, ok := shared.cloud.Firer.Next(group, name)
		return fired > 0 && done >= fired && ok && next.After(shared.clock.Now()), fmt.Sprintf("%d fired, %d done", fired, done)
	})
	sweeps := 0
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionStateSweep {
			sweeps++
			if e.Failed {
				t.Errorf("a sweep failed: %s", e)
			}
		}
	}
	if sweeps < 1 {
		t.Errorf("%d sweeps ran: the jump should have fired the sweep (once, for the latest minute it skipped)", sweeps)
	}
	// Another minute, another sweep: the services stay stale, and no alert repeats.
	shared.clock.Jump(time.Minute)
	until(t, 30*time.Second, "another sweep", func() (bool, string) {
		n := 0
		for _, e := range rec.all() {
			if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionStateSweep {
				n++
			}
		}
		return n > sweeps, fmt.Sprintf("%d sweeps", n)
	})
	sweeps++
	stale := alerts(st.tap.events(t, tn.dep.ID))[before:]
	if len(stale) != 2 || stale[0].Alert.To != health.Stale || stale[1].Alert.To != health.Stale || stale[0].Alert.Severity != health.SeverityWarning {
		t.Fatalf("alerts after %d sweeps: %v; want one for svc-a and one for the deployment", sweeps, stale)
	}

	// Back to the present (the clock must not stay ahead: every later report would be
	// judged minutes old). The firer keeps its next occurrence, minutes ahead, so the
	// schedule does not fire again during this run; nothing after this test relies on it.
	// The exporter speaks again.
	shared.clock.Jump(-shared.clock.Offset())
	again := shared.record(t)
	st.send(t, exporter, encode(t, tn.report("svc-a", 2)))
	awaitDeleted(t, again, tn.dep.ID, 1)
	if s, d := st.services(t, tn.dep.ID)["svc-a"].Health, st.deploymentHealth(t, tn.dep.ID); s != health.Healthy || d != health.Healthy {
		t.Errorf("after the report: svc-a %s, deployment %s; want both healthy again", s, d)
	}
	recovered := alerts(st.tap.events(t, tn.dep.ID))[before+2:]
	if len(recovered) != 2 || !recovered[0].Alert.Recovered || !recovered[1].Alert.Recovered {
		t.Errorf("alerts after the report: %v; want svc-a and the deployment recovered", recovered)
	}
}

// channelSender sends commands as the control plane does.
func channelSender(st *stateEnv) *channel.Sender {
	return &channel.Sender{SQS: sqs.NewFromConfig(shared.cloud.Config()), Recorder: st.repo}
}

func commandFor(tn tenant, svc, id, version string) channel.Command {
	return channel.Command{ID: id, DeploymentID: tn.dep.ID, ServiceID: svc, Kind: channel.ApplyRelease,
		Params: map[string]string{"clickhouseVersion": version}}
}

func channelURL(t testing.TB, tn tenant) string {
	t.Helper()
	name, err := channel.QueueName(tn.dep.ID)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sqs.NewFromConfig(shared.cloud.WatchConfig()).GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatalf("provisioning opened no command channel for %s: %v", tn.dep.ID, err)
	}
	return aws.ToString(out.QueueUrl)
}

// execute starts an execution and waits for it to end; it returns its status and output.
func execute(t testing.TB, machine string, input map[string]any, during func()) (string, map[string]any) {
	t.Helper()
	c := sfn.NewFromConfig(shared.cloud.Config())
	name := "e2e-" + scenario.RandomAccount()
	ended := make(chan localcloud.Event, 1)
	shared.subscribe(t, func(e localcloud.Event) {
		if e.Kind == localcloud.KindExecution && strings.HasPrefix(e.Detail, name) && e.Status != "RUNNING" {
			select {
			case ended <- e:
			default:
			}
		}
	})
	in, _ := json.Marshal(input)
	out, err := c.StartExecution(context.Background(), &sfn.StartExecutionInput{StateMachineArn: aws.String(machine), Name: aws.String(name), Input: aws.String(string(in))})
	if err != nil {
		t.Fatal(err)
	}
	if during != nil {
		during()
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatalf("execution %s did not end", name)
	}
	desc, err := c.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: out.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	var result map[string]any
	_ = json.Unmarshal([]byte(aws.ToString(desc.Output)), &result)
	if desc.Error != nil { // a failed execution has no output: its error and cause stand for it
		result = map[string]any{"error": aws.ToString(desc.Error), "cause": aws.ToString(desc.Cause)}
	}
	return string(desc.Status), result
}

// pending counts the messages on a queue, visible or in flight.
func pending(t testing.TB, url string) int {
	t.Helper()
	out, err := sqs.NewFromConfig(shared.cloud.WatchConfig()).GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible},
	})
	if err != nil {
		t.Fatal(err)
	}
	visible, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	inFlight, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return visible + inFlight
}

// The control plane's command workflow (workflows.Command, deployed from the synthesized
// template) sends a command through sendcommand and waits on statewait: it resumes when the
// simulated agent has applied the command and the exporter's report acknowledges it; a wait
// the agent does not answer in time times out at its timeoutSeconds, and the late
// acknowledgement is still ingested; a bad request and a deployment without a channel fail by
// name with nothing sent.
func TestStateCommandWorkflowSendsAndWaits(t *testing.T) {
	st := state(t)
	tn := onboard(t)
	sim := simulate(t, tn, "svc-a")
	rec := shared.record(t)
	tick(t, sim)
	awaitDeleted(t, rec, tn.dep.ID, 1)
	machine := shared.runner.ControlPlane.Outputs[scenario.OutputCommandMachine]
	ctx := context.Background()
	release := func(version string, timeoutSeconds int) map[string]any {
		return map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "apply-release",
			"params": map[string]any{"clickhouseVersion": version}, "timeoutSeconds": timeoutSeconds}
	}

	status, out := execute(t, machine, release("25.1.3", 60), func() {
		// The command is on the channel and the task waits; then the agent applies the
		// command and the exporter's next report acknowledges it with the new version.
		until(t, 30*time.Second, "statewait to register the waiter", func() (bool, string) {
			s := st.services(t, tn.dep.ID)["svc-a"]
			return s.Waiters > 0, fmt.Sprintf("%d waiters", s.Waiters)
		})
		tick(t, sim)
	})
	command, _ := out["command"].(map[string]any)
	id, _ := command["id"].(string)
	state, _ := out["state"].(map[string]any)
	if status != "SUCCEEDED" || state == nil || state["commandId"] != id || state["health"] != "healthy" || !strings.Contains(fmt.Sprint(state["versions"]), "25.1.3") {
		t.Fatalf("execution %s with output %v: want it resumed with svc-a's state on 25.1.3, acknowledging the command it sent", status, out)
	}
	// The id is SHA-1 of the execution's ARN and the step, so a retried step is recognised.
	runs, err := sfn.NewFromConfig(shared.cloud.Config()).ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(machine)})
	if err != nil {
		t.Fatal(err)
	}
	var derived []string
	for _, e := range runs.Executions {
		derived = append(derived, fmt.Sprintf("%x", sha1.Sum([]byte(aws.ToString(e.ExecutionArn)+"/Send"))))
	}
	if !slices.Contains(derived, id) {
		t.Errorf("command id %s is not SHA-1 of an execution and its step (%v)", id, derived)
	}
	if rec, err := st.repo.Command(ctx, tn.dep.ID, id); err != nil || rec.Status != servicestate.CommandSucceeded || rec.Params["clickhouseVersion"] != "25.1.3" {
		t.Errorf("command record %+v (%v): want the apply-release, succeeded", rec, err)
	}

	began := time.Now()
	status, out = execute(t, machine, release("25.2.1", 1), nil)
	if status != "FAILED" || !strings.Contains(fmt.Sprint(out["error"]), "States.Timeout") {
		t.Errorf("execution %s (%v): want it to time out", status, out)
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("the wait took %s to time out, want about its 1 s", d)
	}
	// The agent applies that command late: the report is ingested as usual (its resume of
	// the expired task is refused by Step Functions and must not fail the message), and the
	// command's record still learns the outcome.
	logMark := shared.logs.size()
	tick(t, sim)
	awaitDeleted(t, rec, tn.dep.ID, 3)
	if totals := batchTotals(t, shared.logs.since(logMark)); totals["retry"]+totals["rejected"] != 0 {
		t.Errorf("stateingest after the timeout: %v", totals)
	}
	if h := st.services(t, tn.dep.ID)["svc-a"]; !strings.Contains(fmt.Sprint(h.Versions), "25.2.1") {
		t.Errorf("svc-a after the late apply: %+v, want it on 25.2.1", h)
	}

	// Refusals end the execution under their own name, and the agent receives nothing.
	url := channelURL(t, tn)
	for _, c := range []struct {
		name, error string
		input       map[string]any
	}{
		{"no service", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "kind": "start"}},
		{"timeout too long", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "start", "timeoutSeconds": 604801}},
		{"scale without replicas", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "scale"}},
		// start takes no params, so only the workflow's shape rule can refuse these.
		{"params a list", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "start", "params": []any{"replicas", "3"}}},
		{"params a string", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "start", "params": "replicas=3"}},
		{"fractional timeout", "InvalidRequestError", map[string]any{"deploymentId": tn.dep.ID, "serviceId": "svc-a", "kind": "start", "timeoutSeconds": 90.5}},
		{"deployment id against the rule", "InvalidRequestError", map[string]any{"deploymentId": "never-provisioned", "serviceId": "svc-a", "kind": "start"}},
		{"never provisioned", "NoChannelError", map[string]any{"deploymentId": "neverprovisioned", "serviceId": "svc-a", "kind": "start"}},
	} {
		status, out := execute(t, machine, c.input, nil)
		if status != "FAILED" || !strings.Contains(fmt.Sprint(out["error"]), c.error) {
			t.Errorf("%s: execution %s (%v), want it failed with %s", c.name, status, out, c.error)
		}
	}
	if got := pending(t, url); got != 0 {
		t.Errorf("refused requests left %d commands on the channel", got)
	}
}
