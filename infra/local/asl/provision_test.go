package asl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/byocloud/byoc/infra/local/asl"
	"github.com/byocloud/byoc/infra/workflows"
)

// byoc's real provision workflow (infra/workflows/provision.asl.json, rendered the way the
// local cloud renders it) run against a provision Lambda written here as a Go function. The
// Lambda fails with byoc's own error names and with Lambda service errors, and the test shows
// the workflow's Retry and Catch doing what they do on AWS: back-off with jitter, the
// StackFailed catcher leading to a bounded re-provision, the lost-event timeout falling back
// to the poll, and everything else ending in MarkFailed and the ProvisionFailed state.

const provisionARN = "arn:aws:lambda:us-east-1:000000000000:function:byoc-provision"

// step is one call the fake provision Lambda received.
type step struct {
	Name    string
	Payload map[string]any
	At      time.Duration // virtual time since the execution started
}

type answer func(ctx context.Context, e *asl.Engine, payload map[string]any) (*asl.InvokeOutput, error)

// provisionLambda answers each step with the next scripted answer for that step.
type provisionLambda struct {
	mu      sync.Mutex
	engine  *asl.Engine
	start   time.Time
	script  map[string][]answer
	calls   []step
	pending sync.WaitGroup
}

func (p *provisionLambda) Invoke(ctx context.Context, in *asl.InvokeInput) (*asl.InvokeOutput, error) {
	if in.FunctionName != provisionARN {
		return nil, &asl.ServiceError{Code: "ResourceNotFoundException", Message: "no function " + in.FunctionName, StatusCode: 404}
	}
	var payload map[string]any
	if err := json.Unmarshal(in.Payload, &payload); err != nil {
		return nil, err
	}
	name, _ := payload["step"].(string)
	p.mu.Lock()
	p.calls = append(p.calls, step{name, payload, time.Since(p.start)})
	list := p.script[name]
	if len(list) == 0 {
		p.mu.Unlock()
		return nil, fmt.Errorf("the script has no answer for step %q", name)
	}
	a := list[0]
	if len(list) > 1 {
		p.script[name] = list[1:]
	}
	p.mu.Unlock()
	return a(ctx, p.engine, payload)
}

func (p *provisionLambda) SendMessage(context.Context, *asl.SendMessageInput) (*asl.SendMessageOutput, error) {
	return nil, fmt.Errorf("the provision workflow sends no SQS messages")
}

func (p *provisionLambda) PutEvents(context.Context, []asl.EventEntry) (*asl.PutEventsOutput, error) {
	return nil, fmt.Errorf("the provision workflow puts no events")
}

func ok(result any) answer {
	return func(context.Context, *asl.Engine, map[string]any) (*asl.InvokeOutput, error) {
		b, _ := json.Marshal(result)
		return &asl.InvokeOutput{StatusCode: 200, Payload: b}, nil
	}
}

// fails is a function error the way the Go Lambda runtime reports one.
func fails(errorType, message string) answer {
	return func(context.Context, *asl.Engine, map[string]any) (*asl.InvokeOutput, error) {
		b, _ := json.Marshal(map[string]string{"errorMessage": message, "errorType": errorType})
		return &asl.InvokeOutput{StatusCode: 200, FunctionError: "Unhandled", Payload: b}, nil
	}
}

func throttled() answer {
	return func(context.Context, *asl.Engine, map[string]any) (*asl.InvokeOutput, error) {
		return nil, &asl.ServiceError{Code: "TooManyRequestsException", Message: "Rate Exceeded.", StatusCode: 429}
	}
}

// stackEvent registers the token and, after delay, answers it as the stackevents function
// would when the Stack Status Change event arrives (fail != "" sends SendTaskFailure).
func (p *provisionLambda) stackEvent(delay time.Duration, output any, fail string) answer {
	return func(_ context.Context, e *asl.Engine, payload map[string]any) (*asl.InvokeOutput, error) {
		token, _ := payload["taskToken"].(string)
		p.pending.Add(1)
		go func() {
			defer p.pending.Done()
			time.Sleep(delay)
			if fail != "" {
				_ = e.SendTaskFailure(token, fail, "The following resource(s) failed to create: [Cluster].")
				return
			}
			b, _ := json.Marshal(output)
			_ = e.SendTaskSuccess(token, string(b))
		}()
		return &asl.InvokeOutput{StatusCode: 200, Payload: []byte(`{"registered":true}`)}, nil
	}
}

// silence registers the token and never answers: the event was lost.
func silence() answer { return ok(map[string]any{"registered": true}) }

var plan = map[string]any{"stackName": "byoc-d1", "attempt": 1, "parameters": map[string]any{"VpcCidr": "10.0.0.0/16"}}
var applied = map[string]any{"action": "create", "operation": "CREATE", "stackId": "arn:aws:cloudformation:eu-west-1:111122223333:stack/byoc-d1/1", "requestToken": "rt-1", "status": "CREATE_IN_PROGRESS"}

func runProvision(t *testing.T, script map[string][]answer) (*asl.ExecutionInfo, *provisionLambda, []asl.HistoryEvent) {
	t.Helper()
	return runProvisionWith(t, &provisionLambda{script: script})
}

func runProvisionWith(t *testing.T, lambda *provisionLambda) (*asl.ExecutionInfo, *provisionLambda, []asl.HistoryEvent) {
	t.Helper()
	def, err := workflows.Render(workflows.Provision, map[string]string{workflows.ProvisionFunctionArn: provisionARN})
	if err != nil {
		t.Fatal(err)
	}
	lambda.start = time.Now()
	e := asl.NewEngine(asl.Options{Tasks: lambda, Random: func() float64 { return 0.5 }})
	lambda.engine = e
	m, err := e.CreateStateMachine(asl.CreateStateMachineInput{Name: "provision", Definition: def, RoleARN: "arn:aws:iam::000000000000:role/byoc-states"})
	if err != nil {
		t.Fatalf("the provision workflow was refused: %v", err)
	}
	x, err := e.StartExecution(m.ARN, "d1-attempt", `{"deploymentId":"d1"}`)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Wait(context.Background(), x.ARN)
	if err != nil {
		t.Fatal(err)
	}
	lambda.pending.Wait()
	h, _ := e.History(x.ARN)
	return info, lambda, h
}

func stepNames(calls []step) string {
	var names []string
	for _, c := range calls {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}

func TestProvisionWorkflowRetriesCatchesAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		script := map[string][]answer{
			// Two transient failures: retried after 2×0.5 and 4×0.5 seconds (FULL jitter).
			"prepare": {fails("TransientError", "table busy"), fails("TransientError", "table busy"), ok(plan), ok(plan)},
			"apply":   {ok(applied), ok(applied)},
			"await":   nil, // filled below: needs the Lambda for its goroutines
			"fail":    {ok(map[string]any{"retry": true, "reason": "Cluster: CREATE_FAILED"})},
			"poll":    {ok(map[string]any{"status": "CREATE_COMPLETE", "reason": "", "stackId": applied["stackId"], "outcome": "succeeded"})},
			"record":  {throttled(), ok(map[string]any{"status": "ready"})},
		}
		lambda := &provisionLambda{script: script}
		script["await"] = []answer{
			lambda.stackEvent(40*time.Second, nil, "StackFailed"), // first attempt: the stack rolls back
			silence(), // second attempt: the event is lost; 300 s later the workflow polls
		}
		info, l, history := runProvisionWith(t, lambda)
		if info.Status != asl.StatusSucceeded {
			t.Fatalf("status %s (%s: %s)", info.Status, info.Error, info.Cause)
		}
		want := "prepare prepare prepare apply await fail prepare apply await poll record record"
		if got := stepNames(l.calls); got != want {
			t.Fatalf("steps\n got %s\nwant %s", got, want)
		}
		// Back-off: Prepare retried at +1 s and +3 s; Record's throttle retried after 1 s.
		if l.calls[1].At != time.Second || l.calls[2].At != 3*time.Second {
			t.Errorf("prepare retries at %v and %v, want 1s and 3s", l.calls[1].At, l.calls[2].At)
		}
		// The StackFailed catcher put the error, named by the function, into the input of fail.
		failErr, _ := l.calls[5].Payload["error"].(map[string]any)
		if failErr["Error"] != "StackFailed" || !strings.Contains(failErr["Cause"].(string), "failed to create") {
			t.Errorf("the fail step received error %v", l.calls[5].Payload["error"])
		}
		// The lost event: Poll runs exactly 300 seconds after the second Await started.
		if gap := l.calls[9].At - l.calls[8].At; gap != 300*time.Second {
			t.Errorf("poll ran %v after await, want the 300 s task timeout", gap)
		}
		if gap := l.calls[11].At - l.calls[10].At; gap != time.Second {
			t.Errorf("record retried after %v, want 1s (2 s × 0.5 jitter)", gap)
		}
		// The output keeps every stage's result where ResultPath put it.
		out := map[string]any{}
		if err := json.Unmarshal([]byte(info.Output), &out); err != nil {
			t.Fatal(err)
		}
		if out["deploymentId"] != "d1" || out["record"].(map[string]any)["status"] != "ready" || out["stack"].(map[string]any)["outcome"] != "succeeded" {
			t.Errorf("output %s", info.Output)
		}
		var timedOut, failed int
		for _, ev := range history {
			switch ev.Type {
			case "TaskTimedOut":
				timedOut++
				if ev.TaskTimedOutEventDetails.Error != asl.ErrTimeout || ev.TaskTimedOutEventDetails.Resource != "invoke.waitForTaskToken" {
					t.Errorf("timed out %+v", ev.TaskTimedOutEventDetails)
				}
			case "TaskFailed":
				failed++
			}
		}
		if timedOut != 1 || failed != 4 { // 2 transient + StackFailed + throttle
			t.Errorf("history has %d TaskTimedOut and %d TaskFailed events, want 1 and 4", timedOut, failed)
		}
	})
}

func TestProvisionWorkflowGivesUpThroughMarkFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		info, l, _ := runProvision(t, map[string][]answer{
			"prepare": {ok(plan)},
			// The service keeps throttling: MaxAttempts 6, then the States.ALL catcher.
			"apply": {throttled()},
			"fail":  {ok(map[string]any{"retry": false, "reason": "throttled"})},
		})
		if info.Status != asl.StatusFailed || info.Error != "ProvisionFailed" {
			t.Fatalf("status %s error %s, want FAILED ProvisionFailed", info.Status, info.Error)
		}
		if want := "prepare apply apply apply apply apply apply apply fail"; stepNames(l.calls) != want {
			t.Fatalf("steps\n got %s\nwant %s", stepNames(l.calls), want)
		}
		// Delays 1, 2, 4, 8, 16, 30 s: 2·2^n seconds halved by jitter, the 60 s cap reached last.
		wantAt := []time.Duration{0, 1, 3, 7, 15, 31, 61}
		for i, w := range wantAt {
			if got := l.calls[1+i].At; got != w*time.Second {
				t.Errorf("apply call %d at %v, want %v", i+1, got, w*time.Second)
			}
		}
		errOut, _ := l.calls[8].Payload["error"].(map[string]any)
		if errOut["Error"] != "Lambda.TooManyRequestsException" || !strings.Contains(errOut["Cause"].(string), "Status Code: 429") {
			t.Errorf("MarkFailed received %v", l.calls[8].Payload["error"])
		}
	})
}

func TestProvisionWorkflowCustomErrorIsCaughtNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		info, l, _ := runProvision(t, map[string][]answer{
			"prepare": {fails("InvalidSettings", "VpcCidr overlaps")},
			"fail":    {fails("TransientError", "x"), ok(map[string]any{"retry": false, "reason": "invalid settings"})},
		})
		if info.Status != asl.StatusFailed || info.Error != "ProvisionFailed" {
			t.Fatalf("status %s error %s", info.Status, info.Error)
		}
		// InvalidSettings is not in any retrier: caught at once; MarkFailed's own TransientError is retried.
		if want := "prepare fail fail"; stepNames(l.calls) != want {
			t.Fatalf("steps %q, want %q", stepNames(l.calls), want)
		}
		errOut, _ := l.calls[1].Payload["error"].(map[string]any)
		if errOut["Error"] != "InvalidSettings" || errOut["Cause"] != `{"errorMessage":"VpcCidr overlaps","errorType":"InvalidSettings"}` {
			t.Errorf("MarkFailed received %v", errOut)
		}
	})
}

// The workflow file as committed (placeholders and all) passes validation, so
// `aws stepfunctions validate-state-machine-definition` can check it before a deploy.
func TestProvisionWorkflowValidates(t *testing.T) {
	if diags := asl.ValidateDefinition(workflows.Provision); len(diags) != 0 {
		t.Errorf("the provision workflow has problems: %v", diags)
	}
}
