package workflows_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/byocloud/byoc/infra/workflows"
)

const fnARN = "arn:aws:lambda:us-east-1:123456789012:function:byoc-provision"

type state struct {
	Type           string
	Resource       string
	Next           string
	End            bool
	Default        string
	TimeoutSeconds int
	Parameters     map[string]any
	Choices        []struct{ Next string }
	Retry          []struct {
		ErrorEquals     []string
		IntervalSeconds int
		BackoffRate     float64
		MaxAttempts     int
		JitterStrategy  string
	}
	Catch []struct {
		ErrorEquals []string
		Next        string
		ResultPath  string
	}
}

type machine struct {
	StartAt string
	States  map[string]state
}

func rendered(t *testing.T) machine {
	t.Helper()
	def, err := workflows.Render(workflows.Provision, map[string]string{workflows.ProvisionFunctionArn: fnARN})
	if err != nil {
		t.Fatal(err)
	}
	var m machine
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		t.Fatalf("rendered definition is not JSON: %v", err)
	}
	return m
}

func (s state) targets() []string {
	var out []string
	for _, n := range []string{s.Next, s.Default} {
		if n != "" {
			out = append(out, n)
		}
	}
	for _, c := range s.Choices {
		out = append(out, c.Next)
	}
	for _, c := range s.Catch {
		out = append(out, c.Next)
	}
	return out
}

func TestProvisionIsAConnectedStateMachine(t *testing.T) {
	m := rendered(t)
	if _, ok := m.States[m.StartAt]; !ok {
		t.Fatalf("StartAt %q is not a state", m.StartAt)
	}
	reached := map[string]bool{}
	queue := []string{m.StartAt}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if reached[name] {
			continue
		}
		reached[name] = true
		s, ok := m.States[name]
		if !ok {
			t.Fatalf("transition to undefined state %q", name)
		}
		terminal := s.Type == "Succeed" || s.Type == "Fail" || s.End
		if !terminal && s.Type != "Choice" && s.Next == "" {
			t.Errorf("state %s has neither Next nor End", name)
		}
		queue = append(queue, s.targets()...)
	}
	for name := range m.States {
		if !reached[name] {
			t.Errorf("state %s is unreachable", name)
		}
	}
	for _, must := range []string{"Prepare", "Apply", "Await", "Poll", "Record", "Ready", "RecordFailure", "MarkFailed", "ProvisionFailed"} {
		if _, ok := m.States[must]; !ok {
			t.Errorf("state %s is missing", must)
		}
	}
}

// Every task calls the provision Lambda, retries throttling and transient errors with full
// jitter, and leaves through MarkFailed on anything unexpected, so no error can strand a
// deployment in provisioning.
func TestEveryTaskRetriesTransientErrorsAndCatchesTheRest(t *testing.T) {
	m := rendered(t)
	for name, s := range m.States {
		if s.Type != "Task" {
			continue
		}
		if s.Parameters["FunctionName"] != fnARN {
			t.Errorf("%s: FunctionName %v, want the substituted provision ARN", name, s.Parameters["FunctionName"])
		}
		payload, _ := s.Parameters["Payload"].(map[string]any)
		if payload["step"] == nil || payload["deploymentId.$"] != "$.deploymentId" || payload["execution.$"] != "$$.Execution.Id" {
			t.Errorf("%s: payload %v lacks step, deploymentId or execution", name, payload)
		}
		if len(s.Retry) == 0 {
			t.Errorf("%s: no Retry", name)
			continue
		}
		r := s.Retry[0]
		// A crashed or timed-out invocation (Runtime.ExitError, Sandbox.Timedout; Lambda.Unknown
		// when the error has no type) is retried too: every step is idempotent, and failing the
		// deployment for a recycled sandbox was a defect `make chaos` found (rollback-retry, crash, seed 1).
		for _, e := range []string{"TransientError", "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException",
			"Lambda.Unknown", "Runtime.ExitError", "Sandbox.Timedout"} {
			if !slices.Contains(r.ErrorEquals, e) {
				t.Errorf("%s: Retry lacks %s", name, e)
			}
		}
		if r.JitterStrategy != "FULL" || r.BackoffRate < 1.5 || r.MaxAttempts < 3 || r.IntervalSeconds < 1 {
			t.Errorf("%s: retry policy %+v is not a jittered backoff", name, r)
		}
		last := s.Catch[len(s.Catch)-1]
		if !slices.Equal(last.ErrorEquals, []string{"States.ALL"}) {
			t.Errorf("%s: last Catch is %v, want States.ALL", name, last.ErrorEquals)
		}
		if name != "MarkFailed" && name != "RecordFailure" && last.Next != "MarkFailed" {
			t.Errorf("%s: States.ALL goes to %s, want MarkFailed", name, last.Next)
		}
	}
}

func TestAwaitWaitsForATaskTokenWithAFallbackPoll(t *testing.T) {
	m := rendered(t)
	a := m.States["Await"]
	if a.Resource != "arn:aws:states:::lambda:invoke.waitForTaskToken" {
		t.Fatalf("Await resource %s", a.Resource)
	}
	payload, _ := a.Parameters["Payload"].(map[string]any)
	if payload["taskToken.$"] != "$$.Task.Token" || payload["step"] != "await" {
		t.Fatalf("Await payload %v does not pass the task token", payload)
	}
	if a.TimeoutSeconds < 60 || a.TimeoutSeconds > 3600 {
		t.Fatalf("Await TimeoutSeconds %d is not a sensible fallback poll interval", a.TimeoutSeconds)
	}
	next := map[string]string{}
	for _, c := range a.Catch {
		for _, e := range c.ErrorEquals {
			next[e] = c.Next
		}
	}
	if next["States.Timeout"] != "Poll" || next["StackFailed"] != "RecordFailure" {
		t.Fatalf("Await catches %v: want States.Timeout -> Poll, StackFailed -> RecordFailure", next)
	}
	if m.States["Poll"].Next != "Settled" || m.States["Await"].Next != "Settled" {
		t.Fatal("Await and Poll must both lead to the Settled choice")
	}
	settled := m.States["Settled"]
	var targets []string
	for _, c := range settled.Choices {
		targets = append(targets, c.Next)
	}
	if !slices.Contains(targets, "Record") || !slices.Contains(targets, "Apply") || !slices.Contains(targets, "Await") {
		t.Fatalf("Settled leads to %v: want Record (succeeded), Apply (deleted), Await (waiting)", targets)
	}
}

func TestAFailedStackIsRetriedThroughPrepare(t *testing.T) {
	m := rendered(t)
	if m.States["RecordFailure"].Next != "RetryAllowed" {
		t.Fatal("RecordFailure must lead to the retry choice")
	}
	ra := m.States["RetryAllowed"]
	if len(ra.Choices) != 1 || ra.Choices[0].Next != "Prepare" || ra.Default != "ProvisionFailed" {
		t.Fatalf("RetryAllowed: %+v", ra)
	}
	if m.States["MarkFailed"].Next != "ProvisionFailed" || m.States["ProvisionFailed"].Type != "Fail" {
		t.Fatal("MarkFailed must end in the Fail state")
	}
}

func TestPlaceholders(t *testing.T) {
	if got := workflows.Placeholders(workflows.Provision); !slices.Equal(got, []string{workflows.ProvisionFunctionArn}) {
		t.Fatalf("Provision placeholders %v", got)
	}
	if got := workflows.Placeholders(workflows.Command); !slices.Equal(got, []string{workflows.SendCommandFunctionArn, workflows.StateWaitFunctionArn}) {
		t.Fatalf("Command placeholders %v", got)
	}
	if got := workflows.Placeholders(`{"a":"${B}","b":"${A}","c":"${B}","d":"$.x","e":"$${"}`); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("Placeholders = %v", got)
	}
}

func TestRenderRefusesMissingAndUnknownPlaceholders(t *testing.T) {
	cases := []struct {
		name string
		subs map[string]string
		want string
	}{
		{"missing", map[string]string{}, "no value for placeholder(s) ProvisionFunctionArn"},
		{"unknown", map[string]string{workflows.ProvisionFunctionArn: fnARN, "OnboardFunctionArn": "x"}, "has no placeholder(s) OnboardFunctionArn"},
		{"quote", map[string]string{workflows.ProvisionFunctionArn: `arn"x`}, "ProvisionFunctionArn must not contain quotes"},
	}
	for _, c := range cases {
		out, err := workflows.Render(workflows.Provision, c.subs)
		if err == nil || !strings.Contains(err.Error(), c.want) || out != "" {
			t.Errorf("%s: Render = %q, %v; want error containing %q", c.name, out, err, c.want)
		}
	}
}

func TestRenderReplacesEveryOccurrence(t *testing.T) {
	out, err := workflows.Render(workflows.Provision, map[string]string{workflows.ProvisionFunctionArn: fnARN})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "${") {
		t.Fatal("a placeholder survived")
	}
	if got, want := strings.Count(out, fnARN), strings.Count(workflows.Provision, "${ProvisionFunctionArn}"); got != want || want < 6 {
		t.Fatalf("%d substitutions for %d placeholders", got, want)
	}
}

// The command workflow checks its input before anything is sent, sends through sendcommand
// (retrying only what may pass: its named refusals are final), then waits on statewait for
// the command's acknowledgement, for the input's timeout, never retrying a timeout or a
// failed command. (It runs on the local cloud in infra/local/e2e.)
func TestCommandSendsOnlyAValidRequestThenWaitsForItsAcknowledgement(t *testing.T) {
	const sendARN, waitARN = "arn:aws:lambda:us-east-1:123456789012:function:send", "arn:aws:lambda:us-east-1:123456789012:function:wait"
	def, err := workflows.Render(workflows.Command, map[string]string{workflows.SendCommandFunctionArn: sendARN, workflows.StateWaitFunctionArn: waitARN})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		StartAt string
		States  map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		t.Fatal(err)
	}
	var validate struct {
		Choices []struct {
			Variable                       string
			IsPresent, IsString, IsNumeric *bool
			StringEquals                   *string
			Or                             []struct{ Variable string }
			Next                           string
		}
		Default string
	}
	if m.StartAt != "Validate" || json.Unmarshal(m.States["Validate"], &validate) != nil || validate.Default != "Inspect" {
		t.Fatalf("the workflow must start by validating its input: %s", m.States["Validate"])
	}
	// Then the shapes Choice cannot see (an object, whole seconds), and only then the send.
	var shapes struct {
		Choices []struct{ Next string }
		Default string
	}
	if json.Unmarshal(m.States["ValidateShapes"], &shapes) != nil || shapes.Default != "Send" || len(shapes.Choices) != 3 {
		t.Fatalf("ValidateShapes = %s, want three refusals and then Send", m.States["ValidateShapes"])
	}
	for _, c := range shapes.Choices {
		if c.Next != "InvalidRequest" {
			t.Errorf("ValidateShapes goes to %s, want InvalidRequest", c.Next)
		}
	}
	guarded := map[string]bool{}
	for _, c := range validate.Choices {
		if c.Next == "InvalidRequest" && c.IsPresent != nil && !*c.IsPresent {
			guarded[c.Variable] = true
		}
	}
	for _, field := range []string{"$.deploymentId", "$.serviceId", "$.kind"} {
		if !guarded[field] {
			t.Errorf("a missing %s does not fail the workflow before the send", field)
		}
	}
	var fail struct{ Type, Error string }
	if json.Unmarshal(m.States["InvalidRequest"], &fail) != nil || fail.Type != "Fail" || fail.Error != "InvalidRequestError" {
		t.Errorf("InvalidRequest is %s, want a Fail with InvalidRequestError", m.States["InvalidRequest"])
	}
	type retrier struct {
		ErrorEquals []string
		MaxAttempts *int
	}
	var send, wait struct {
		Resource           string
		Parameters         map[string]any
		Retry              []retrier
		Next               string
		TimeoutSecondsPath string
		End                bool
	}
	if json.Unmarshal(m.States["Send"], &send) != nil || json.Unmarshal(m.States["WaitForAcknowledgement"], &wait) != nil {
		t.Fatal("Send or WaitForAcknowledgement is missing")
	}
	noRetry := func(rs []retrier) []string {
		if len(rs) == 0 || rs[0].MaxAttempts == nil || *rs[0].MaxAttempts != 0 || !slices.Equal(rs[len(rs)-1].ErrorEquals, []string{"States.ALL"}) {
			return nil
		}
		return rs[0].ErrorEquals
	}
	if send.Parameters["FunctionName"] != sendARN || send.Next != "WaitForAcknowledgement" ||
		!slices.Equal(noRetry(send.Retry), []string{"InvalidRequestError", "CommandConflictError", "NoChannelError"}) {
		t.Errorf("Send: %s", m.States["Send"])
	}
	payload, _ := send.Parameters["Payload"].(map[string]any)
	if id, _ := payload["id.$"].(string); !strings.Contains(id, "$$.Execution.Id") || !strings.Contains(id, "States.Hash") {
		t.Errorf("Send's command id %q is not derived from the execution", id)
	}
	condition, _ := wait.Parameters["Payload"].(map[string]any)["condition"].(map[string]any)
	if wait.Resource != "arn:aws:states:::lambda:invoke.waitForTaskToken" || wait.Parameters["FunctionName"] != waitARN ||
		condition["commandId.$"] != "$.command.id" || wait.TimeoutSecondsPath != "$.timeoutSeconds" || !wait.End ||
		!slices.Contains(noRetry(wait.Retry), "States.Timeout") || !slices.Contains(noRetry(wait.Retry), "byoc.CommandFailed") {
		t.Errorf("WaitForAcknowledgement: %s", m.States["WaitForAcknowledgement"])
	}
}
