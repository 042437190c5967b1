// Package cloudtest gives tests a running in-process AWS emulator (kumo) and SDK clients
// pointed at it. It is the only package that imports kumo: kumo is a large build, so every
// test that needs real DynamoDB, Step Functions, STS or EventBridge semantics goes through
// here, and no production binary links it.
//
// kumo keeps one state per process (every server shares it), so tests isolate themselves by
// name: each test creates its own table, state machine or activity with a unique name.
package cloudtest

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/sivchari/kumo"

	"github.com/byocloud/byoc/shared/cloud"
)

// Region is the region of the emulator's clients. kumo ignores regions (its ARNs all say
// us-east-1), so tests must not rely on a region round-trip.
const Region = "us-east-1"

var (
	once   sync.Once
	server *kumo.Server
)

// Env is a started emulator and a configuration for it.
type Env struct {
	URL    string
	Config aws.Config
}

// Start returns the process-wide emulator, starting it on first use.
func Start(t testing.TB) *Env {
	t.Helper()
	once.Do(func() { server = kumo.NewServer() })
	return &Env{
		URL: server.URL,
		Config: aws.Config{
			Region:       Region,
			BaseEndpoint: aws.String(server.URL),
			// kumo routes by the signature's service scope, so requests must be signed.
			Credentials:      credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
			RetryMaxAttempts: 2,
			Retryer:          cloud.NewRetryer,
		},
	}
}

// DynamoDB returns a client built the way production builds it.
func (e *Env) DynamoDB() *dynamodb.Client { return cloud.NewDynamoDB(e.Config) }

// StepFunctions returns a Step Functions client.
func (e *Env) StepFunctions() *sfn.Client { return sfn.NewFromConfig(e.Config) }

// STS returns an STS client. kumo's STS grants every AssumeRole: it cannot test refusals.
func (e *Env) STS() *sts.Client { return sts.NewFromConfig(e.Config) }

// EventBridge returns an EventBridge client. kumo has no PutPermission.
func (e *Env) EventBridge() *eventbridge.Client { return eventbridge.NewFromConfig(e.Config) }

// UniqueName returns prefix followed by a random suffix, short enough for any AWS name.
func UniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:12])
}

// UniqueDeploymentID is a fresh deployment id that follows settings.DeploymentIDPattern
// ("d" and 12 lowercase letters and digits), for tests that share one emulator.
func UniqueDeploymentID() string {
	return "d" + strings.ToLower(rand.Text()[:12])
}

// CreateTable creates a table from def under a unique name (def.TableName is replaced),
// enables its TTL attribute when ttlAttribute is not empty, deletes it when the test ends,
// and returns its name.
func (e *Env) CreateTable(t testing.TB, def *dynamodb.CreateTableInput, ttlAttribute string) string {
	t.Helper()
	ctx := context.Background()
	client := e.DynamoDB()
	in := *def
	in.TableName = aws.String(UniqueName("byoc-test"))
	if _, err := client.CreateTable(ctx, &in); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if ttlAttribute != "" {
		if _, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               in.TableName,
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(ttlAttribute), Enabled: aws.Bool(true)},
		}); err != nil {
			t.Fatalf("enable TTL: %v", err)
		}
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: in.TableName})
	})
	return *in.TableName
}

// Items returns every item of a table. Tests use it to prove that a refused request wrote
// nothing: a scan sees what any key-based read could miss.
func (e *Env) Items(t testing.TB, table string) []map[string]ddbtypes.AttributeValue {
	t.Helper()
	var items []map[string]ddbtypes.AttributeValue
	p := dynamodb.NewScanPaginator(e.DynamoDB(), &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan %s: %v", table, err)
		}
		items = append(items, page.Items...)
	}
	return items
}

// Keys returns "PK|SK" of every item of a table, for readable assertions.
func (e *Env) Keys(t testing.TB, table string) []string {
	t.Helper()
	var keys []string
	for _, it := range e.Items(t, table) {
		pk, _ := it["PK"].(*ddbtypes.AttributeValueMemberS)
		sk, _ := it["SK"].(*ddbtypes.AttributeValueMemberS)
		if pk == nil || sk == nil {
			t.Fatalf("item without string PK/SK: %v", it)
		}
		keys = append(keys, pk.Value+"|"+sk.Value)
	}
	return keys
}

// StateMachine creates a state machine with a unique name from an ASL definition and returns
// its ARN.
func (e *Env) StateMachine(t testing.TB, definition string) string {
	t.Helper()
	out, err := e.StepFunctions().CreateStateMachine(context.Background(), &sfn.CreateStateMachineInput{
		Name:       aws.String(UniqueName("sm")),
		Definition: aws.String(definition),
		RoleArn:    aws.String("arn:aws:iam::123456789012:role/test"),
	})
	if err != nil {
		t.Fatalf("create state machine: %v", err)
	}
	return aws.ToString(out.StateMachineArn)
}

// Executions lists the executions of a state machine.
func (e *Env) Executions(t testing.TB, stateMachineARN string) []sfntypes.ExecutionListItem {
	t.Helper()
	out, err := e.StepFunctions().ListExecutions(context.Background(), &sfn.ListExecutionsInput{StateMachineArn: aws.String(stateMachineARN)})
	if err != nil {
		t.Fatalf("list executions: %v", err)
	}
	return out.Executions
}

// Activity creates a Step Functions activity and a state machine whose only state waits on
// it, starts an execution and returns the execution ARN and the task token a worker would
// receive. It gives tests a real task token without a Lambda: kumo's Lambda and SQS
// integrations call back through localhost:4566, activities stay inside kumo.
func (e *Env) Activity(t testing.TB) (executionARN, taskToken string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := e.StepFunctions()
	name := UniqueName("wait")
	act, err := client.CreateActivity(ctx, &sfn.CreateActivityInput{Name: aws.String(name)})
	if err != nil {
		t.Fatalf("create activity: %v", err)
	}
	def := `{"StartAt":"Wait","States":{"Wait":{"Type":"Task","Resource":"` + aws.ToString(act.ActivityArn) + `","TimeoutSeconds":300,"End":true}}}`
	sm, err := client.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String(name),
		Definition: aws.String(def),
		RoleArn:    aws.String("arn:aws:iam::123456789012:role/test"),
	})
	if err != nil {
		t.Fatalf("create state machine: %v", err)
	}
	exec, err := client.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: sm.StateMachineArn, Input: aws.String(`{}`)})
	if err != nil {
		t.Fatalf("start execution: %v", err)
	}
	for {
		task, err := client.GetActivityTask(ctx, &sfn.GetActivityTaskInput{ActivityArn: act.ActivityArn, WorkerName: aws.String("test")})
		if err != nil {
			t.Fatalf("get activity task: %v", err)
		}
		if aws.ToString(task.TaskToken) != "" {
			return aws.ToString(exec.ExecutionArn), aws.ToString(task.TaskToken)
		}
		if ctx.Err() != nil {
			t.Fatal("no activity task within 30s")
		}
	}
}

// WaitExecution waits until an execution leaves RUNNING and returns its description.
func (e *Env) WaitExecution(t testing.TB, executionARN string) *sfn.DescribeExecutionOutput {
	t.Helper()
	client := e.StepFunctions()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := client.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(executionARN)})
		if err != nil {
			t.Fatalf("describe execution: %v", err)
		}
		if out.Status != "RUNNING" {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s still running", executionARN)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ReadyRuntime makes kumo route invocations of function to its Runtime API, as a process's
// first poll would, but synchronously: kumo creates a function's runtime broker on any
// Runtime API call, and a result for a request id it never issued creates it and does
// nothing else. A test that then starts its poller cannot lose the race with its first
// invocation ("has no runtime handler"), however loaded the machine.
func (e *Env) ReadyRuntime(t testing.TB, function string) {
	t.Helper()
	resp, err := http.Post(e.URL+"/_runtime/"+function+"/2018-06-01/runtime/invocation/byoc-ready-probe/response", "application/json", strings.NewReader("null"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("readying the runtime of %s: HTTP %d", function, resp.StatusCode)
	}
}
