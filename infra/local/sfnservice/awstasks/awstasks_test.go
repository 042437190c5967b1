package awstasks_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/sivchari/kumo"

	"github.com/byocloud/byoc/infra/local/asl"
	"github.com/byocloud/byoc/infra/local/sfnservice/awstasks"
)

// These tests run the adapter against kumo, the emulator the local cloud uses: a real Lambda
// Runtime API served by a handler loop in the test, real SQS queues, a real event bus.
// kumo keeps one state per process, so every resource gets a name of its own.

var serial atomic.Int64

func unique(name string) string { return fmt.Sprintf("%s-%d", name, serial.Add(1)) }

type world struct {
	url   string
	cfg   aws.Config
	tasks *awstasks.Tasks
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := kumo.NewServer()
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint:     aws.String(srv.URL),
		RetryMaxAttempts: 1,
	}
	return &world{url: srv.URL, cfg: cfg, tasks: awstasks.New(cfg)}
}

func zipOf(t *testing.T) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, _ := zw.Create("bootstrap")
	f.Write([]byte("#!/bin/sh\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// function creates a Lambda function in kumo and serves it from a goroutine speaking the
// Runtime API: a payload {"fail": "<type>"} fails with that errorType, anything else is echoed.
func (w *world) function(t *testing.T, base string) string {
	t.Helper()
	name := unique(base)
	ctx := context.Background()
	_, err := lambda.NewFromConfig(w.cfg).CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
		Role: aws.String("arn:aws:iam::000000000000:role/fn"), Code: &lambdatypes.FunctionCode{ZipFile: zipOf(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	api := w.url + "/_runtime/" + name + "/2018-06-01/runtime/invocation/"
	go func() {
		defer close(done)
		for runCtx.Err() == nil {
			req, _ := http.NewRequestWithContext(runCtx, http.MethodGet, api+"next", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			payload, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
			var in struct {
				Fail string `json:"fail"`
			}
			_ = json.Unmarshal(payload, &in)
			url, body := api+id+"/response", []byte(`{"echo":`+string(payload)+`}`)
			if in.Fail != "" {
				url = api + id + "/error"
				body, _ = json.Marshal(map[string]string{"errorMessage": "asked to fail", "errorType": in.Fail})
			}
			post, _ := http.NewRequestWithContext(runCtx, http.MethodPost, url, bytes.NewReader(body))
			if in.Fail != "" {
				post.Header.Set("Lambda-Runtime-Function-Error-Type", in.Fail)
			}
			if r, err := http.DefaultClient.Do(post); err == nil {
				r.Body.Close()
			}
		}
	}()
	// kumo refuses invocations until the handler's first poll has arrived.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := w.tasks.Invoke(ctx, &asl.InvokeInput{FunctionName: name, Payload: []byte(`{"warm":true}`)})
		if err == nil {
			return name
		}
		if time.Now().After(deadline) {
			t.Fatalf("the function never became invocable: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestInvoke(t *testing.T) {
	w := newWorld(t)
	echo := w.function(t, "echo")
	ctx := context.Background()
	out, err := w.tasks.Invoke(ctx, &asl.InvokeInput{FunctionName: echo, Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || out.FunctionError != "" || string(out.Payload) != `{"echo":{"n":1}}` {
		t.Errorf("invoke = %+v (%s)", out, out.Payload)
	}
	failed, err := w.tasks.Invoke(ctx, &asl.InvokeInput{FunctionName: echo, Payload: []byte(`{"fail":"StackFailed"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if failed.FunctionError == "" || !strings.Contains(string(failed.Payload), `"errorType":"StackFailed"`) {
		t.Errorf("a failing function gave %+v (%s)", failed, failed.Payload)
	}
	_, err = w.tasks.Invoke(ctx, &asl.InvokeInput{FunctionName: "missing", Payload: []byte(`{}`)})
	var se *asl.ServiceError
	if !errors.As(err, &se) || se.Code != "ResourceNotFoundException" || se.StatusCode != 404 {
		t.Errorf("invoking a missing function gave %v", err)
	}
}

func TestSendMessage(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	client := sqs.NewFromConfig(w.cfg)
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(unique("work"))})
	if err != nil {
		t.Fatal(err)
	}
	delay := int32(0)
	out, err := w.tasks.SendMessage(ctx, &asl.SendMessageInput{QueueURL: *q.QueueUrl, MessageBody: `{"id":1}`, DelaySeconds: &delay,
		MessageAttributes: map[string]asl.MessageAttribute{"kind": {DataType: "String", StringValue: "test"}}})
	if err != nil || out.MessageID == "" || out.MD5OfMessageBody == "" {
		t.Fatalf("send = %+v, %v", out, err)
	}
	got, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 1 || *got.Messages[0].Body != `{"id":1}` || *got.Messages[0].MessageAttributes["kind"].StringValue != "test" {
		t.Fatalf("received %+v, %v", got, err)
	}
	_, err = w.tasks.SendMessage(ctx, &asl.SendMessageInput{QueueURL: *q.QueueUrl + "-missing", MessageBody: "x"})
	var se *asl.ServiceError
	if !errors.As(err, &se) || se.Code == "" || se.StatusCode < 400 {
		t.Errorf("sending to a missing queue gave %v", err)
	}
}

func TestPutEvents(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	bus := unique("vendor")
	if _, err := eventbridge.NewFromConfig(w.cfg).CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatal(err)
	}
	out, err := w.tasks.PutEvents(ctx, []asl.EventEntry{{Source: "byoc", DetailType: "Ready", Detail: `{"id":1}`, EventBusName: bus}})
	if err != nil || out.FailedEntryCount != 0 || len(out.Entries) != 1 || out.Entries[0].EventID == "" {
		t.Fatalf("put = %+v, %v", out, err)
	}
}

func TestUnreachableServiceStaysAClientError(t *testing.T) {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		BaseEndpoint: aws.String("http://127.0.0.1:1"), RetryMaxAttempts: 1}
	_, err := awstasks.New(cfg).Invoke(context.Background(), &asl.InvokeInput{FunctionName: "f", Payload: []byte("{}")})
	var se *asl.ServiceError
	if err == nil || errors.As(err, &se) {
		t.Errorf("an unreachable Lambda gave %v; want a plain error the engine names Lambda.SdkClientException", err)
	}
	_, err = (&awstasks.Tasks{}).PutEvents(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "EventBridge") {
		t.Errorf("a missing client gave %v", err)
	}
}

// TestEngineOnKumoLambda runs a workflow whose Lambda fails with one of our error names
// through kumo's Runtime API: the engine sees the error by its errorType and the Catch fires,
// which kumo's own Step Functions cannot do.
func TestEngineOnKumoLambda(t *testing.T) {
	w := newWorld(t)
	worker := w.function(t, "worker")
	e := asl.NewEngine(asl.Options{Tasks: w.tasks})
	def := `{"StartAt":"Try","States":{
	  "Try":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"` + worker + `","Payload":{"fail":"StackFailed"}},
	    "Retry":[{"ErrorEquals":["TransientError"],"MaxAttempts":2}],
	    "Catch":[{"ErrorEquals":["StackFailed"],"ResultPath":"$.error","Next":"Recover"}],"End":true},
	  "Recover":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:000000000000:function:` + worker + `","Parameters":{"recovered.$":"$.error.Error"},"End":true}}}`
	m, err := e.CreateStateMachine(asl.CreateStateMachineInput{Name: "OnKumo", Definition: def, RoleARN: "arn:aws:iam::000000000000:role/states"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := e.StartExecution(m.ARN, "run", "{}")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := e.Wait(ctx, x.ARN)
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != asl.StatusSucceeded || info.Output != `{"echo":{"recovered":"StackFailed"}}` {
		t.Errorf("execution %s %s (%s: %s)", info.Status, info.Output, info.Error, info.Cause)
	}
}
