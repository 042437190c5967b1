package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud/cloudtest"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/stackevent"
	"github.com/byocloud/byoc/shared/store"
)

// The samples are about the infrastructure stack of deployment k3q9x2m7p4w8z.
const (
	stackName = "clickhouse-cloud-k3q9x2m7p4w8z-infra"
	stackID   = "arn:aws:cloudformation:us-west-2:111122223333:stack/clickhouse-cloud-k3q9x2m7p4w8z-infra/5b3c0a40-9f1e-11ef-8f6a-0a1b2c3d4e5f"
)

type fixture struct {
	h     *Handler
	env   *cloudtest.Env
	table string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	env := cloudtest.Start(t)
	table := env.CreateTable(t, store.TableDefinition(""), store.TTLAttribute)
	return fixture{
		h:     &Handler{Store: store.New(env.DynamoDB(), table), Tasks: env.StepFunctions(), Log: slog.New(slog.NewJSONHandler(io.Discard, nil))},
		env:   env,
		table: table,
	}
}

// wait registers a waiter whose token belongs to a real, running execution (an activity
// task in kumo), and returns the execution.
func (f fixture) wait(t *testing.T, operation, requestToken string) (execution string, w store.Waiter) {
	t.Helper()
	execution, token := f.env.Activity(t)
	w = store.Waiter{
		AccountID: "111122223333", Region: "us-west-2", StackName: stackName, DeploymentID: "k3q9x2m7p4w8z",
		TaskToken: token, StackID: stackID, Operation: operation, RequestToken: requestToken,
		ExpiresAt: time.Now().Add(time.Hour),
	}
	if err := f.h.Store.PutWaiter(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	return execution, w
}

func sample(t *testing.T, name string) events.CloudWatchEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", "stackevents", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func (f fixture) running(t *testing.T, execution string) bool {
	t.Helper()
	out, err := f.env.StepFunctions().DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(execution)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Status == "RUNNING"
}

func (f fixture) waiterGone(t *testing.T) bool {
	t.Helper()
	_, err := f.h.Store.Waiter(context.Background(), "111122223333", "us-west-2", stackName)
	return errors.Is(err, store.ErrNotFound)
}

func TestTerminalEventsResumeTheWaitingTask(t *testing.T) {
	cases := []struct {
		file, operation, request string
		wantStatus, wantError    string
		want                     stackevent.Result
	}{
		{"infra-create-complete.json", "create", "byoc-k3q9x2m7p4w8z-1-create", "SUCCEEDED", "",
			stackevent.Result{StackID: stackID, Status: "CREATE_COMPLETE", Outcome: "succeeded"}},
		{"infra-update-complete.json", "update", "byoc-k3q9x2m7p4w8z-2-update", "SUCCEEDED", "",
			stackevent.Result{StackID: stackID, Status: "UPDATE_COMPLETE", Outcome: "succeeded"}},
		{"infra-delete-complete.json", "delete", "byoc-k3q9x2m7p4w8z-1-delete", "SUCCEEDED", "",
			stackevent.Result{StackID: stackID, Status: "DELETE_COMPLETE", Outcome: "deleted"}},
		{"infra-rollback-complete.json", "create", "byoc-k3q9x2m7p4w8z-1-create", "FAILED", "StackFailed",
			stackevent.Result{StackID: stackID, Status: "ROLLBACK_COMPLETE", Outcome: "failed"}},
		{"infra-create-failed.json", "create", "byoc-k3q9x2m7p4w8z-1-create", "FAILED", "StackFailed",
			stackevent.Result{StackID: stackID, Status: "CREATE_FAILED", Reason: "The following resource(s) failed to create: [EksCluster]. ", Outcome: "failed"}},
		{"infra-update-rollback-complete.json", "update", "byoc-k3q9x2m7p4w8z-2-update", "FAILED", "StackFailed",
			stackevent.Result{StackID: stackID, Status: "UPDATE_ROLLBACK_COMPLETE", Outcome: "failed"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f := newFixture(t)
			execution, _ := f.wait(t, c.operation, c.request)
			ev := sample(t, c.file)
			if err := f.h.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			out := f.env.WaitExecution(t, execution)
			if string(out.Status) != c.wantStatus {
				t.Fatalf("execution %s, want %s", out.Status, c.wantStatus)
			}
			payload := aws.ToString(out.Output)
			if c.wantError != "" {
				if aws.ToString(out.Error) != c.wantError {
					t.Fatalf("error %q, want %s", aws.ToString(out.Error), c.wantError)
				}
				payload = aws.ToString(out.Cause)
			}
			var got stackevent.Result
			if err := json.Unmarshal([]byte(payload), &got); err != nil {
				t.Fatalf("task got %q: %v", payload, err)
			}
			if got != c.want {
				t.Fatalf("task got %+v, want %+v", got, c.want)
			}
			if !f.waiterGone(t) {
				t.Fatal("the waiter survived")
			}
			if seen, _ := f.h.Store.EventSeen(context.Background(), ev.ID); !seen {
				t.Fatal("the event was not marked handled")
			}
		})
	}
}

func TestDuplicateEventIsHarmless(t *testing.T) {
	f := newFixture(t)
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	if err := f.h.Handle(context.Background(), sample(t, "infra-create-complete.json")); err != nil {
		t.Fatal(err)
	}
	before := f.env.Keys(t, f.table)
	if err := f.h.Handle(context.Background(), sample(t, "infra-create-complete-duplicate.json")); err != nil {
		t.Fatalf("duplicate: %v", err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatalf("duplicate wrote: %v -> %v", before, after)
	}
	if out := f.env.WaitExecution(t, execution); out.Status != "SUCCEEDED" {
		t.Fatalf("execution %s", out.Status)
	}
}

// The await step and the event can both complete the same token; the second finds it dead.
func TestAnAlreadyCompletedTokenIsHarmless(t *testing.T) {
	f := newFixture(t)
	execution, w := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	if _, err := f.env.StepFunctions().SendTaskSuccess(context.Background(), &sfn.SendTaskSuccessInput{TaskToken: aws.String(w.TaskToken), Output: aws.String(`{"by":"await"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Handle(context.Background(), sample(t, "infra-create-complete.json")); err != nil {
		t.Fatalf("err = %v, want a dead token tolerated", err)
	}
	if out := f.env.WaitExecution(t, execution); aws.ToString(out.Output) != `{"by":"await"}` {
		t.Fatalf("output %s: the first completion must stand", aws.ToString(out.Output))
	}
	if !f.waiterGone(t) {
		t.Fatal("waiter left behind")
	}
}

// Events that do not end the awaited operation leave the task waiting and write nothing.
func TestEventsOfOtherOperationsLeaveTheTaskWaiting(t *testing.T) {
	cases := []struct {
		name, file, operation, request string
		mutate                         func(*events.CloudWatchEvent)
	}{
		{"late rollback while deleting", "infra-rollback-complete.json", "delete", "byoc-k3q9x2m7p4w8z-1-delete", nil},
		{"other request token", "infra-create-complete.json", "create", "byoc-k3q9x2m7p4w8z-2-create", nil},
		{"in progress", "infra-create-in-progress.json", "create", "byoc-k3q9x2m7p4w8z-1-create", nil},
		{"earlier stack instance", "infra-create-complete.json", "create", "byoc-k3q9x2m7p4w8z-1-create", func(ev *events.CloudWatchEvent) {
			old := strings.Replace(stackID, "5b3c0a40", "00000000", 1)
			ev.Resources = []string{old}
			ev.Detail = json.RawMessage(strings.Replace(string(ev.Detail), stackID, old, 1))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			execution, _ := f.wait(t, c.operation, c.request)
			before := f.env.Keys(t, f.table)
			ev := sample(t, c.file)
			if c.mutate != nil {
				c.mutate(&ev)
			}
			if err := f.h.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			if !f.running(t, execution) {
				t.Fatal("the task was completed by an event of another operation")
			}
			if after := f.env.Keys(t, f.table); len(after) != len(before) || f.waiterGone(t) {
				t.Fatalf("wrote or removed: %v -> %v", before, after)
			}
		})
	}
}

func TestUnknownStackIsIgnoredAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	before := f.env.Keys(t, f.table)
	if err := f.h.Handle(context.Background(), sample(t, "unknown-stack.json")); err != nil {
		t.Fatal(err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) {
		t.Fatalf("wrote %v", after)
	}
	if !f.running(t, execution) {
		t.Fatal("another stack's event resumed the task")
	}
}

func TestExpiredWaiterIsIgnored(t *testing.T) {
	f := newFixture(t)
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	f.h.Store.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := f.h.Handle(context.Background(), sample(t, "infra-create-complete.json")); err != nil {
		t.Fatal(err)
	}
	if !f.running(t, execution) {
		t.Fatal("an expired waiter's token was used")
	}
}

func TestMalformedEventIsAnErrorAndWritesNothing(t *testing.T) {
	f := newFixture(t)
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	before := f.env.Keys(t, f.table)
	err := f.h.Handle(context.Background(), sample(t, "malformed.json"))
	var m *stackevent.MalformedError
	if !errors.As(err, &m) || m.Field != "detail.stack-id" || reflect.TypeOf(err).Elem().Name() != "MalformedError" {
		t.Fatalf("err = %v, want a MalformedError about detail.stack-id", err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) || !f.running(t, execution) {
		t.Fatal("a malformed event had an effect")
	}
}

func TestConfigFromEnv(t *testing.T) {
	if table, err := ConfigFromEnv(func(string) string { return "t" }); err != nil || table != "t" {
		t.Fatalf("%q %v", table, err)
	}
	if _, err := ConfigFromEnv(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), contract.EnvTableName) {
		t.Fatalf("err = %v", err)
	}
}

// A Resource Status Change is a valid CloudFormation event that is not ours: ignored, not an
// error (the rule routing it here is too wide, and retrying it would not help).
func TestResourceStatusChangeIsIgnored(t *testing.T) {
	f := newFixture(t)
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	before := f.env.Keys(t, f.table)
	if err := f.h.Handle(context.Background(), sample(t, "resource-status-change.json")); err != nil {
		t.Fatal(err)
	}
	if after := f.env.Keys(t, f.table); len(after) != len(before) || !f.running(t, execution) {
		t.Fatal("a resource event had an effect")
	}
}

// Another customer claims this customer's infrastructure stack failed: the waiting workflow
// is not failed, the waiter stays, and the forgery is audited on the deployment it targeted.
func TestForgedEventDoesNotResumeAnotherCustomersWorkflow(t *testing.T) {
	f := newFixture(t)
	if _, err := f.h.Store.Create(context.Background(), store.Deployment{
		ID: "k3q9x2m7p4w8z", Status: lifecycle.Provisioning,
		Settings: settings.Settings{AccountID: "111122223333", Region: "us-west-2"},
	}, store.Audit{Actor: "test", Action: "invite"}); err != nil {
		t.Fatal(err)
	}
	execution, _ := f.wait(t, "create", "byoc-k3q9x2m7p4w8z-1-create")
	ev := sample(t, "forged-other-account.json")
	for range 2 {
		if err := f.h.Handle(context.Background(), ev); err != nil {
			t.Fatalf("err = %v, want the forgery refused without a retry", err)
		}
	}
	if !f.running(t, execution) || f.waiterGone(t) {
		t.Fatal("a forged event resumed the waiting workflow")
	}
	trail, _ := f.h.Store.AuditTrail(context.Background(), "k3q9x2m7p4w8z")
	if len(trail) != 2 || trail[1].Action != "security.forged-event" || !strings.Contains(trail[1].Detail, "444455556666") {
		t.Fatalf("audit %+v, want one security.forged-event naming the sender", trail)
	}
}
