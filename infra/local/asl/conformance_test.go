package asl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The conformance suite: every case in testdata/conformance/*.json is a definition, an input,
// how the task resources behave, and what AWS Step Functions does with them (per the part of
// the States Language specification or the AWS developer guide named in "spec"). Each case
// runs in a synctest bubble, so waits, back-off and timeouts take no real time, and elapsed
// virtual time can be asserted exactly.

type conformanceCase struct {
	Name       string                     `json:"name"`
	Spec       string                     `json:"spec"`
	Definition json.RawMessage            `json:"definition"`
	Text       string                     `json:"definitionText"` // a definition that is not JSON at all
	Machines   map[string]json.RawMessage `json:"machines"`       // more state machines, by name, created first
	Input      json.RawMessage            `json:"input"`
	Tasks      map[string][]behaviour     `json:"tasks"` // by function name, queue URL, or "events"
	Invalid    []wantDiagnostic           `json:"invalid"`
	Expect     *expectation               `json:"expect"`
}

type wantDiagnostic struct {
	Code            string `json:"code"`
	Location        string `json:"location"`
	MessageContains string `json:"messageContains"`
}

type expectation struct {
	Status         string                       `json:"status"`
	Output         json.RawMessage              `json:"output"`
	OutputRegex    string                       `json:"outputRegex"`
	Error          string                       `json:"error"`
	Cause          *string                      `json:"cause"`
	CauseContains  string                       `json:"causeContains"`
	ElapsedSeconds *float64                     `json:"elapsedSeconds"`
	Calls          map[string]int               `json:"calls"`
	Requests       map[string][]json.RawMessage `json:"requests"`        // payloads/bodies each resource received, in order
	History        []string                     `json:"history"`         // exact sequence of event types
	HistoryHas     []string                     `json:"historyContains"` // event types that must appear
}

// behaviour is what a task resource does on one call; the last one repeats.
type behaviour struct {
	Return        json.RawMessage `json:"return"`
	FunctionError string          `json:"functionError"` // errorType of an Unhandled function error
	Message       string          `json:"message"`
	NoErrorType   bool            `json:"noErrorType"`
	ServiceError  string          `json:"serviceError"`        // error code of a service error answer
	UncodedError  bool            `json:"uncodedServiceError"` // a service error answer without a code
	Status        int             `json:"status"`
	ClientError   string          `json:"clientError"`
	SleepSeconds  float64         `json:"sleepSeconds"`
	SendSuccess   json.RawMessage `json:"sendTaskSuccess"` // answer the task token later with this output
	SendFailure   *struct {
		Error string `json:"error"`
		Cause string `json:"cause"`
	} `json:"sendTaskFailure"`
	AfterSeconds   float64 `json:"afterSeconds"`   // when to answer the token
	Heartbeats     int     `json:"heartbeats"`     // heartbeats to send before answering
	HeartbeatEvery float64 `json:"heartbeatEvery"` // seconds between them
	FailedEntries  int     `json:"failedEntries"`  // PutEvents entries to fail
}

func loadCases(t *testing.T) map[string][]conformanceCase {
	t.Helper()
	files, err := filepath.Glob("testdata/conformance/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files: %v", err)
	}
	out := map[string][]conformanceCase{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var cases []conformanceCase
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cases); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = cases
	}
	return out
}

func TestConformance(t *testing.T) {
	for file, cases := range loadCases(t) {
		for _, c := range cases {
			t.Run(file+"/"+c.Name, func(t *testing.T) {
				if c.Spec == "" {
					t.Fatal("every case must name the part of the specification it checks")
				}
				if c.Text != "" {
					c.Definition = json.RawMessage(c.Text)
				}
				if (c.Expect == nil) == (c.Invalid == nil) {
					t.Fatal("a case must have exactly one of expect and invalid")
				}
				synctest.Test(t, func(t *testing.T) { runCase(t, c) })
			})
		}
	}
}

// fakeWorld plays Lambda, SQS and EventBridge from the case's behaviours.
type fakeWorld struct {
	t        *testing.T
	engine   *Engine
	mu       sync.Mutex
	behave   map[string][]behaviour
	calls    map[string]int
	requests map[string][]string
	workers  sync.WaitGroup // goroutines answering task tokens
}

func (w *fakeWorld) next(key string) (behaviour, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list, ok := w.behave[key]
	if !ok {
		for k, l := range w.behave {
			if strings.HasSuffix(key, ":function:"+k) || strings.HasSuffix(key, "/"+k) {
				key, list, ok = k, l, true
				break
			}
		}
	}
	if !ok || len(list) == 0 {
		return behaviour{}, false
	}
	n := w.calls[key]
	w.calls[key] = n + 1
	return list[min(n, len(list)-1)], true
}

func (w *fakeWorld) record(key, body string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.behave {
		if key == k || strings.HasSuffix(key, ":function:"+k) || strings.HasSuffix(key, "/"+k) {
			key = k
		}
	}
	w.requests[key] = append(w.requests[key], body)
}

// tokenPattern finds a task token wherever a request carries it.
var tokenPattern = regexp.MustCompile(tokenPrefix + `[A-Za-z0-9_-]+`)

// findToken looks for the task token in a request body.
func findToken(v any) string {
	switch t := v.(type) {
	case string:
		if strings.HasPrefix(t, tokenPrefix) {
			return t
		}
	case *Object:
		for _, m := range t.Members() {
			if s := findToken(m.Value); s != "" {
				return s
			}
		}
	case []any:
		for _, e := range t {
			if s := findToken(e); s != "" {
				return s
			}
		}
	}
	return ""
}

// act performs the common parts of a behaviour: sleeping and answering a token.
func (w *fakeWorld) act(ctx context.Context, b behaviour, body string) error {
	if b.SleepSeconds > 0 {
		select {
		case <-time.After(time.Duration(b.SleepSeconds * float64(time.Second))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b.SendSuccess == nil && b.SendFailure == nil {
		return nil
	}
	token := tokenPattern.FindString(body)
	if token == "" {
		w.t.Errorf("the request %s carries no task token", body)
		return nil
	}
	w.workers.Add(1)
	go func() {
		defer w.workers.Done()
		for range b.Heartbeats {
			time.Sleep(time.Duration(b.HeartbeatEvery * float64(time.Second)))
			if err := w.engine.SendTaskHeartbeat(token); err != nil {
				w.t.Errorf("SendTaskHeartbeat: %v", err)
			}
		}
		time.Sleep(time.Duration(b.AfterSeconds * float64(time.Second)))
		var err error
		if b.SendSuccess != nil {
			err = w.engine.SendTaskSuccess(token, string(b.SendSuccess))
		} else {
			err = w.engine.SendTaskFailure(token, b.SendFailure.Error, b.SendFailure.Cause)
		}
		var ae *APIError
		if err != nil && !(asAPIError(err, &ae) && ae.Code == CodeTaskTimedOut) {
			w.t.Errorf("answering the task token: %v", err)
		}
	}()
	return nil
}

func asAPIError(err error, target **APIError) bool {
	ae, ok := err.(*APIError)
	if ok {
		*target = ae
	}
	return ok
}

func (w *fakeWorld) serviceErr(b behaviour) error {
	if b.UncodedError {
		return &ServiceError{Message: "Internal Server Error", StatusCode: 500}
	}
	if b.ServiceError != "" {
		return &ServiceError{Code: b.ServiceError, Message: "simulated " + b.ServiceError, StatusCode: b.Status, RequestID: "req-1"}
	}
	if b.ClientError != "" {
		return fmt.Errorf("%s", b.ClientError)
	}
	return nil
}

func (w *fakeWorld) tasks() Tasks {
	return TaskFuncs{
		InvokeFunc: func(ctx context.Context, in *InvokeInput) (*InvokeOutput, error) {
			w.record(in.FunctionName, string(in.Payload))
			b, ok := w.next(in.FunctionName)
			if !ok {
				return nil, &ServiceError{Code: "ResourceNotFoundException", Message: "Function not found: " + in.FunctionName, StatusCode: 404}
			}
			if err := w.serviceErr(b); err != nil {
				return nil, err
			}
			if err := w.act(ctx, b, string(in.Payload)); err != nil {
				return nil, err
			}
			if b.FunctionError != "" {
				payload := fmt.Sprintf(`{"errorMessage":%q,"errorType":%q}`, b.Message, b.FunctionError)
				if b.NoErrorType {
					payload = fmt.Sprintf(`{"errorMessage":%q}`, b.Message)
				}
				return &InvokeOutput{StatusCode: 200, FunctionError: "Unhandled", Payload: []byte(payload)}, nil
			}
			ret := b.Return
			if ret == nil {
				ret = json.RawMessage("null")
			}
			return &InvokeOutput{StatusCode: 200, Payload: ret, ExecutedVersion: "$LATEST", RequestID: "req-1"}, nil
		},
		SendMessageFunc: func(ctx context.Context, in *SendMessageInput) (*SendMessageOutput, error) {
			w.record(in.QueueURL, in.MessageBody)
			b, ok := w.next(in.QueueURL)
			if !ok {
				return nil, &ServiceError{Code: "QueueDoesNotExist", Message: "The specified queue does not exist.", StatusCode: 400}
			}
			if err := w.serviceErr(b); err != nil {
				return nil, err
			}
			if err := w.act(ctx, b, in.MessageBody); err != nil {
				return nil, err
			}
			return &SendMessageOutput{MessageID: "msg-1", MD5OfMessageBody: "md5", RequestID: "req-1"}, nil
		},
		PutEventsFunc: func(ctx context.Context, entries []EventEntry) (*PutEventsOutput, error) {
			var bodies []string
			for _, e := range entries {
				bodies = append(bodies, fmt.Sprintf(`{"Source":%q,"DetailType":%q,"Detail":%q,"EventBusName":%q}`, e.Source, e.DetailType, e.Detail, e.EventBusName))
			}
			w.record("events", "["+strings.Join(bodies, ",")+"]")
			b, ok := w.next("events")
			if !ok {
				b = behaviour{}
			}
			if err := w.serviceErr(b); err != nil {
				return nil, err
			}
			for _, e := range entries {
				if err := w.act(ctx, b, e.Detail); err != nil {
					return nil, err
				}
			}
			out := &PutEventsOutput{}
			for i := range entries {
				if i < b.FailedEntries {
					out.Entries = append(out.Entries, PutEventsResultEntry{ErrorCode: "InternalFailure", ErrorMessage: "simulated"})
					out.FailedEntryCount++
				} else {
					out.Entries = append(out.Entries, PutEventsResultEntry{EventID: fmt.Sprintf("event-%d", i)})
				}
			}
			return out, nil
		},
	}
}

const testRole = "arn:aws:iam::000000000000:role/StatesRole"

func runCase(t *testing.T, c conformanceCase) {
	w := &fakeWorld{t: t, behave: c.Tasks, calls: map[string]int{}, requests: map[string][]string{}}
	if w.behave == nil {
		w.behave = map[string][]behaviour{}
	}
	e := NewEngine(Options{Tasks: w.tasks(), Random: func() float64 { return 0.5 }})
	w.engine = e
	for name, def := range c.Machines {
		if _, err := e.CreateStateMachine(CreateStateMachineInput{Name: name, Definition: string(def), RoleARN: testRole}); err != nil {
			t.Fatalf("machine %s: %v", name, err)
		}
	}
	created, err := e.CreateStateMachine(CreateStateMachineInput{Name: "Case", Definition: string(c.Definition), RoleARN: testRole})
	if c.Invalid != nil {
		checkInvalid(t, e, c, err)
		return
	}
	if err != nil {
		t.Fatalf("the definition was refused: %v", err)
	}
	input := "{}"
	if c.Input != nil {
		input = string(c.Input)
	}
	started, err := e.StartExecution(created.ARN, "run", input)
	if err != nil {
		t.Fatal(err)
	}
	final, err := e.Wait(context.Background(), started.ARN)
	if err != nil {
		t.Fatal(err)
	}
	w.workers.Wait()
	// Executions the case started without waiting for them run on; let them finish.
	for _, m := range e.ListStateMachines() {
		xs, _ := e.ListExecutions(m.ARN, "")
		for _, x := range xs {
			if _, err := e.Wait(context.Background(), x.ARN); err != nil {
				t.Fatal(err)
			}
		}
	}
	synctest.Wait()
	x := c.Expect
	history, _ := e.History(started.ARN)
	var types []string
	for _, ev := range history {
		types = append(types, ev.Type)
	}
	want := x.Status
	if want == "" {
		want = StatusSucceeded
	}
	if final.Status != want {
		t.Fatalf("status %s (%s: %s), want %s\nhistory: %v", final.Status, final.Error, final.Cause, want, types)
	}
	if x.Output != nil {
		wantOut := MustParseJSON(string(x.Output))
		gotOut, _ := ParseJSON([]byte(final.Output))
		if !Equal(wantOut, gotOut) {
			t.Errorf("output\n got %s\nwant %s", final.Output, MarshalJSON(wantOut))
		}
	}
	if x.OutputRegex != "" && !regexp.MustCompile(x.OutputRegex).MatchString(final.Output) {
		t.Errorf("output %s does not match %s", final.Output, x.OutputRegex)
	}
	if x.Error != "" && final.Error != x.Error {
		t.Errorf("error %q, want %q (cause %q)", final.Error, x.Error, final.Cause)
	}
	if x.Cause != nil && final.Cause != *x.Cause {
		t.Errorf("cause\n got %q\nwant %q", final.Cause, *x.Cause)
	}
	if x.CauseContains != "" && !strings.Contains(final.Cause, x.CauseContains) {
		t.Errorf("cause %q does not contain %q", final.Cause, x.CauseContains)
	}
	if x.ElapsedSeconds != nil {
		got := final.StopDate.Sub(final.StartDate).Seconds()
		if got != *x.ElapsedSeconds {
			t.Errorf("the execution took %v virtual seconds, want %v", got, *x.ElapsedSeconds)
		}
	}
	for key, n := range x.Calls {
		if w.calls[key] != n {
			t.Errorf("%s was called %d times, want %d", key, w.calls[key], n)
		}
	}
	for key, bodies := range x.Requests {
		got := w.requests[key]
		if len(got) != len(bodies) {
			t.Errorf("%s received %d requests %v, want %d", key, len(got), got, len(bodies))
			continue
		}
		for i, b := range bodies {
			gv, err := ParseJSON([]byte(got[i]))
			if err != nil || !Equal(gv, MustParseJSON(string(b))) {
				t.Errorf("%s request %d\n got %s\nwant %s", key, i, got[i], b)
			}
		}
	}
	if x.History != nil && !slices.Equal(types, x.History) {
		t.Errorf("history\n got %v\nwant %v", types, x.History)
	}
	for _, h := range x.HistoryHas {
		if !slices.Contains(types, h) {
			t.Errorf("history %v has no %s", types, h)
		}
	}
	checkHistoryLinks(t, history)
}

func checkInvalid(t *testing.T, e *Engine, c conformanceCase, err error) {
	ae, ok := err.(*APIError)
	if !ok || ae.Code != CodeInvalidDefinition {
		t.Fatalf("CreateStateMachine = %v, want InvalidDefinition", err)
	}
	diags := ValidateDefinition(string(c.Definition))
	for _, want := range c.Invalid {
		found := false
		for _, d := range diags {
			if d.Code == want.Code && d.Location == want.Location && strings.Contains(d.Message, want.MessageContains) {
				found = true
			}
			if !strings.Contains(ae.Message, d.String()) {
				t.Errorf("the InvalidDefinition message does not carry %q", d.String())
			}
		}
		if !found {
			t.Errorf("no diagnostic %s at %s containing %q; got %v", want.Code, want.Location, want.MessageContains, diags)
		}
	}
	for _, m := range e.ListStateMachines() {
		if m.Name == "Case" {
			t.Errorf("a refused definition created a state machine")
		}
	}
}

// checkHistoryLinks asserts what holds for every AWS history: ids count up from 1, every
// previousEventId points backwards, and the last event closes the execution.
func checkHistoryLinks(t *testing.T, h []HistoryEvent) {
	t.Helper()
	for i, ev := range h {
		if ev.ID != int64(i+1) {
			t.Fatalf("event %d has id %d", i, ev.ID)
		}
		if ev.PreviousEventID < 0 || ev.PreviousEventID >= ev.ID {
			t.Errorf("event %d (%s) points to %d", ev.ID, ev.Type, ev.PreviousEventID)
		}
	}
	if len(h) == 0 || h[0].Type != EventExecutionStarted {
		t.Fatalf("the history does not start with ExecutionStarted")
	}
	last := h[len(h)-1].Type
	if !strings.HasPrefix(last, "Execution") || last == EventExecutionStarted {
		t.Errorf("the history ends with %s", last)
	}
}
