package sfnservice_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/infra/local/asl"
	"github.com/byocloud/byoc/infra/local/sfnservice"
)

// The service is driven with aws-sdk-go-v2's own sfn client: if the SDK can serialize the
// requests and parse the answers (including typed errors), so can every AWS tool.

const role = "arn:aws:iam::000000000000:role/states"

type harness struct {
	engine *asl.Engine
	client *sfn.Client
	tokens chan string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{tokens: make(chan string, 8)}
	h.engine = asl.NewEngine(asl.Options{Tasks: asl.TaskFuncs{InvokeFunc: func(ctx context.Context, in *asl.InvokeInput) (*asl.InvokeOutput, error) {
		v, _ := asl.ParseJSON(in.Payload)
		if o, ok := v.(*asl.Object); ok {
			if tok, ok := o.Get("token"); ok {
				h.tokens <- tok.(string)
			}
		}
		return &asl.InvokeOutput{StatusCode: 200, Payload: []byte(`{"invoked":true}`)}, nil
	}}})
	srv := httptest.NewServer(sfnservice.New(h.engine, nil))
	t.Cleanup(srv.Close)
	h.client = sfn.New(sfn.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	return h
}

func wantAPIError[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T), want %T", err, err, target)
	}
	return target
}

const passDefinition = `{"Comment":"c","StartAt":"A","States":{"A":{"Type":"Pass","Result":{"done":true},"ResultPath":"$.r","Next":"B"},"B":{"Type":"Succeed"}}}`

func (h *harness) create(t *testing.T, name, def string) string {
	t.Helper()
	out, err := h.client.CreateStateMachine(context.Background(), &sfn.CreateStateMachineInput{
		Name: aws.String(name), Definition: aws.String(def), RoleArn: aws.String(role),
		Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("byoc")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return *out.StateMachineArn
}

func (h *harness) waitDone(t *testing.T, arn string) *sfn.DescribeExecutionOutput {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.engine.Wait(ctx, arn); err != nil {
		t.Fatal(err)
	}
	out, err := h.client.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStateMachineLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	arn := h.create(t, "Machine", passDefinition)
	if arn != "arn:aws:states:us-east-1:000000000000:stateMachine:Machine" {
		t.Errorf("ARN %s", arn)
	}
	d, err := h.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Definition != passDefinition || d.Status != types.StateMachineStatusActive || d.Type != types.StateMachineTypeStandard ||
		*d.RoleArn != role || *d.Name != "Machine" || d.CreationDate.Before(before) || d.LoggingConfiguration.Level != types.LogLevelOff {
		t.Errorf("describe %+v", d)
	}
	// Same name and definition: the existing machine. Another definition: refused.
	if again := h.create(t, "Machine", passDefinition); again != arn {
		t.Errorf("idempotent create gave %s", again)
	}
	_, err = h.client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("Machine"), Definition: aws.String(`{"StartAt":"X","States":{"X":{"Type":"Succeed"}}}`), RoleArn: aws.String(role)})
	wantAPIError[*types.StateMachineAlreadyExists](t, err)

	_, err = h.client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("Broken"), RoleArn: aws.String(role),
		Definition: aws.String(`{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Gone"}}}`)})
	invalid := wantAPIError[*types.InvalidDefinition](t, err)
	if !strings.Contains(invalid.ErrorMessage(), "MISSING_TRANSITION_TARGET") || !strings.Contains(invalid.ErrorMessage(), "/States/A/Next") {
		t.Errorf("InvalidDefinition message %q", invalid.ErrorMessage())
	}
	_, err = h.client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("Fast"), Definition: aws.String(passDefinition), RoleArn: aws.String(role), Type: types.StateMachineTypeExpress})
	wantAPIError[*types.StateMachineTypeNotSupported](t, err)
	_, err = h.client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("bad name"), Definition: aws.String(passDefinition), RoleArn: aws.String(role)})
	wantAPIError[*types.InvalidName](t, err)

	list, err := h.client.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil || len(list.StateMachines) != 1 || *list.StateMachines[0].StateMachineArn != arn {
		t.Fatalf("list %+v %v: refused creates must not add machines", list, err)
	}

	newDef := `{"StartAt":"B","States":{"B":{"Type":"Succeed"}}}`
	up, err := h.client.UpdateStateMachine(ctx, &sfn.UpdateStateMachineInput{StateMachineArn: aws.String(arn), Definition: aws.String(newDef)})
	if err != nil || up.UpdateDate == nil || up.RevisionId == nil {
		t.Fatalf("update %+v %v", up, err)
	}
	d, _ = h.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)})
	if *d.Definition != newDef {
		t.Errorf("definition after update %s", *d.Definition)
	}

	tags, err := h.client.ListTagsForResource(ctx, &sfn.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if err != nil || len(tags.Tags) != 1 || *tags.Tags[0].Key != "team" {
		t.Errorf("tags %+v %v", tags, err)
	}
	_, err = h.client.TagResource(ctx, &sfn.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{{Key: aws.String("env"), Value: aws.String("local")}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client.UntagResource(ctx, &sfn.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"team"}})
	if err != nil {
		t.Fatal(err)
	}
	tags, _ = h.client.ListTagsForResource(ctx, &sfn.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	if len(tags.Tags) != 1 || *tags.Tags[0].Key != "env" || *tags.Tags[0].Value != "local" {
		t.Errorf("tags after tag and untag %+v", tags.Tags)
	}
	_, err = h.client.ListTagsForResource(ctx, &sfn.ListTagsForResourceInput{ResourceArn: aws.String(arn + "x")})
	wantAPIError[*types.ResourceNotFound](t, err)

	if _, err := h.client.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(arn)})
	wantAPIError[*types.StateMachineDoesNotExist](t, err)
}

func TestValidateStateMachineDefinition(t *testing.T) {
	h := newHarness(t)
	ok, err := h.client.ValidateStateMachineDefinition(context.Background(), &sfn.ValidateStateMachineDefinitionInput{Definition: aws.String(passDefinition)})
	if err != nil || ok.Result != types.ValidateStateMachineDefinitionResultCodeOk || len(ok.Diagnostics) != 0 {
		t.Fatalf("valid definition: %+v %v", ok, err)
	}
	bad, err := h.client.ValidateStateMachineDefinition(context.Background(), &sfn.ValidateStateMachineDefinitionInput{
		Definition: aws.String(`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::dynamodb:putItem","Parameters":{},"End":true},"B":{"Type":"Pass","End":true}}}`)})
	if err != nil || bad.Result != types.ValidateStateMachineDefinitionResultCodeFail {
		t.Fatalf("invalid definition: %+v %v", bad, err)
	}
	var got []string
	for _, d := range bad.Diagnostics {
		got = append(got, *d.Code+" "+*d.Location)
		if d.Severity != types.ValidateStateMachineDefinitionSeverityError || *d.Message == "" {
			t.Errorf("diagnostic %+v", d)
		}
	}
	want := []string{"UNSUPPORTED_FEATURE /States/A/Resource", "UNREACHABLE_STATE /States/B"}
	if !slices.Equal(got, want) {
		t.Errorf("diagnostics %v, want %v", got, want)
	}
}

func TestExecutionsOverTheAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	arn := h.create(t, "M", passDefinition)
	start, err := h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("first"), Input: aws.String(`{"id":7}`)})
	if err != nil {
		t.Fatal(err)
	}
	if *start.ExecutionArn != "arn:aws:states:us-east-1:000000000000:execution:M:first" || time.Since(*start.StartDate) > time.Minute {
		t.Errorf("start %+v", start)
	}
	d := h.waitDone(t, *start.ExecutionArn)
	if d.Status != types.ExecutionStatusSucceeded || *d.Output != `{"id":7,"r":{"done":true}}` || *d.Input != `{"id":7}` || d.StopDate == nil || *d.Name != "first" || *d.StateMachineArn != arn {
		t.Errorf("describe %+v", d)
	}
	_, err = h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("first"), Input: aws.String(`{"id":7}`)})
	wantAPIError[*types.ExecutionAlreadyExists](t, err)
	_, err = h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Input: aws.String(`{"id":`)})
	wantAPIError[*types.InvalidExecutionInput](t, err)
	_, err = h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn + "Nope")})
	wantAPIError[*types.StateMachineDoesNotExist](t, err)
	_, err = h.client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(*start.ExecutionArn + "x")})
	wantAPIError[*types.ExecutionDoesNotExist](t, err)

	hist, err := h.client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []types.HistoryEventType
	for _, ev := range hist.Events {
		kinds = append(kinds, ev.Type)
	}
	wantKinds := []types.HistoryEventType{"ExecutionStarted", "PassStateEntered", "PassStateExited", "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"}
	if !slices.Equal(kinds, wantKinds) {
		t.Fatalf("history %v", kinds)
	}
	if ev := hist.Events[1]; *ev.StateEnteredEventDetails.Name != "A" || *ev.StateEnteredEventDetails.Input != `{"id":7}` || ev.Id != 2 || ev.Timestamp == nil {
		t.Errorf("PassStateEntered %+v", ev.StateEnteredEventDetails)
	}
	if ev := hist.Events[0]; *ev.ExecutionStartedEventDetails.RoleArn != role {
		t.Errorf("ExecutionStarted %+v", ev.ExecutionStartedEventDetails)
	}
	// Paging, newest first.
	var paged []int64
	var token *string
	for {
		p, err := h.client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn, MaxResults: 4, ReverseOrder: true, NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range p.Events {
			paged = append(paged, ev.Id)
		}
		if token = p.NextToken; token == nil {
			break
		}
	}
	if !slices.Equal(paged, []int64{6, 5, 4, 3, 2, 1}) {
		t.Errorf("paged ids %v", paged)
	}
	_, err = h.client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn, NextToken: aws.String("!!")})
	wantAPIError[*types.InvalidToken](t, err)
	noData, _ := h.client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: start.ExecutionArn, IncludeExecutionData: aws.Bool(false)})
	if d := noData.Events[1].StateEnteredEventDetails; d.Input != nil || *d.Name != "A" {
		t.Errorf("includeExecutionData=false kept %+v", d)
	}

	list, err := h.client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn), StatusFilter: types.ExecutionStatusSucceeded})
	if err != nil || len(list.Executions) != 1 || *list.Executions[0].Name != "first" {
		t.Errorf("list %+v %v", list, err)
	}
	none, _ := h.client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn), StatusFilter: types.ExecutionStatusRunning})
	if len(none.Executions) != 0 {
		t.Errorf("running executions %+v", none.Executions)
	}
}

func TestStopExecution(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	arn := h.create(t, "Slow", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}`)
	start, _ := h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("slow"), Input: aws.String(`{}`)})
	again, err := h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("slow"), Input: aws.String(`{}`)})
	if err != nil || *again.ExecutionArn != *start.ExecutionArn {
		t.Errorf("restarting a running execution with the same input = %v, %v", again, err)
	}
	_, err = h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("slow"), Input: aws.String(`{"other":1}`)})
	wantAPIError[*types.ExecutionAlreadyExists](t, err)
	stop, err := h.client.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: start.ExecutionArn, Error: aws.String("Cancelled"), Cause: aws.String("by test")})
	if err != nil || stop.StopDate == nil {
		t.Fatalf("stop %+v %v", stop, err)
	}
	d := h.waitDone(t, *start.ExecutionArn)
	if d.Status != types.ExecutionStatusAborted || *d.Error != "Cancelled" || *d.Cause != "by test" || d.Output != nil {
		t.Errorf("stopped execution %+v", d)
	}
}

const callbackDefinition = `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
  "Parameters":{"FunctionName":"worker","Payload":{"token.$":"$$.Task.Token"}},"HeartbeatSeconds":600,"TimeoutSeconds":3600,
  "Catch":[{"ErrorEquals":["WorkerGaveUp"],"Next":"GaveUp"}],"End":true},"GaveUp":{"Type":"Fail","Error":"GaveUp"}}}`

func TestTaskTokensOverTheAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	arn := h.create(t, "Callback", callbackDefinition)

	ok, _ := h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("ok")})
	token := <-h.tokens
	_, err := h.client.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{"not json`)})
	wantAPIError[*types.InvalidOutput](t, err)
	_, err = h.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String("garbage"), Output: aws.String(`{}`)})
	wantAPIError[*types.InvalidToken](t, err)
	_, err = h.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String("AQC" + strings.Repeat("A", 64)), Output: aws.String(`{}`)})
	wantAPIError[*types.TaskDoesNotExist](t, err)
	if _, err := h.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{"answer":42}`)}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(`{}`)})
	wantAPIError[*types.TaskTimedOut](t, err)
	_, err = h.client.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(token)})
	wantAPIError[*types.TaskTimedOut](t, err)
	if d := h.waitDone(t, *ok.ExecutionArn); d.Status != types.ExecutionStatusSucceeded || *d.Output != `{"answer":42}` {
		t.Errorf("execution %+v", d)
	}

	failed, _ := h.client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("failed")})
	token = <-h.tokens
	if _, err := h.client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(token), Error: aws.String("WorkerGaveUp"), Cause: aws.String("disk full")}); err != nil {
		t.Fatal(err)
	}
	d := h.waitDone(t, *failed.ExecutionArn)
	if d.Status != types.ExecutionStatusFailed || *d.Error != "GaveUp" {
		t.Errorf("execution %+v", d)
	}
	hist, _ := h.client.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: failed.ExecutionArn})
	var sawFailed bool
	for _, ev := range hist.Events {
		switch ev.Type {
		case types.HistoryEventTypeTaskScheduled:
			if d := ev.TaskScheduledEventDetails; *d.ResourceType != "lambda" || *d.Resource != "invoke.waitForTaskToken" || *d.HeartbeatInSeconds != 600 || *d.TimeoutInSeconds != 3600 {
				t.Errorf("TaskScheduled %+v", d)
			}
		case types.HistoryEventTypeTaskFailed:
			sawFailed = *ev.TaskFailedEventDetails.Error == "WorkerGaveUp" && *ev.TaskFailedEventDetails.Cause == "disk full"
		}
	}
	if !sawFailed {
		t.Errorf("no TaskFailed with the worker's error in the history")
	}
}

func TestProtocolErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.client.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String("not-an-arn")})
	wantAPIError[*types.InvalidArn](t, err)
	_, err = h.client.CreateActivity(ctx, &sfn.CreateActivityInput{Name: aws.String("a")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "UnknownOperationException" || !strings.Contains(api.ErrorMessage(), "CreateActivity") {
		t.Errorf("an unimplemented operation gave %v", err)
	}
	_, err = h.client.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:X"), MaxResults: 5000})
	if !errors.As(err, &api) || api.ErrorCode() != "ValidationException" {
		t.Errorf("maxResults 5000 gave %v", err)
	}

	srv := httptest.NewServer(sfnservice.New(h.engine, nil))
	defer srv.Close()
	for _, c := range []struct {
		method, target, body string
		status               int
		code                 string
	}{
		{http.MethodGet, "AWSStepFunctions.ListStateMachines", "", 400, "UnknownOperationException"},
		{http.MethodPost, "DynamoDB_20120810.ListTables", "{}", 400, "UnknownOperationException"},
		{http.MethodPost, "AWSStepFunctions.StartExecution", "{not json", 400, "SerializationException"},
		{http.MethodPost, "AWSStepFunctions.StartExecution", "{}", 400, "ValidationException"},
		// Every required member, named in the answer (the first missing one in AWS's order).
		{http.MethodPost, "AWSStepFunctions.CreateStateMachine", `{"definition":"{}","roleArn":"r"}`, 400, "ValidationException:name"},
		{http.MethodPost, "AWSStepFunctions.CreateStateMachine", `{"name":"n","roleArn":"r"}`, 400, "ValidationException:definition"},
		{http.MethodPost, "AWSStepFunctions.CreateStateMachine", `{"name":"n","definition":"{}"}`, 400, "ValidationException:roleArn"},
		{http.MethodPost, "AWSStepFunctions.DescribeExecution", "{}", 400, "ValidationException:executionArn"},
		{http.MethodPost, "AWSStepFunctions.SendTaskSuccess", `{"output":"{}"}`, 400, "ValidationException:taskToken"},
		{http.MethodPost, "AWSStepFunctions.SendTaskSuccess", `{"taskToken":"t"}`, 400, "ValidationException:output"},
		{http.MethodPost, "AWSStepFunctions.SendTaskFailure", "{}", 400, "ValidationException:taskToken"},
		{http.MethodPost, "AWSStepFunctions.ValidateStateMachineDefinition", "{}", 400, "ValidationException:definition"},
	} {
		field := "stateMachineArn"
		if code, f, ok := strings.Cut(c.code, ":"); ok {
			c.code, field = code, f
		}
		req, _ := http.NewRequest(c.method, srv.URL, strings.NewReader(c.body))
		req.Header.Set("X-Amz-Target", c.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c.code == "ValidationException" && !strings.Contains(string(body), "'"+field+"'") {
			t.Errorf("a missing parameter answered %s; the message must name the field", body)
		}
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-ErrorType") != c.code {
			t.Errorf("%s %s %q: %d %s, want %d %s", c.method, c.target, c.body, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), c.status, c.code)
		}
	}
}

func TestConcurrentClients(t *testing.T) {
	h := newHarness(t)
	arn := h.create(t, "M", passDefinition)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.client.StartExecution(context.Background(), &sfn.StartExecutionInput{StateMachineArn: aws.String(arn), Name: aws.String("run-" + strings.Repeat("x", i+1))})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, _ := h.client.ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: aws.String(arn)})
	if len(list.Executions) != 20 {
		t.Errorf("%d executions, want 20", len(list.Executions))
	}
}
