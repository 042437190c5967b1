package asl

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Go tests for what the conformance data cannot express: the engine's API (idempotency,
// errors and that a refused call changes nothing), task tokens, the injectable clock, the
// observer and exact output shapes.

const passDef = `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`
const waitDef = `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}`

func newTestEngine(t *testing.T, o Options) *Engine {
	t.Helper()
	return NewEngine(o)
}

func mustCreate(t *testing.T, e *Engine, name, def string) *StateMachine {
	t.Helper()
	m, err := e.CreateStateMachine(CreateStateMachineInput{Name: name, Definition: def, RoleARN: testRole})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}

func TestCreateStateMachineIdempotencyAndRefusals(t *testing.T) {
	e := newTestEngine(t, Options{})
	m := mustCreate(t, e, "M", passDef)
	if m.ARN != "arn:aws:states:us-east-1:000000000000:stateMachine:M" {
		t.Errorf("ARN %s", m.ARN)
	}
	again, err := e.CreateStateMachine(CreateStateMachineInput{Name: "M", Definition: passDef, RoleARN: "arn:aws:iam::1:role/Other"})
	if err != nil || again.ARN != m.ARN || !again.CreationDate.Equal(m.CreationDate) || again.RoleARN != testRole {
		t.Errorf("creating the same machine again = %+v, %v; want the existing one, role unchanged", again, err)
	}
	_, err = e.CreateStateMachine(CreateStateMachineInput{Name: "M", Definition: waitDef, RoleARN: testRole})
	wantCode(t, err, CodeStateMachineAlreadyExists)

	refusals := []struct {
		in   CreateStateMachineInput
		code string
	}{
		{CreateStateMachineInput{Name: "bad name", Definition: passDef, RoleARN: testRole}, CodeInvalidName},
		{CreateStateMachineInput{Name: "", Definition: passDef, RoleARN: testRole}, CodeInvalidName},
		{CreateStateMachineInput{Name: strings.Repeat("n", 81), Definition: passDef, RoleARN: testRole}, CodeInvalidName},
		{CreateStateMachineInput{Name: "X", Definition: passDef, RoleARN: "role"}, CodeInvalidArn},
		{CreateStateMachineInput{Name: "X", Definition: passDef, RoleARN: testRole, Type: "EXPRESS"}, CodeStateMachineTypeNotSupported},
		{CreateStateMachineInput{Name: "X", Definition: passDef, RoleARN: testRole, Type: "FAST"}, CodeValidation},
		{CreateStateMachineInput{Name: "X", Definition: `{"StartAt":"A"}`, RoleARN: testRole}, CodeInvalidDefinition},
	}
	for _, r := range refusals {
		_, err := e.CreateStateMachine(r.in)
		wantCode(t, err, r.code)
	}
	if n := len(e.ListStateMachines()); n != 1 {
		t.Errorf("refused creations left %d machines, want 1", n)
	}
}

func TestInvalidDefinitionMessageNamesTheField(t *testing.T) {
	e := newTestEngine(t, Options{})
	_, err := e.CreateStateMachine(CreateStateMachineInput{Name: "M", RoleARN: testRole,
		Definition: `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f"},"Retry":[{"ErrorEquals":["E"],"MaxAttempts":-2}],"End":true}}}`})
	wantCode(t, err, CodeInvalidDefinition)
	if !strings.Contains(err.Error(), "/States/T/Retry/0/MaxAttempts") || !strings.Contains(err.Error(), "between 0 and") {
		t.Errorf("message %q does not name the field and the rule", err)
	}
}

func TestUpdateKeepsRunningExecutionsOnTheirDefinition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, Options{})
		m := mustCreate(t, e, "M", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":10,"Next":"P"},"P":{"Type":"Pass","Result":"old","End":true}}}`)
		x, err := e.StartExecution(m.ARN, "first", "")
		if err != nil {
			t.Fatal(err)
		}
		newDef := `{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"new","End":true}}}`
		updated, err := e.UpdateStateMachine(m.ARN, &newDef, nil, nil)
		if err != nil || updated.Definition.Source() != newDef || !updated.UpdateDate.After(m.CreationDate) && !updated.UpdateDate.Equal(m.CreationDate) {
			t.Fatalf("update = %v", err)
		}
		bad := `{"StartAt":"Nope","States":{"P":{"Type":"Pass","End":true}}}`
		_, err = e.UpdateStateMachine(m.ARN, &bad, nil, nil)
		wantCode(t, err, CodeInvalidDefinition)
		if d, _ := e.DescribeStateMachine(m.ARN); d.Definition.Source() != newDef {
			t.Errorf("a refused update changed the definition")
		}
		_, err = e.UpdateStateMachine(m.ARN, nil, nil, nil)
		wantCode(t, err, "MissingRequiredParameter")
		first, _ := e.Wait(context.Background(), x.ARN)
		second, _ := e.StartExecution(m.ARN, "second", "")
		second, _ = e.Wait(context.Background(), second.ARN)
		if first.Output != `"old"` || second.Output != `"new"` {
			t.Errorf("outputs %s and %s, want \"old\" then \"new\"", first.Output, second.Output)
		}
	})
}

func TestStartExecutionIdempotencyByName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, Options{})
		m := mustCreate(t, e, "M", waitDef)
		a, err := e.StartExecution(m.ARN, "job", `{"n":1}`)
		if err != nil {
			t.Fatal(err)
		}
		if a.ARN != "arn:aws:states:us-east-1:000000000000:execution:M:job" {
			t.Errorf("execution ARN %s", a.ARN)
		}
		b, err := e.StartExecution(m.ARN, "job", `{"n":1}`)
		if err != nil || b.ARN != a.ARN || !b.StartDate.Equal(a.StartDate) {
			t.Errorf("same name and input while running = %+v, %v; want the same execution", b, err)
		}
		_, err = e.StartExecution(m.ARN, "job", `{"n":2}`)
		wantCode(t, err, CodeExecutionAlreadyExists)
		if _, err := e.Wait(context.Background(), a.ARN); err != nil {
			t.Fatal(err)
		}
		_, err = e.StartExecution(m.ARN, "job", `{"n":1}`)
		wantCode(t, err, CodeExecutionAlreadyExists) // AWS: a closed execution's name is taken
		xs, _ := e.ListExecutions(m.ARN, "")
		if len(xs) != 1 {
			t.Errorf("%d executions, want 1", len(xs))
		}
	})
}

func TestStartExecutionRefusals(t *testing.T) {
	e := newTestEngine(t, Options{})
	m := mustCreate(t, e, "M", passDef)
	cases := []struct {
		machine, name, input, code string
	}{
		{m.ARN, "x", `{"a":`, CodeInvalidExecutionInput},
		{m.ARN, "x", `"` + strings.Repeat("a", maxPayloadBytes) + `"`, CodeInvalidExecutionInput},
		{m.ARN, "has space", "{}", CodeInvalidName},
		{m.ARN, "a/b", "{}", CodeInvalidName},
		{"arn:aws:states:us-east-1:000000000000:stateMachine:Nope", "x", "{}", CodeStateMachineDoesNotExist},
		{"not-an-arn", "x", "{}", CodeInvalidArn},
	}
	for _, c := range cases {
		_, err := e.StartExecution(c.machine, c.name, c.input)
		wantCode(t, err, c.code)
	}
	if xs, _ := e.ListExecutions(m.ARN, ""); len(xs) != 0 {
		t.Errorf("refused starts created %d executions", len(xs))
	}
}

func TestListDescribeStopAndDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, Options{})
		m := mustCreate(t, e, "M", waitDef)
		a, _ := e.StartExecution(m.ARN, "a", "")
		time.Sleep(time.Second)
		b, _ := e.StartExecution(m.ARN, "b", `{"k":"v"}`)
		stopped, err := e.StopExecution(a.ARN, "Operator", "no longer needed")
		if err != nil || stopped.IsZero() {
			t.Fatalf("stop = %v, %v", stopped, err)
		}
		_, err = e.StopExecution(a.ARN, "", "")
		wantCode(t, err, CodeValidation)
		info, _ := e.DescribeExecution(a.ARN)
		if info.Status != StatusAborted || info.Error != "Operator" || info.Cause != "no longer needed" || info.StopDate.IsZero() {
			t.Errorf("stopped execution %+v", info)
		}
		h, _ := e.History(a.ARN)
		if last := h[len(h)-1]; last.Type != EventExecutionAborted || last.ExecutionAbortedEventDetails.Error != "Operator" {
			t.Errorf("last event %+v", last)
		}
		all, _ := e.ListExecutions(m.ARN, "")
		if len(all) != 2 || all[0].Name != "b" || all[1].Name != "a" {
			t.Errorf("list %+v, want b then a (newest first)", all)
		}
		running, _ := e.ListExecutions(m.ARN, StatusRunning)
		if len(running) != 1 || running[0].ARN != b.ARN || running[0].Input != `{"k":"v"}` {
			t.Errorf("running %+v", running)
		}
		wantCode(t, e.DeleteStateMachine("arn:aws:states:us-east-1:000000000000:activity:M"), CodeInvalidArn)
		if _, err := e.DescribeStateMachine(m.ARN); err != nil {
			t.Fatalf("a refused delete removed the machine: %v", err)
		}
		if err := e.DeleteStateMachine(m.ARN); err != nil {
			t.Fatal(err)
		}
		_, err = e.DescribeStateMachine(m.ARN)
		wantCode(t, err, CodeStateMachineDoesNotExist)
		_, err = e.ListExecutions(m.ARN, "")
		wantCode(t, err, CodeStateMachineDoesNotExist)
		done, _ := e.Wait(context.Background(), b.ARN)
		if done.Status != StatusSucceeded {
			t.Errorf("an execution of a deleted machine ended %s, want SUCCEEDED", done.Status)
		}
		_, err = e.DescribeExecution("arn:aws:states:us-east-1:000000000000:execution:M:zzz")
		wantCode(t, err, CodeExecutionDoesNotExist)
		_, err = e.DescribeExecution("garbage")
		wantCode(t, err, CodeInvalidArn)
	})
}

// tokenWorld is a Lambda that hands out the task tokens it receives.
func tokenWorld(tokens chan<- string) Tasks {
	return TaskFuncs{InvokeFunc: func(ctx context.Context, in *InvokeInput) (*InvokeOutput, error) {
		v, _ := ParseJSON(in.Payload)
		tokens <- findToken(v)
		return &InvokeOutput{StatusCode: 200, Payload: []byte("{}")}, nil
	}}
}

const tokenDef = `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
  "Parameters":{"FunctionName":"fn","Payload":{"token.$":"$$.Task.Token"}},"TimeoutSeconds":300,"End":true}}}`

func TestTaskTokenAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tokens := make(chan string, 4)
		e := newTestEngine(t, Options{Tasks: tokenWorld(tokens)})
		m := mustCreate(t, e, "M", tokenDef)
		x, _ := e.StartExecution(m.ARN, "one", "")
		token := <-tokens
		if len(token) > maxTokenLength || !strings.HasPrefix(token, tokenPrefix) {
			t.Fatalf("token %q", token)
		}
		wantCode(t, e.SendTaskSuccess("nonsense", "{}"), CodeInvalidToken)
		wantCode(t, e.SendTaskSuccess(tokenPrefix+strings.Repeat("A", 64), "{}"), CodeTaskDoesNotExist)
		wantCode(t, e.SendTaskSuccess(token, `{"broken":`), CodeInvalidOutput)
		wantCode(t, e.SendTaskFailure(token, strings.Repeat("e", 257), ""), CodeValidation)
		if info, _ := e.DescribeExecution(x.ARN); info.Status != StatusRunning {
			t.Fatalf("refused answers ended the task: %s", info.Status)
		}
		if err := e.SendTaskHeartbeat(token); err != nil {
			t.Fatal(err)
		}
		if err := e.SendTaskSuccess(token, `{"ok":1}`); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.SendTaskSuccess(token, `{}`), CodeTaskTimedOut)
		wantCode(t, e.SendTaskHeartbeat(token), CodeTaskTimedOut)
		info, _ := e.Wait(context.Background(), x.ARN)
		if info.Status != StatusSucceeded || info.Output != `{"ok":1}` {
			t.Errorf("execution %+v", info)
		}

		// A token whose task timed out answers TaskTimedOut.
		y, _ := e.StartExecution(m.ARN, "two", "")
		late := <-tokens
		info, _ = e.Wait(context.Background(), y.ARN)
		if info.Status != StatusFailed || info.Error != ErrTimeout {
			t.Fatalf("execution %+v, want a States.Timeout failure", info)
		}
		wantCode(t, e.SendTaskSuccess(late, `{}`), CodeTaskTimedOut)
		wantCode(t, e.SendTaskFailure(late, "E", "c"), CodeTaskTimedOut)
	})
}

func TestManualClockDrivesWaits(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := NewManualClock(start)
	e := newTestEngine(t, Options{Clock: clock})
	m := mustCreate(t, e, "M", waitDef)
	x, _ := e.StartExecution(m.ARN, "x", "")
	if !x.StartDate.Equal(start) {
		t.Errorf("start %v, want the clock's %v", x.StartDate, start)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := clock.WaitForPending(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Second)
	if info, _ := e.DescribeExecution(x.ARN); info.Status != StatusRunning {
		t.Fatalf("the wait ended after 59 of 60 seconds")
	}
	clock.Advance(time.Second)
	info, err := e.Wait(ctx, x.ARN)
	if err != nil || info.Status != StatusSucceeded || !info.StopDate.Equal(start.Add(time.Minute)) {
		t.Errorf("execution %+v, %v", info, err)
	}
}

func TestObserverSeesEveryEventInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var seen []HistoryEvent
		e := newTestEngine(t, Options{Observer: func(ev HistoryEvent) {
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		}})
		m := mustCreate(t, e, "M", `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Succeed"}}}`)
		x, _ := e.StartExecution(m.ARN, "x", "")
		e.Wait(context.Background(), x.ARN)
		h, _ := e.History(x.ARN)
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != len(h) {
			t.Fatalf("observer saw %d events, history has %d", len(seen), len(h))
		}
		for i := range h {
			if seen[i].ID != h[i].ID || seen[i].Type != h[i].Type || seen[i].ExecutionArn != x.ARN {
				t.Errorf("event %d: observer %s/%d, history %s/%d", i, seen[i].Type, seen[i].ID, h[i].Type, h[i].ID)
			}
		}
		want := []string{"ExecutionStarted", "PassStateEntered", "PassStateExited", "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"}
		var got []string
		for _, ev := range seen {
			got = append(got, ev.Type)
		}
		if !slices.Equal(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

func TestLambdaInvokeOutputShape(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []*InvokeInput
		e := newTestEngine(t, Options{Tasks: TaskFuncs{InvokeFunc: func(ctx context.Context, in *InvokeInput) (*InvokeOutput, error) {
			got = append(got, in)
			if in.InvocationType == "Event" {
				return &InvokeOutput{StatusCode: 202}, nil
			}
			return &InvokeOutput{StatusCode: 200, Payload: []byte(`{"a":1}`), ExecutedVersion: "$LATEST", RequestID: "r"}, nil
		}}})
		def := `{"StartAt":"Sync","States":{
		  "Sync":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"fn","Qualifier":"live"},"ResultPath":"$.sync","Next":"Async"},
		  "Async":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"fn","InvocationType":"Event","Payload":{"x":1}},"ResultPath":"$.async","End":true}}}`
		m := mustCreate(t, e, "M", def)
		x, _ := e.StartExecution(m.ARN, "x", "")
		info, _ := e.Wait(context.Background(), x.ARN)
		out := MustParseJSON(info.Output).(*Object)
		sync, _ := out.Get("sync")
		var keys []string
		for _, mem := range sync.(*Object).Members() {
			keys = append(keys, mem.Key)
		}
		if want := []string{"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"}; !slices.Equal(keys, want) {
			t.Errorf("lambda:invoke output members %v, want %v", keys, want)
		}
		async, _ := out.Get("async")
		status, _ := async.(*Object).Get("StatusCode")
		payload, _ := async.(*Object).Get("Payload")
		if status != Number("202") || payload != "" {
			t.Errorf("an Event invocation gave StatusCode %v and Payload %v, want 202 and \"\"", status, payload)
		}
		if got[0].Qualifier != "live" || got[1].InvocationType != "Event" || string(got[1].Payload) != `{"x":1}` {
			t.Errorf("requests %+v %+v", got[0], got[1])
		}
	})
}

func TestStoppingAParentStopsItsSyncChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, Options{})
		child := mustCreate(t, e, "Child", waitDef)
		parent := mustCreate(t, e, "Parent", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2",
		  "Parameters":{"StateMachineArn":"`+child.ARN+`","Name":"kid"},"End":true}}}`)
		x, _ := e.StartExecution(parent.ARN, "p", "")
		time.Sleep(5 * time.Second)
		if _, err := e.StopExecution(x.ARN, "", ""); err != nil {
			t.Fatal(err)
		}
		kid, err := e.Wait(context.Background(), "arn:aws:states:us-east-1:000000000000:execution:Child:kid")
		if err != nil || kid.Status != StatusAborted {
			t.Errorf("child %+v, %v; want ABORTED", kid, err)
		}
	})
}

func TestParallelBranchEventsLinkToTheirBranch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEngine(t, Options{})
		m := mustCreate(t, e, "M", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
		  {"StartAt":"A","States":{"A":{"Type":"Wait","Seconds":1,"End":true}}},
		  {"StartAt":"B","States":{"B":{"Type":"Wait","Seconds":2,"End":true}}}]}}}`)
		x, _ := e.StartExecution(m.ARN, "x", "")
		e.Wait(context.Background(), x.ARN)
		h, _ := e.History(x.ARN)
		byID := map[int64]HistoryEvent{}
		var started int64
		for _, ev := range h {
			byID[ev.ID] = ev
			if ev.Type == "ParallelStateStarted" {
				started = ev.ID
			}
		}
		for _, ev := range h {
			if ev.Type == "WaitStateExited" {
				entered := byID[ev.PreviousEventID]
				if entered.Type != "WaitStateEntered" || entered.StateEnteredEventDetails.Name != ev.StateExitedEventDetails.Name {
					t.Errorf("%s of %s points to %+v", ev.Type, ev.StateExitedEventDetails.Name, entered)
				}
				if entered.PreviousEventID != started {
					t.Errorf("the branch's first event points to %d, want ParallelStateStarted %d", entered.PreviousEventID, started)
				}
			}
		}
	})
}
