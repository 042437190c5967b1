package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/steperr"
	"github.com/byocloud/byoc/shared/store"
)

// ---- await ----

func TestAwaitRegistersTheTokenWhileTheStackIsBusy(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	apply := must[ApplyResult](t, f, Input{Step: StepApply})
	exec, token := f.env.Activity(t)
	out := must[AwaitResult](t, f, awaitInput(apply, token))
	if !out.Registered || out.Completed || out.Status != "CREATE_IN_PROGRESS" {
		t.Fatalf("await = %+v", out)
	}
	w, err := f.h.Store.Waiter(ctx, account, region, stackName)
	if err != nil {
		t.Fatal(err)
	}
	if w.TaskToken != token || w.StackID != apply.StackID || w.Operation != "create" || w.RequestToken != apply.RequestToken || w.DeploymentID != deploymentID {
		t.Fatalf("waiter %+v", w)
	}
	if !w.ExpiresAt.After(time.Now().Add(15 * time.Minute)) {
		t.Fatalf("waiter expires at %s, before the Await timeout", w.ExpiresAt)
	}
	if !running(t, f, exec) {
		t.Fatal("the task was completed while the stack is busy")
	}
}

// The stack's event may arrive before the waiter is stored; await then sees the end itself.
func TestAwaitCompletesTheTokenOfAStackThatAlreadyFinished(t *testing.T) {
	cases := []struct {
		settle, wantStatus, wantError string
		wantOutcome                   string
	}{
		{"CREATE_COMPLETE", "SUCCEEDED", "", stackevent.OutcomeSucceeded},
		{"ROLLBACK_COMPLETE", "FAILED", stackevent.ErrorStackFailed, stackevent.OutcomeFailed},
	}
	for _, c := range cases {
		t.Run(c.settle, func(t *testing.T) {
			f := newFixture(t)
			must[PrepareResult](t, f, Input{Step: StepPrepare})
			apply := must[ApplyResult](t, f, Input{Step: StepApply})
			f.cfn.settle(stackName, c.settle)
			exec, token := f.env.Activity(t)
			out := must[AwaitResult](t, f, awaitInput(apply, token))
			if !out.Completed || out.Status != c.settle {
				t.Fatalf("await = %+v", out)
			}
			desc := f.env.WaitExecution(t, exec)
			payload := aws.ToString(desc.Output)
			if c.wantError != "" {
				payload = aws.ToString(desc.Cause)
			}
			var r stackevent.Result
			_ = json.Unmarshal([]byte(payload), &r)
			if string(desc.Status) != c.wantStatus || aws.ToString(desc.Error) != c.wantError || r.Outcome != c.wantOutcome || r.StackID != apply.StackID {
				t.Fatalf("execution %s %s %s", desc.Status, aws.ToString(desc.Error), payload)
			}
			if _, err := f.h.Store.Waiter(ctx, account, region, stackName); !errors.Is(err, store.ErrNotFound) {
				t.Fatal("the waiter survived")
			}
		})
	}
}

func TestAwaitOfADeleteSeesTheStackGone(t *testing.T) {
	f := newFixture(t)
	f.createdEarlier(t, "ROLLBACK_COMPLETE")
	apply := must[ApplyResult](t, f, Input{Step: StepApply}) // delete
	f.cfn.settle(stackName, "DELETE_COMPLETE")
	exec, token := f.env.Activity(t)
	if out := must[AwaitResult](t, f, awaitInput(apply, token)); !out.Completed {
		t.Fatalf("await = %+v", out)
	}
	desc := f.env.WaitExecution(t, exec)
	var r stackevent.Result
	_ = json.Unmarshal([]byte(aws.ToString(desc.Output)), &r)
	if desc.Status != "SUCCEEDED" || r.Outcome != stackevent.OutcomeDeleted {
		t.Fatalf("execution %s %s", desc.Status, aws.ToString(desc.Output))
	}
}

// ---- poll ----

func TestPollReportsTheStack(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	apply := must[ApplyResult](t, f, Input{Step: StepApply})
	in := Input{Step: StepPoll, StackID: apply.StackID, Operation: apply.Operation}
	if r := must[stackevent.Result](t, f, in); r.Outcome != stackevent.OutcomeWaiting || r.Status != "CREATE_IN_PROGRESS" {
		t.Fatalf("poll = %+v", r)
	}
	f.cfn.settle(stackName, "ROLLBACK_COMPLETE")
	_, err := step[stackevent.Result](t, f, in)
	var sf *StackFailed
	if !errors.As(err, &sf) || errorType(err) != stackevent.ErrorStackFailed || sf.Result.Status != "ROLLBACK_COMPLETE" {
		t.Fatalf("err = %v", err)
	}
}

func TestPollOfAStackThatVanishedReportsItDeleted(t *testing.T) {
	f := newFixture(t)
	must[PrepareResult](t, f, Input{Step: StepPrepare})
	r := must[stackevent.Result](t, f, Input{Step: StepPoll, Operation: "delete"})
	if r.Outcome != stackevent.OutcomeDeleted || r.Status != "DELETE_COMPLETE" {
		t.Fatalf("poll = %+v", r)
	}
}

// ---- record ----

func TestRecordStoresOutputsAndMarksReady(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "CREATE_COMPLETE")
	out := must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id})
	d := f.deployment(t)
	if out.Status != "ready" || d.Status != lifecycle.Ready || d.Outputs["VpcId"] != "vpc-0abc" || d.StackID != s.id || d.Failure != nil {
		t.Fatalf("record = %+v, deployment %+v", out, d)
	}
	version := d.Version
	must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id}) // retried invocation
	if f.deployment(t).Version != version {
		t.Fatal("a retried record wrote again")
	}
}

func TestRecordRefusesAnIncompleteStack(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "CREATE_IN_PROGRESS")
	before := f.deployment(t)
	if _, err := step[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id}); err == nil || !strings.Contains(err.Error(), "CREATE_IN_PROGRESS") {
		t.Fatalf("err = %v", err)
	}
	if d := f.deployment(t); d.Version != before.Version {
		t.Fatal("an incomplete stack was recorded")
	}
}

// ---- fail ----

func TestFailRecordsTheFirstFailedResource(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "ROLLBACK_COMPLETE")
	caught := taskFailure(stackevent.ResultOf(s.id, "ROLLBACK_COMPLETE", ""))
	out := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
	d := f.deployment(t)
	if d.Status != lifecycle.Failed || d.Failure == nil {
		t.Fatalf("deployment %s", d.Status)
	}
	fl := *d.Failure
	if fl.Status != "ROLLBACK_COMPLETE" || fl.Resource != "EksCluster (AWS::EKS::Cluster)" || !strings.Contains(fl.Reason, "insufficient capacity") || fl.At.IsZero() {
		t.Fatalf("failure %+v", fl)
	}
	if !out.Retry || !strings.Contains(out.Reason, "EksCluster") {
		t.Fatalf("fail = %+v: a first failed attempt may retry", out)
	}
	// A retried invocation of the step records nothing new and answers the same.
	trail := f.actions(t)
	again := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
	if again != out || len(f.actions(t)) != len(trail) {
		t.Fatalf("retried fail = %+v, audit %v", again, f.actions(t))
	}
}

func TestFailWithAnUnreadableStackStillRecordsTheFailure(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "ROLLBACK_COMPLETE")
	f.cfn.err["DescribeStackEvents"] = errors.New("connection reset")
	caught := taskFailure(stackevent.ResultOf(s.id, "ROLLBACK_COMPLETE", "The following resource(s) failed to create: [EksCluster]."))
	must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
	if fl := f.deployment(t).Failure; fl == nil || fl.Status != "ROLLBACK_COMPLETE" || !strings.Contains(fl.Reason, "EksCluster") {
		t.Fatalf("failure %+v", fl)
	}
}

func TestParseCaught(t *testing.T) {
	cases := []struct {
		in          *steperr.Caught
		name, msg   string
		stackStatus string
	}{
		{nil, "Unknown", "the workflow passed no error", ""},
		{&steperr.Caught{Error: "StackFailed", Cause: `{"stackId":"arn","status":"CREATE_FAILED","reason":"boom","outcome":"failed"}`}, "StackFailed", "boom", "CREATE_FAILED"},
		{&steperr.Caught{Error: "AccessDenied", Cause: `{"errorMessage":"cannot assume","errorType":"AccessDenied"}`}, "AccessDenied", "cannot assume", ""},
		{&steperr.Caught{Error: "States.Timeout", Cause: ""}, "States.Timeout", "States.Timeout", ""},
		{&steperr.Caught{Error: "UnexpectedOutcome", Cause: "plain text"}, "UnexpectedOutcome", "plain text", ""},
	}
	for _, c := range cases {
		name, msg, r := parseCaught(c.in)
		if name != c.name || msg != c.msg || r.Status != c.stackStatus {
			t.Errorf("parseCaught(%+v) = %q %q %+v", c.in, name, msg, r)
		}
	}
}

// ---- whole runs, step by step in the order provision.asl.json takes ----

// run follows the workflow: Prepare, Apply, then Await/Settled until the stack settles as
// the script says, Record or RecordFailure/RetryAllowed. The stack's events are replaced by
// settling the fake stack and the await step's own look at it.
func run(t *testing.T, f *fixture, outcomes ...string) (ready bool, attempts int) {
	t.Helper()
	for {
		attempts++
		must[PrepareResult](t, f, Input{Step: StepPrepare})
		for {
			apply := must[ApplyResult](t, f, Input{Step: StepApply})
			if apply.Action == ActionNone {
				break
			}
			if apply.Action == ActionDelete {
				f.cfn.settle(stackName, "DELETE_COMPLETE")
			} else {
				f.cfn.settle(stackName, outcomes[0])
				outcomes = outcomes[1:]
			}
			exec, token := f.env.Activity(t)
			must[AwaitResult](t, f, awaitInput(apply, token))
			desc := f.env.WaitExecution(t, exec)
			if desc.Status == "FAILED" {
				caught := steperr.Caught{Error: aws.ToString(desc.Error), Cause: aws.ToString(desc.Cause)}
				failed := must[FailResult](t, f, Input{Step: StepFail, Error: &caught})
				if !failed.Retry {
					return false, attempts
				}
				goto next
			}
			var r stackevent.Result
			_ = json.Unmarshal([]byte(aws.ToString(desc.Output)), &r)
			if r.Outcome == stackevent.OutcomeSucceeded {
				break
			}
			// deleted: back to Apply, which creates the stack again
		}
		must[RecordResult](t, f, Input{Step: StepRecord})
		return true, attempts
	next:
	}
}

func TestARolledBackStackIsDeletedAndCreatedAgain(t *testing.T) {
	f := newFixture(t)
	ready, attempts := run(t, f, "ROLLBACK_COMPLETE", "CREATE_COMPLETE")
	d := f.deployment(t)
	if !ready || attempts != 2 || d.Status != lifecycle.Ready || d.ProvisionAttempts != 2 {
		t.Fatalf("ready=%v attempts=%d deployment %s/%d", ready, attempts, d.Status, d.ProvisionAttempts)
	}
	if n := len(f.cfn.stacks); n != 2 || f.cfn.stacks[0].status != "DELETE_COMPLETE" || d.StackID != f.cfn.stacks[1].id {
		t.Fatalf("%d stack instances, recorded %s", n, d.StackID)
	}
	want := []string{"invite", "provision.start", "stack.create", "provision.failed", "provision.start", "stack.delete", "stack.create", "provision.ready", "maintenance.armed"}
	if got := f.actions(t); !slices.Equal(got, want) {
		t.Fatalf("audit\n got %v\nwant %v", got, want)
	}
}

func TestRetriesStopAtMaxProvisionAttempts(t *testing.T) {
	f := newFixture(t)
	ready, attempts := run(t, f, "ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "CREATE_COMPLETE")
	d := f.deployment(t)
	if ready || attempts != 3 || d.Status != lifecycle.Failed || d.RunAttempts != 3 {
		t.Fatalf("ready=%v attempts=%d deployment %s run %d", ready, attempts, d.Status, d.RunAttempts)
	}
	if d.Failure == nil || d.Failure.Resource != "EksCluster (AWS::EKS::Cluster)" {
		t.Fatalf("failure %+v", d.Failure)
	}
}

func TestARerunOfAReadyDeploymentWithNothingToChange(t *testing.T) {
	f := newFixture(t)
	if ready, _ := run(t, f, "CREATE_COMPLETE"); !ready {
		t.Fatal("first run failed")
	}
	// An operator re-runs provision: prepare makes it updating, apply finds nothing to do.
	rerun := execution + "-rerun"
	must[PrepareResult](t, f, Input{Step: StepPrepare, Execution: rerun})
	if a := must[ApplyResult](t, f, Input{Step: StepApply, Execution: rerun}); a.Action != ActionNone {
		t.Fatalf("apply = %+v", a)
	}
	must[RecordResult](t, f, Input{Step: StepRecord, Execution: rerun})
	if d := f.deployment(t); d.Status != lifecycle.Ready || f.cfn.live(stackName).status != "CREATE_COMPLETE" {
		t.Fatalf("status %s, stack %s", d.Status, f.cfn.live(stackName).status)
	}
	// The schedule was armed once, when the deployment first became ready.
	want := []string{"invite", "provision.start", "stack.create", "provision.ready", "maintenance.armed", "provision.start", "provision.ready"}
	if got := f.actions(t); !slices.Equal(got, want) {
		t.Fatalf("audit %v", got)
	}
}

// ---- the contract with provision.asl.json ----

// Every field the workflow selects from a step's output must be in that output's JSON, and
// every field it sends must be one the step reads: a mismatch fails executions at runtime.
func TestWorkflowAndStepsAgreeOnFieldNames(t *testing.T) {
	var m struct {
		States map[string]struct {
			Resource       string
			Parameters     struct{ Payload map[string]any }
			ResultSelector map[string]string
		}
	}
	if err := json.Unmarshal([]byte(workflows.Provision), &m); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]any{
		StepPrepare: PrepareResult{}, StepApply: ApplyResult{}, StepPoll: stackevent.Result{},
		StepRecord: RecordResult{}, StepFail: FailResult{},
	}
	inputFields := jsonFields(t, Input{TaskToken: "x", StackID: "x", Operation: "x", RequestToken: "x", Error: &steperr.Caught{}, Takeover: true, StartedAt: time.Unix(1, 0)})
	steps := 0
	for name, s := range m.States {
		if s.Parameters.Payload == nil {
			continue
		}
		steps++
		stepName, _ := s.Parameters.Payload["step"].(string)
		for k := range s.Parameters.Payload {
			if !slices.Contains(inputFields, strings.TrimSuffix(k, ".$")) {
				t.Errorf("%s sends %q, which Input does not read", name, k)
			}
		}
		if strings.HasSuffix(s.Resource, ".waitForTaskToken") {
			if stepName != StepAwait {
				t.Errorf("%s waits for a token but runs step %s", name, stepName)
			}
			continue
		}
		out, ok := outputs[stepName]
		if !ok {
			t.Errorf("%s runs unknown step %q", name, stepName)
			continue
		}
		fields := jsonFields(t, out)
		for _, path := range s.ResultSelector {
			field, ok := strings.CutPrefix(path, "$.Payload.")
			if !ok || !slices.Contains(fields, field) {
				t.Errorf("%s selects %s, not a field of the %s output %v", name, path, stepName, fields)
			}
		}
	}
	if steps < 7 {
		t.Fatalf("only %d task states checked", steps)
	}
	// The await result the workflow chooses on is stackevents' and await's stackevent.Result.
	if fields := jsonFields(t, stackevent.Result{}); !slices.Contains(fields, "outcome") {
		t.Fatal("Result has no outcome")
	}
}

func jsonFields(t *testing.T, v any) []string {
	t.Helper()
	raw, _ := json.Marshal(v)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The provision sample events are step inputs `make invoke` can send.
func TestSampleStepInputsDecode(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "provision", "*.json"))
	if len(files) == 0 {
		t.Fatal("no samples in events/provision")
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var in Input
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if in.Step == "" || in.DeploymentID == "" || in.Execution == "" {
			t.Fatalf("%s: %+v", file, in)
		}
	}
}

func awaitInput(a ApplyResult, token string) Input {
	return Input{Step: StepAwait, TaskToken: token, StackID: a.StackID, Operation: a.Operation, RequestToken: a.RequestToken}
}

func running(t *testing.T, f *fixture, exec string) bool {
	t.Helper()
	out, err := f.env.StepFunctions().DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(exec)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Status == "RUNNING"
}

// An update that rolled back to exactly the wanted parameters has nothing to do and is ready.
func TestARolledBackUpdateMatchingTheWantedStackIsReady(t *testing.T) {
	f := newFixture(t)
	s := f.createdAndSettled(t, "UPDATE_ROLLBACK_COMPLETE")
	if a := must[ApplyResult](t, f, Input{Step: StepApply}); a.Action != ActionNone {
		t.Fatalf("apply = %+v", a)
	}
	if out := must[RecordResult](t, f, Input{Step: StepRecord, StackID: s.id}); out.Status != "ready" {
		t.Fatalf("record = %+v", out)
	}
}
